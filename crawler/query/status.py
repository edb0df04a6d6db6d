"""`crawler status`: one crawl in depth, with a one-line verdict and what to run next."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from crawler.query.common import iso
from crawler.query.crawls import STATE_NAMES, counts_by_host_and_depth, crawl_info, runs_of
from crawler.query.listings import error_counts
from crawler.query.results import (
    CrawlInfo,
    CrawlStatus,
    GroupCounts,
    LeaseInfo,
    RateBucket,
    SkipCount,
    URLCounts,
)
from crawler.store.clock import DatabaseClock
from crawler.store.models import SKIPPED
from crawler.store.tables import fetches_t, frontier_t, leases_t

RATE_BUCKETS = 12


def _groups(counts: dict, limit: int, *, largest_first: bool) -> list[GroupCounts]:
    """Groups of URL counts, the largest first (hosts) or in key order (depths)."""
    items = sorted(counts.items())
    if largest_first:
        items.sort(key=lambda item: (-sum(item[1].values()), str(item[0])))
    return [GroupCounts(key=str(key), **values) for key, values in items[:limit]]


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
    """Skipped URLs by reason, counted in the index that holds only them; one example each."""
    f = frontier_t.c
    skipped = f.state == SKIPPED
    counts = conn.execute(
        select(f.skip_reason, func.count())
        .where(f.crawl_id == crawl_id, skipped)
        .group_by(f.skip_reason)
        .order_by(func.count().desc())
        .limit(limit)
    ).all()
    return [
        SkipCount(
            reason or "",
            count,
            conn.execute(
                select(f.url)
                .where(f.crawl_id == crawl_id, skipped, f.skip_reason == reason)
                .limit(1)
            ).scalar(),
        )
        for reason, count in counts
    ]


def _statuses(conn: Connection, crawl_id: int) -> list[int]:
    """The statuses the crawl's answers have, one seek each into (crawl_id, status, ...)
    instead of reading every answer."""
    fe = fetches_t.c
    found: list[int] = []
    while True:
        after = (fe.status > found[-1],) if found else (fe.status.is_not(None),)
        status = conn.execute(
            select(func.min(fe.status)).where(fe.crawl_id == crawl_id, *after)
        ).scalar()
        if status is None:
            return found
        found.append(status)


def _rate(conn: Connection, crawl_id: int) -> list[RateBucket]:
    """Responses per second in up to RATE_BUCKETS slices of the time the crawl fetched (slices
    with none, such as the time between two runs, are left out). Counted per status and
    slice, each a range of the index (crawl_id, status, started_at): nothing is sorted."""
    fe = fetches_t.c
    statuses = _statuses(conn, crawl_id)
    if not statuses:
        return []
    ends = [
        conn.execute(
            select(func.min(fe.started_at), func.max(fe.started_at)).where(
                fe.crawl_id == crawl_id, fe.status == status
            )
        ).one()
        for status in statuses
    ]
    first, last = min(e[0] for e in ends), max(e[1] for e in ends)
    width = max((last - first) / RATE_BUCKETS, 1.0)
    edges = [first + i * width for i in range(RATE_BUCKETS + 1)]
    edges[-1] = max(edges[-1], last) + 1e-6
    counts = [0] * RATE_BUCKETS
    for status in statuses:
        for i in range(RATE_BUCKETS):
            counts[i] += conn.execute(
                select(func.count()).where(
                    fe.crawl_id == crawl_id,
                    fe.status == status,
                    fe.started_at >= edges[i],
                    fe.started_at < edges[i + 1],
                )
            ).scalar_one()
    return [
        RateBucket(iso(edges[i]) or "", round(width, 1), n, round(n / width, 2))
        for i, n in enumerate(counts)
        if n
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
    if info.state == "submitted":
        return f"submitted, {urls.left} URLs queued; start workers with `{info.next_step}`"
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
    now = DatabaseClock().read(conn)  # the clock the leases were written on
    by_host, by_depth = counts_by_host_and_depth(conn, crawl_row.id)
    totals = {name: sum(group[name] for group in by_host.values()) for name in STATE_NAMES}
    runs = runs_of(conn, crawl_row, now)
    info = crawl_info(conn, crawl_row, db=db, now=now, urls=URLCounts(**totals), runs=runs)
    lease = _oldest_lease(conn, crawl_row.id, now)
    return CrawlStatus(
        crawl=info,
        verdict=_verdict(info, lease),
        runs=runs,
        by_host=_groups(by_host, limit, largest_first=True),
        by_depth=_groups(by_depth, limit, largest_first=False),
        oldest_lease=lease,
        errors=error_counts(conn, crawl_row.id, limit=limit, with_urls=False),
        skipped=skip_reasons(conn, crawl_row.id, limit),
        rate=_rate(conn, crawl_row.id),
    )
