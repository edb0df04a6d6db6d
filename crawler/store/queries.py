"""Read-side queries. Each takes a connection and streams, so memory stays flat on big crawls."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, func, select

from crawler.store.models import (
    QUEUED,
    RETRY,
    SKIPPED,
    Crawl,
    Fetch,
    FrontierEntry,
    Page,
    Run,
)

EXPORT_FIELDS = (
    "url",
    "status",
    "title",
    "depth",
    "content_type",
    "bytes",
    "error",
    "error_kind",
    "redirect_to",
    "attempts",
    "started_at",
    "queue_wait_ms",
    "connect_ms",
    "first_byte_ms",
    "download_ms",
    "parse_ms",
    "total_ms",
)


def find_crawl(conn: Connection, crawl: str | int) -> Crawl | None:
    """A crawl by name; by id when written `#N` (or given as an int). Plain digits are a name
    first and an id only when no crawl has that name, so `#1` is the way to mean id 1."""
    table = Crawl.__table__
    text = str(crawl)
    if isinstance(crawl, int) or (text.startswith("#") and text[1:].isdigit()):
        return conn.execute(select(table).where(table.c.id == int(text.lstrip("#")))).first()
    row = find_crawl_by_name(conn, text)
    if row is None and text.isdigit():
        row = conn.execute(select(table).where(table.c.id == int(text))).first()
    return row


def last_run(conn: Connection, crawl_id: int):
    """The crawl's latest run (frontend, concurrency), or None before its first."""
    runs = Run.__table__.c
    return conn.execute(
        select(runs.frontend, runs.concurrency)
        .where(runs.crawl_id == crawl_id)
        .order_by(runs.id.desc())
        .limit(1)
    ).first()


def find_crawl_by_name(conn: Connection, name: str) -> Crawl | None:
    table = Crawl.__table__
    return conn.execute(select(table).where(table.c.name == name)).first()


def totals(conn: Connection, crawl_id: int) -> dict[str, int]:
    fetches = Fetch.__table__.c
    pages = Page.__table__.c
    frontier = FrontierEntry.__table__.c
    fetch_count, error_count = conn.execute(
        select(
            func.count(),
            func.count().filter((fetches.error_kind.is_not(None)) | (fetches.status >= 400)),
        ).where(fetches.crawl_id == crawl_id)
    ).one()
    page_count = conn.execute(select(func.count()).where(pages.crawl_id == crawl_id)).scalar_one()
    queued, skipped = (
        conn.execute(
            select(func.count()).where(frontier.crawl_id == crawl_id, frontier.state.in_(states))
        ).scalar_one()
        for states in ((QUEUED, RETRY), (SKIPPED,))
    )
    return {
        "fetches": fetch_count,
        "errors": error_count,
        "pages": page_count,
        "queued": queued,
        "skipped": skipped,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def export_records(conn: Connection, crawl_id: int) -> Iterator[dict[str, Any]]:
    """One record per fetched URL: its last attempt, with the page's title where it had one."""
    fetch = Fetch.__table__.c
    frontier = FrontierEntry.__table__.c
    page = Page.__table__.c
    last = (
        select(func.max(fetch.id).label("id"))
        .where(fetch.crawl_id == crawl_id)
        .group_by(fetch.frontier_id)
        .subquery()
    )
    query = (
        select(
            fetch.url,
            fetch.status,
            page.title,
            frontier.depth,
            fetch.content_type,
            fetch.body_bytes,
            fetch.error_kind,
            fetch.error_message,
            fetch.location,
            frontier.attempts,
            fetch.started_at,
            fetch.queue_wait_s,
            fetch.connect_s,
            fetch.first_byte_s,
            fetch.download_s,
            fetch.parse_s,
            fetch.total_s,
        )
        .join(last, last.c.id == fetch.id)
        .join(FrontierEntry.__table__, frontier.id == fetch.frontier_id)
        .outerjoin(Page.__table__, page.frontier_id == fetch.frontier_id)
        .order_by(fetch.id)
    )
    for row in conn.execution_options(yield_per=1000).execute(query):
        error = None
        if row.error_kind:
            error = (
                f"{row.error_kind}: {row.error_message}" if row.error_message else row.error_kind
            )
        yield {
            "url": row.url,
            "status": row.status,
            "title": row.title,
            "depth": row.depth,
            "content_type": row.content_type,
            "bytes": row.body_bytes,
            "error": error,
            "error_kind": row.error_kind,
            "redirect_to": row.location,
            "attempts": row.attempts,
            "started_at": row.started_at,
            "queue_wait_ms": _ms(row.queue_wait_s),
            "connect_ms": _ms(row.connect_s),
            "first_byte_ms": _ms(row.first_byte_s),
            "download_ms": _ms(row.download_s),
            "parse_ms": _ms(row.parse_s),
            "total_ms": _ms(row.total_s),
        }
