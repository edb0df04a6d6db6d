"""What the read-side questions share: the tables, a URL's last attempt, times as people read
them."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from sqlalchemy import Connection, func, select
from sqlalchemy.sql.elements import ColumnElement

from crawler.store.tables import fetches_t, frontier_t, in_crawl
from crawler.urls import BadURL, canonicalize, url_key


def last_fetch_id(crawl_id: int, frontier_id: ColumnElement) -> ColumnElement:
    """The id of a URL's last attempt: one seek in (crawl_id, frontier_id)."""
    later = fetches_t.alias("later")
    return (
        select(func.max(later.c.id))
        .where(later.c.crawl_id == crawl_id, later.c.frontier_id == frontier_id)
        .scalar_subquery()
    )


def is_last_attempt(crawl_id: int, fetch) -> ColumnElement[bool]:
    """`fetch` (a fetches row or alias) is its URL's last attempt."""
    return fetch.c.id == last_fetch_id(crawl_id, fetch.c.frontier_id)


def iso(moment: float | datetime | None) -> str | None:
    """Epoch seconds or a stored datetime (SQLite hands them back naive, in UTC) as ISO 8601."""
    if moment is None:
        return None
    if isinstance(moment, datetime):
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat(timespec="seconds")
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


def epoch(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def canonical_or_none(url: str) -> str | None:
    try:
        return canonicalize(url.strip())
    except BadURL:
        return None


def frontier_row(conn: Connection, crawl_id: int, url: str):
    """The frontier row of `url` in its canonical form, found by its key (the dedup index), or
    None when the crawl never met it (or `url` is not a URL)."""
    canonical = canonical_or_none(url)
    if canonical is None:
        return None
    f = frontier_t.c
    return conn.execute(
        select(frontier_t).where(in_crawl(f.crawl_id, crawl_id), f.url_key == url_key(canonical))
    ).first()


def nearest_rank(count: int, fraction: float) -> int:
    """The 0-based position of the `fraction` percentile among `count` sorted values, by
    nearest rank (ceil, so the median of 2 is the smaller, unlike round's half to even)."""
    return max(0, min(count - 1, math.ceil(fraction * count) - 1))


def ranked(conn: Connection, column, conditions: list, count: int, fraction: float):
    """The value of `column` at `fraction` (nearest rank) among the `count` rows meeting
    `conditions`, read in order by the database (from an index, where one covers them)."""
    if not count:
        return None
    return conn.execute(
        select(column)
        .where(*conditions)
        .order_by(column)
        .offset(nearest_rank(count, fraction))
        .limit(1)
    ).scalar()
