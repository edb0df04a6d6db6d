"""Exports: a crawl's records streamed from the database, in constant memory whatever its size.

The default table, `urls`, has one record per URL of the frontier, those skipped or failed
included, with its final state, why it was skipped, the page it was found on and its last
attempt. The others are the stored rows of one table, as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.sql import Select

from crawler.query.common import iso, last_fetch_id, ms
from crawler.query.options import FORMATS, TABLES  # noqa: F401 (the API checks them)
from crawler.store.tables import fetches_t, frontier_t, links_t, pages_t, runs_t

URL_FIELDS = (
    "url",
    "state",
    "skip_reason",
    "host",
    "depth",
    "found_on",
    "attempts",
    "status",
    "title",
    "content_type",
    "bytes",
    "error",
    "error_kind",
    "redirect_to",
    "started_at",
    "queue_wait_ms",
    "connect_ms",
    "first_byte_ms",
    "download_ms",
    "parse_ms",
    "total_ms",
)
BATCH = 1000


def _urls_query(crawl_id: int) -> Select:
    f = frontier_t.c
    fetch = fetches_t.alias("fetch")
    found = frontier_t.alias("found")
    return (
        select(
            f.url,
            f.state,
            f.skip_reason,
            f.host,
            f.depth,
            found.c.url.label("found_on"),
            f.attempts,
            fetch.c.status,
            pages_t.c.title,
            fetch.c.content_type,
            fetch.c.body_bytes,
            fetch.c.error_kind,
            fetch.c.error_message,
            fetch.c.location,
            fetch.c.started_at,
            fetch.c.queue_wait_s,
            fetch.c.connect_s,
            fetch.c.first_byte_s,
            fetch.c.download_s,
            fetch.c.parse_s,
            fetch.c.total_s,
        )
        .select_from(frontier_t)
        .outerjoin(fetch, fetch.c.id == last_fetch_id(crawl_id, f.id))
        .outerjoin(pages_t, pages_t.c.frontier_id == f.id)
        .outerjoin(found, found.c.id == f.found_from)
        .where(f.crawl_id == crawl_id)
        .order_by(f.id)
    )


def _url_record(row) -> dict[str, Any]:
    error = None
    if row.error_kind:
        error = f"{row.error_kind}: {row.error_message}" if row.error_message else row.error_kind
    return {
        "url": row.url,
        "state": row.state,
        "skip_reason": row.skip_reason,
        "host": row.host,
        "depth": row.depth,
        "found_on": row.found_on,
        "attempts": row.attempts,
        "status": row.status,
        "title": row.title,
        "content_type": row.content_type,
        "bytes": row.body_bytes,
        "error": error,
        "error_kind": row.error_kind,
        "redirect_to": row.location,
        "started_at": row.started_at,
        "queue_wait_ms": ms(row.queue_wait_s),
        "connect_ms": ms(row.connect_s),
        "first_byte_ms": ms(row.first_byte_s),
        "download_ms": ms(row.download_s),
        "parse_ms": ms(row.parse_s),
        "total_ms": ms(row.total_s),
    }


def _table_query(crawl_id: int, table: str) -> Select:
    if table == "links":
        lk = links_t.c
        return (
            select(
                pages_t.c.url.label("page_url"),
                lk.position,
                lk.url,
                lk.anchor_text,
                lk.rel,
                lk.nofollow,
                lk.followed,
            )
            .join(pages_t, pages_t.c.id == lk.page_id)
            .where(pages_t.c.crawl_id == crawl_id)
            .order_by(lk.page_id, lk.position)
        )
    source = {"fetches": fetches_t, "pages": pages_t, "runs": runs_t}[table]
    return select(source).where(source.c.crawl_id == crawl_id).order_by(source.c.id)


def fields(table: str) -> tuple[str, ...]:
    """The record's keys, in order: a CSV header before the first row is read."""
    if table == "urls":
        return URL_FIELDS
    return tuple(column.name for column in _table_query(0, table).selected_columns)


def count(conn: Connection, crawl_id: int, table: str) -> int:
    """How many records an export of `table` will write, for its progress bar."""
    if table == "urls":
        return conn.execute(
            select(func.count()).where(frontier_t.c.crawl_id == crawl_id)
        ).scalar_one()
    if table == "links":
        return conn.execute(
            select(func.count())
            .select_from(links_t)
            .join(pages_t, pages_t.c.id == links_t.c.page_id)
            .where(pages_t.c.crawl_id == crawl_id)
        ).scalar_one()
    source = {"fetches": fetches_t, "pages": pages_t, "runs": runs_t}[table]
    return conn.execute(select(func.count()).where(source.c.crawl_id == crawl_id)).scalar_one()


def _plain(value: Any) -> Any:
    return iso(value) if isinstance(value, datetime) else value


def records(conn: Connection, crawl_id: int, table: str = "urls") -> Iterator[dict[str, Any]]:
    """The records of an export, streamed (a server-side cursor on PostgreSQL)."""
    streaming = conn.execution_options(yield_per=BATCH)
    if table == "urls":
        for row in streaming.execute(_urls_query(crawl_id)):
            yield _url_record(row)
        return
    for row in streaming.execute(_table_query(crawl_id, table)):
        yield {key: _plain(value) for key, value in row._mapping.items()}
