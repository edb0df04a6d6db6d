"""`crawler status`: one crawl in depth, with a one-line verdict and what to run next."""

from __future__ import annotations

import time
from collections import defaultdict

from sqlalchemy import Connection, Integer, cast, func, select

from crawler.query.common import fetches_t, frontier_t, iso, leases_t
from crawler.query.crawls import crawl_info, runs_of
from crawler.query.listings import error_counts
from crawler.query.results import (
    CrawlInfo,
    CrawlStatus,
    GroupCounts,
    LeaseInfo,
    RateBucket,
    SkipCount,
)
from crawler.store.models import SKIPPED

RATE_BUCKETS = 12


def _groups(conn: Connection, crawl_id: int, column, limit: int) -> list[GroupCounts]:
    """URLs by state for each value of `column` (host or depth), the largest groups first."""
    f = frontier_t.c
    counts: dict = defaultdict(
        lambda: dict.fromkeys(("queued", "retry", "done", "failed", "skipped", "in_flight"), 0)
    )
    for key, state, count in conn.execute(
        select(column, f.state, func.count())
        .where(f.crawl_id == crawl_id)
        .group_by(column, f.state)
    ):
        counts[key][state] = count
    lease_column = leases_t.c[column.name]
    for key, count in conn.execute(
        select(lease_column, func.count())
        .where(leases_t.c.crawl_id == crawl_id)
        .group_by(lease_column)
    ):
        counts[key]["in_flight"] = count
        counts[key]["queued"] -= count
    ordered = sorted(counts.items(), key=lambda item: (-sum(item[1].values()), str(item[0])))
    if column.name == "depth":
        ordered = sorted(counts.items())
    return [GroupCounts(key=str(key), **values) for key, values in ordered[:limit]]


def _oldest_lease(conn: Connection, crawl_id: int, now: float) -> LeaseInfo | None:
    lc = leases_t.c
    row = conn.execute(
        select(lc.url, lc.run_id, lc.attempt, lc.expires_at)
        .where(lc.crawl_id == crawl_id)
        .order_by(lc.expires_at)
        .limit(1)
    ).first()
    if row is None:
        return None
    return LeaseInfo(row.url, row.run_id, row.attempt, round(row.expires_at - now, 1))


def skip_reasons(conn: Connection, crawl_id: int, limit: int = 20) -> list[SkipCount]:
    f = frontier_t.c
    skipped = f.state == SKIPPED
    rows = conn.execute(
        select(f.skip_reason, func.count(), func.min(f.url))
        .where(f.crawl_id == crawl_id, skipped)
        .group_by(f.skip_reason)
        .order_by(func.count().desc())
        .limit(limit)
    ).all()
    return [SkipCount(reason or "", count, example) for reason, count, example in rows]


def _rate(conn: Connection, crawl_id: int) -> list[RateBucket]:
    """Responses per second in up to RATE_BUCKETS slices of the time the crawl fetched (slices
    with none, such as the time between two runs, are left out)."""
    fe = fetches_t.c
    answered = (fe.crawl_id == crawl_id, fe.status.is_not(None))
    first, last = conn.execute(
        select(func.min(fe.started_at), func.max(fe.started_at)).where(*answered)
    ).one()
    if first is None:
        return []
    width = max((last - first) / RATE_BUCKETS, 1.0)
    offset = (fe.started_at - first) / width
    # floor: SQLite's CAST truncates (the offsets are not negative), PostgreSQL's rounds
    bucket = func.floor(offset) if conn.dialect.name == "postgresql" else cast(offset, Integer)
    rows = conn.execute(
        select(bucket, func.count()).where(*answered).group_by(bucket).order_by(bucket)
    ).all()
    return [
        RateBucket(iso(first + int(b) * width) or "", round(width, 1), n, round(n / width, 2))
        for b, n in rows
    ]


def _verdict(info: CrawlInfo, lease: LeaseInfo | None) -> str:
    urls = info.urls
    if info.state == "finished":
        if urls.left:
            return (
                f"finished at its budgets: {info.pages} pages, {urls.left} URLs left; "
                f"`{info.next_step}` goes on"
            )
        return f"finished: {urls.done} URLs done, {urls.failed} failed, {urls.skipped} skipped"
    if info.state == "running":
        return (
            f"running: {info.live_runs} live run(s), {urls.in_flight} in flight, "
            f"{urls.queued + urls.retry} waiting"
        )
    if info.state == "stuck":
        lapsed = f", the oldest lapsed {-lease.expires_in_s:.0f} s ago" if lease else ""
        return (
            f"stuck: {urls.in_flight} leases held by no live run{lapsed}; "
            f"run `{info.next_step}` to take them back and go on"
        )
    return f"interrupted with {urls.left} URLs left; run `{info.next_step}` to go on"


def crawl_status(
    conn: Connection, crawl_row, *, db: str | None = None, limit: int = 20
) -> CrawlStatus:
    now = time.time()
    info = crawl_info(conn, crawl_row, db=db, now=now)
    lease = _oldest_lease(conn, crawl_row.id, now)
    return CrawlStatus(
        crawl=info,
        verdict=_verdict(info, lease),
        runs=runs_of(conn, crawl_row.id, now),
        by_host=_groups(conn, crawl_row.id, frontier_t.c.host, limit),
        by_depth=_groups(conn, crawl_row.id, frontier_t.c.depth, limit),
        oldest_lease=lease,
        errors=error_counts(conn, crawl_row.id, limit=limit),
        skipped=skip_reasons(conn, crawl_row.id, limit),
        rate=_rate(conn, crawl_row.id),
    )
