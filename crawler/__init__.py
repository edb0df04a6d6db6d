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
    "resume": "crawler.api",
    "submit": "crawler.api",
    "worker": "crawler.api",
    "DeclaredDead": "crawler.api",
    "upgrade_db": "crawler.api",
    "CrawlSummary": "crawler.model",
    "crawls": "crawler.query.api",
    "status": "crawler.query.api",
    "pages": "crawler.query.api",
    "links": "crawler.query.api",
    "error_counts": "crawler.query.api",
    "hosts": "crawler.query.api",
    "show": "crawler.query.api",
    "export": "crawler.query.api",
    "sql": "crawler.query.sql",
    "compare": "crawler.report.api",
    "experiment": "crawler.report.api",
    "experiments": "crawler.report.api",
    "make_report": "crawler.report.api",
}
__all__ = [  # noqa: RUF022 (the crawl, the questions, the comparisons)
    "CrawlSettings",
    "CrawlSummary",
    "CrawlerError",
    "DatabaseError",
    "Interrupted",
    "DeclaredDead",
    "UsageError",
    "crawl",
    "resume",
    "submit",
    "worker",
    "upgrade_db",
    "crawls",
    "status",
    "pages",
    "links",
    "error_counts",
    "hosts",
    "show",
    "export",
    "sql",
    "compare",
    "experiment",
    "experiments",
    "make_report",
]

if TYPE_CHECKING:
    from crawler.api import (
        CrawlerError,
        CrawlSettings,
        DatabaseError,
        DeclaredDead,
        Interrupted,
        UsageError,
        crawl,
        resume,
        submit,
        upgrade_db,
        worker,
    )
    from crawler.model import CrawlSummary
    from crawler.query.api import crawls, error_counts, export, hosts, links, pages, show, status
    from crawler.query.sql import sql
    from crawler.report.api import compare, experiment, experiments, make_report


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'crawler' has no attribute {name!r}")
