"""Work that comes back to the queue: retries that are due, leases that lapsed in a dead
run's hands, leases a run gives back when it stops, tasks whose worker died.

Each finds its rows through an index that holds only the rows of one state (retry, leased),
so the cost follows the work that comes back, never the length of the queue.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Connection, insert, select, update

from crawler.fetch.errors import ErrorKind
from crawler.frontier.tables import (
    HostCounts,
    bump_counts,
    crawls_t,
    fetches_t,
    frontier_t,
    in_state,
    lock_hosts,
    robots_t,
)
from crawler.model import FetchTask
from crawler.store.models import FAILED, LEASED, QUEUED, RETRY

CHUNK = 1000
_NO_LEASE = {"lease_owner": None, "lease_token": None, "lease_expires_at": None}


def promote_due_retries(conn: Connection, crawl_id: int, now: float) -> int:
    """Retries whose time has come are queued again."""
    f = frontier_t.c
    due = conn.execute(
        select(f.id, f.host)
        .where(f.crawl_id == crawl_id, in_state(RETRY), f.next_attempt_at <= now)
        .limit(CHUNK)
    ).all()
    if not due:
        return 0
    lock_hosts(conn, crawl_id, {row.host for row in due})
    hosts = conn.execute(
        update(frontier_t)
        .where(f.id.in_([row.id for row in due]), in_state(RETRY), f.next_attempt_at <= now)
        .values(state=QUEUED)
        .returning(f.host)
    ).scalars()
    changes: dict[str, HostCounts] = defaultdict(HostCounts)
    for host in hosts:
        changes[host].retrying -= 1
        changes[host].queued += 1
    bump_counts(conn, crawl_id, changes)
    return sum(c.queued for c in changes.values())


def reclaim_lapsed(conn: Connection, crawl_id: int, now: float) -> int:
    """Leases that lapsed (their run died, or stopped answering) go back to the queue. Their
    attempt counts: a URL that keeps killing its runs is given up when it is next leased."""
    f = frontier_t.c
    lapsed = conn.execute(
        select(f.id, f.host)
        .where(f.crawl_id == crawl_id, in_state(LEASED), f.lease_expires_at < now)
        .limit(CHUNK)
    ).all()
    if not lapsed:
        return 0
    lock_hosts(conn, crawl_id, {row.host for row in lapsed})
    requeued = conn.execute(
        update(frontier_t)
        .where(f.id.in_([row.id for row in lapsed]), in_state(LEASED), f.lease_expires_at < now)
        .values(state=QUEUED, **_NO_LEASE)
        .returning(f.host)
    ).scalars()
    changes: dict[str, HostCounts] = defaultdict(HostCounts)
    for host in requeued:
        changes[host].in_flight -= 1
        changes[host].queued += 1
    bump_counts(conn, crawl_id, changes)
    return sum(c.queued for c in changes.values())


def give_up(conn: Connection, crawl_id: int, run_id: int, rows: list, now: float) -> None:
    """Queued URLs that were leased max_attempts times without a result (their runs died on
    them) are marked failed, with a fetch row saying so, so that an export shows them. The
    caller holds their hosts' rows and counts them off `queued`."""
    conn.execute(
        update(frontier_t)
        .where(frontier_t.c.id.in_([row.id for row in rows]))
        .values(state=FAILED, **_NO_LEASE)
    )
    conn.execute(
        insert(fetches_t),
        [
            {
                "crawl_id": crawl_id,
                "frontier_id": row.id,
                "run_id": run_id,
                "worker": "frontier",
                "url": row.url,
                "attempt": row.attempts,
                "started_at": now,
                "error_kind": ErrorKind.ABANDONED.value,
                "error_message": f"leased {row.attempts} times without a result",
                "body_bytes": 0,
                "queue_wait_s": 0.0,
                "total_s": 0.0,
            }
            for row in rows
        ],
    )


def release_runs(conn: Connection, crawl_id: int, run_ids: list[int], *, refund: bool) -> int:
    """Give back at once the leases of runs known to be gone, and their robots.txt claims. A
    run that stopped cleanly (Ctrl-C) refunds the attempt: its look-ahead was never tried, and
    a URL back at zero attempts is taken off the page budgets again. A run that died does not
    refund: the URL may be what killed it, and max_attempts must stop that."""
    if not run_ids:
        return 0
    f = frontier_t.c
    conn.execute(
        update(robots_t)
        .where(robots_t.c.crawl_id == crawl_id, robots_t.c.claimed_by.in_(run_ids))
        .values(claimed_by=None, claim_expires_at=0.0)
    )
    held = conn.execute(
        select(f.id, f.host).where(
            f.crawl_id == crawl_id, in_state(LEASED), f.lease_owner.in_(run_ids)
        )
    ).all()
    if not held:
        return 0
    lock_hosts(conn, crawl_id, {row.host for row in held})
    values: dict = {"state": QUEUED, **_NO_LEASE}
    if refund:
        values["attempts"] = f.attempts - 1
    released = conn.execute(
        update(frontier_t)
        .where(f.id.in_([row.id for row in held]), in_state(LEASED), f.lease_owner.in_(run_ids))
        .values(**values)
        .returning(f.host, f.attempts)
    ).all()
    changes: dict[str, HostCounts] = defaultdict(HostCounts)
    for host, attempts in released:
        changes[host].in_flight -= 1
        changes[host].queued += 1
        if refund and attempts == 0:
            changes[host].started -= 1
    bump_counts(conn, crawl_id, changes)
    refunded = -sum(c.started for c in changes.values())
    if refunded:
        conn.execute(
            update(crawls_t)
            .where(crawls_t.c.id == crawl_id)
            .values(urls_started=crawls_t.c.urls_started - refunded)
        )
    return len(released)


def give_back(conn: Connection, crawl_id: int, tasks: list[FetchTask]) -> int:
    """Return leased URLs whose results will never come (their worker died). The attempt
    counts, so a URL that keeps killing workers ends as failed."""
    f = frontier_t.c
    rows = conn.execute(select(f.host).where(f.id.in_([t.frontier_id for t in tasks]))).scalars()
    lock_hosts(conn, crawl_id, set(rows))
    changes: dict[str, HostCounts] = defaultdict(HostCounts)
    for task in tasks:
        host = conn.execute(
            update(frontier_t)
            .where(f.id == task.frontier_id, f.lease_token == task.lease_token, in_state(LEASED))
            .values(state=QUEUED, **_NO_LEASE)
            .returning(f.host)
        ).scalar()
        if host is not None:
            changes[host].in_flight -= 1
            changes[host].queued += 1
    bump_counts(conn, crawl_id, changes)
    return sum(c.queued for c in changes.values())
