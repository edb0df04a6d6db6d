"""A web crawler built three ways (threads, processes, asyncio) on one durable SQL core.

The public API is imported lazily, so that a pool child, which only fetches and parses,
does not pay for SQLAlchemy, Alembic and rich.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_API = {
    "CrawlSettings": "crawler.api",
    "CrawlerError": "crawler.api",
    "DatabaseError": "crawler.api",
    "Interrupted": "crawler.api",
    "UsageError": "crawler.api",
    "crawl": "crawler.api",
    "export": "crawler.api",
    "list_crawls": "crawler.api",
    "resume": "crawler.api",
    "upgrade_db": "crawler.api",
    "CrawlSummary": "crawler.model",
}
__all__ = [
    "CrawlSettings",
    "CrawlSummary",
    "CrawlerError",
    "DatabaseError",
    "Interrupted",
    "UsageError",
    "crawl",
    "export",
    "list_crawls",
    "resume",
    "upgrade_db",
]

if TYPE_CHECKING:
    from crawler.api import (
        CrawlerError,
        CrawlSettings,
        DatabaseError,
        Interrupted,
        UsageError,
        crawl,
        export,
        list_crawls,
        resume,
        upgrade_db,
    )
    from crawler.model import CrawlSummary


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'crawler' has no attribute {name!r}")
