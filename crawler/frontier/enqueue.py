"""New URLs into the frontier: dedup on the unique key, the shallowest depth kept."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import Connection, bindparam, insert, or_, select, update

from crawler.frontier.tables import (
    HostCounts,
    bump_counts,
    ensure_hosts,
    frontier_t,
    in_state,
    lock_hosts,
)
from crawler.policy.links import NewURL
from crawler.store.models import QUEUED, RETRY

_deepen = (
    update(frontier_t)
    .where(
        frontier_t.c.crawl_id == bindparam("b_crawl"),
        frontier_t.c.url_key == bindparam("b_key"),
        or_(in_state(QUEUED), in_state(RETRY)),  # no IN: executemany cannot expand one
        frontier_t.c.depth > bindparam("b_depth"),
    )
    .values(
        depth=bindparam("b_depth"),
        found_from=bindparam("b_found_from"),
        redirect_hops=bindparam("b_hops"),
    )
)


def enqueue(
    conn: Connection,
    crawl_id: int,
    urls: Iterable[NewURL],
    changes: dict[str, HostCounts] | None = None,
    *,
    locked: bool = False,
) -> int:
    """Queue the URLs that are new; a URL already waiting (queued or in retry) that is found
    shallower takes the shallower depth, so a URL first reached on a slow deep path is still
    crawled at its true depth. Host counts go into `changes` (applied here when it is None).
    Returns how many URLs were new. `locked`: the caller holds the hosts' rows already."""
    by_key = {url.key: url for url in urls}
    if not by_key:
        return 0
    hosts = {url.host for url in by_key.values()}
    if not locked:
        ensure_hosts(conn, crawl_id, hosts)
        lock_hosts(conn, crawl_id, hosts)
    keys = sorted(by_key)
    existing: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        existing.update(
            conn.execute(
                select(frontier_t.c.url_key).where(
                    frontier_t.c.crawl_id == crawl_id, frontier_t.c.url_key.in_(chunk)
                )
            ).scalars()
        )
    new = [by_key[key] for key in keys if key not in existing]
    seen = [by_key[key] for key in keys if key in existing]
    own_changes = changes is None
    changes = defaultdict(HostCounts) if changes is None else changes
    if new:
        # The hosts' rows are locked, so no other run can be adding these URLs: a plain
        # INSERT, and a duplicate would be a bug, raised as one.
        conn.execute(
            insert(frontier_t),
            [
                {
                    "crawl_id": crawl_id,
                    "url": url.url,
                    "url_key": url.key,
                    "host": url.host,
                    "depth": url.depth,
                    "redirect_hops": url.redirect_hops,
                    "state": QUEUED,
                    "attempts": 0,
                    "next_attempt_at": 0.0,
                    "found_from": url.found_from,
                }
                for url in new
            ],
        )
        for url in new:
            changes.setdefault(url.host, HostCounts()).queued += 1
    if seen:
        conn.execute(
            _deepen,
            [
                {
                    "b_crawl": crawl_id,
                    "b_key": url.key,
                    "b_depth": url.depth,
                    "b_found_from": url.found_from,
                    "b_hops": url.redirect_hops,
                }
                for url in seen
            ],
        )
    if own_changes:
        bump_counts(conn, crawl_id, changes)
    return len(new)
