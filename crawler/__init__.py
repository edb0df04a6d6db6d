"""A web crawler built three ways (threads, processes, asyncio) on one durable SQL core."""

from crawler.api import (
    CrawlerError,
    CrawlSettings,
    Interrupted,
    UsageError,
    crawl,
    export,
    list_crawls,
    resume,
    upgrade_db,
)
from crawler.model import CrawlSummary

__all__ = [
    "CrawlSettings",
    "CrawlSummary",
    "CrawlerError",
    "Interrupted",
    "UsageError",
    "crawl",
    "export",
    "list_crawls",
    "resume",
    "upgrade_db",
]
__version__ = "0.1.0"
