"""Work that comes back to the queue: retries that are due, leases that lapsed in a dead
run's hands, leases a run gives back when it stops, tasks whose worker died.

Each finds its rows through the small table of leases or an index that holds only the URLs
waiting for a retry, so the cost follows the work that comes back, never the queue's length.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Connection, case, delete, insert, select, update

from crawler.fetch.errors import ErrorKind
from crawler.frontier.tables import (
    HostCounts,
    bump_counts,
    crawls_t,
    fetches_t,
    frontier_t,
    in_state,
    insert_rows,
    leases_t,
    lock_hosts,
    ready_row,
    ready_t,
    robots_t,
    unready,
)
from crawler.model import FetchTask
from crawler.store.models import FAILED, QUEUED, RETRY

CHUNK = 1000


def promote_due_retries(conn: Connection, crawl_id: int, now: float) -> int:
    """Retries whose time has come are ready again."""
    f = frontier_t.c
    due = conn.execute(
        select(f.id, f.host)
        .where(f.crawl_id == crawl_id, in_state(RETRY), f.next_attempt_at <= now)
        .limit(CHUNK)
    ).all()
    if not due:
        return 0
    lock_hosts(conn, crawl_id, {row.host for row in due})
    promoted = conn.execute(
        update(frontier_t)
        .where(f.id.in_([row.id for row in due]), in_state(RETRY), f.next_attempt_at <= now)
        .values(state=QUEUED)
        .returning(f.id, f.host, f.depth, f.url_key, f.url, f.attempts, f.redirect_hops)
    ).all()
    return _ready_again(conn, crawl_id, promoted, counted_as="retrying")


def reclaim_lapsed(conn: Connection, crawl_id: int, now: float) -> int:
    """Leases that lapsed (their run died, or stopped answering) go back to the queue. Their
    attempt counts: a URL that keeps killing its runs is given up when it is next leased."""
    lease_c = leases_t.c
    lapsed = conn.execute(
        select(lease_c.frontier_id, lease_c.host)
        .where(lease_c.crawl_id == crawl_id, lease_c.expires_at < now)
        .limit(CHUNK)
    ).all()
    return _end_leases(conn, crawl_id, lapsed, lease_c.expires_at < now)


def release_runs(conn: Connection, crawl_id: int, run_ids: list[int], *, refund: bool) -> int:
    """Give back at once the leases of runs known to be gone, and their robots.txt claims. A
    run that stopped cleanly (Ctrl-C) refunds the attempt: its look-ahead was never tried, and
    a URL back at zero attempts is taken off the page budgets again. A run that died does not
    refund: the URL may be what killed it, and max_attempts must stop that."""
    if not run_ids:
        return 0
    conn.execute(
        update(robots_t)
        .where(robots_t.c.crawl_id == crawl_id, robots_t.c.claimed_by.in_(run_ids))
        .values(claimed_by=None, claim_expires_at=0.0)
    )
    lease_c = leases_t.c
    held = conn.execute(
        select(lease_c.frontier_id, lease_c.host).where(
            lease_c.crawl_id == crawl_id, lease_c.run_id.in_(run_ids)
        )
    ).all()
    return _end_leases(conn, crawl_id, held, lease_c.run_id.in_(run_ids), refund=refund)


def give_back(conn: Connection, crawl_id: int, tasks: list[FetchTask]) -> int:
    """Return leased URLs whose results will never come (their worker died). The attempt
    counts, so a URL that keeps killing workers ends as failed."""
    lease_c = leases_t.c
    held = conn.execute(
        select(lease_c.frontier_id, lease_c.host).where(
            lease_c.frontier_id.in_([t.frontier_id for t in tasks])
        )
    ).all()
    still_theirs = lease_c.token.in_([t.lease_token for t in tasks])
    return _end_leases(conn, crawl_id, held, still_theirs)


def _end_leases(
    conn: Connection, crawl_id: int, leases: list, still: object, *, refund: bool = False
) -> int:
    """End the given leases (those for which `still` holds once their hosts are locked): their
    URLs are ready again, the attempt counted, or with `refund` given back (a URL back at zero
    attempts is off the page budgets again). Their frontier rows are not touched."""
    if not leases:
        return 0
    lease_c = leases_t.c
    lock_hosts(conn, crawl_id, {row.host for row in leases})
    ended = conn.execute(
        delete(leases_t)
        .where(lease_c.frontier_id.in_([row.frontier_id for row in leases]), still)
        .returning(
            lease_c.frontier_id.label("id"),
            lease_c.host,
            lease_c.depth,
            lease_c.url_key,
            lease_c.url,
            (lease_c.attempt - (1 if refund else 0)).label("attempts"),
            lease_c.redirect_hops,
        )
    ).all()
    count = _ready_again(conn, crawl_id, ended, counted_as="in_flight", refund=refund)
    return count


def _ready_again(
    conn: Connection, crawl_id: int, rows: list, *, counted_as: str, refund: bool = False
) -> int:
    """Put URLs back in `ready` (rows with id, host, depth, url_key, url, attempts and
    redirect_hops), their hosts' counts moved from `counted_as` to queued."""
    if not rows:
        return 0
    insert_rows(conn, ready_t, [ready_row(crawl_id, row.id, row) for row in rows])
    changes: dict[str, HostCounts] = defaultdict(HostCounts)
    for row in rows:
        change = changes[row.host]
        setattr(change, counted_as, getattr(change, counted_as) - 1)
        change.queued += 1
        if refund and row.attempts == 0:
            change.started -= 1
    bump_counts(conn, crawl_id, changes)
    refunded = -sum(c.started for c in changes.values())
    if refunded:
        conn.execute(
            update(crawls_t)
            .where(crawls_t.c.id == crawl_id)
            .values(urls_started=crawls_t.c.urls_started - refunded)
        )
    return len(rows)


def give_up(conn: Connection, crawl_id: int, run_id: int, rows: list, now: float) -> None:
    """Ready URLs that were leased max_attempts times without a result (their runs died on
    them) are marked failed, with a fetch row saying so, so that an export shows them. The
    caller holds their hosts' rows and counts them off `queued`."""
    unready(conn, crawl_id, rows)
    f = frontier_t.c
    conn.execute(
        update(frontier_t)
        .where(f.id.in_([row.id for row in rows]))
        .values(state=FAILED, attempts=case({row.id: row.attempts for row in rows}, value=f.id))
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
                "host": row.host,
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
