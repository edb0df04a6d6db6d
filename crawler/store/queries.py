"""The few reads the write side needs: a crawl by name or id, its last run, its totals.
(The questions users ask are crawler/query/.)"""

from __future__ import annotations

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
    """The crawl's latest run (frontend, concurrency, parser), or None before its first."""
    runs = Run.__table__.c
    return conn.execute(
        select(runs.frontend, runs.concurrency, runs.parser)
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
