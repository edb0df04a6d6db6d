"""New URLs into the frontier: dedup on the unique key, the shallowest depth kept."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import Connection, bindparam, select, update

from crawler.frontier.tables import (
    HostCounts,
    bump_counts,
    ensure_hosts,
    frontier_t,
    insert_rows,
    insert_with_ids,
    lock_hosts,
    ready_row,
    ready_t,
)
from crawler.policy.links import NewURL
from crawler.store.models import QUEUED, RETRY
from crawler.store.tables import in_crawl

_deepen = (
    update(frontier_t)
    .where(frontier_t.c.id == bindparam("b_id"))
    .values(
        depth=bindparam("b_depth"),
        found_from=bindparam("b_found_from"),
        redirect_hops=bindparam("b_hops"),
    )
)
_deepen_ready = (
    update(ready_t)
    .where(
        ready_t.c.crawl_id == bindparam("b_crawl"),
        ready_t.c.host == bindparam("b_host"),
        ready_t.c.depth == bindparam("b_old"),
        ready_t.c.url_key == bindparam("b_key"),
    )
    .values(depth=bindparam("b_depth"), redirect_hops=bindparam("b_hops"))
)


def enqueue(
    conn: Connection,
    crawl_id: int,
    urls: Iterable[NewURL],
    changes: dict[str, HostCounts] | None = None,
    *,
    locked: bool = False,
    known: dict | None = None,
) -> int:
    """Queue the URLs that are new; a URL already waiting (ready, or for a retry) that is
    found shallower takes the shallower depth, so a URL first reached on a slow deep path is
    still crawled at its true depth. Host counts go into `changes` (applied here when it is
    None). Returns how many URLs were new. `locked`: the caller holds the hosts' rows;
    `known`: what `known_urls` read of these URLs before the lock was taken."""
    by_key = {url.key: url for url in urls}
    if not by_key:
        return 0
    hosts = {url.host for url in by_key.values()}
    if not locked:
        ensure_hosts(conn, crawl_id, hosts)
        lock_hosts(conn, crawl_id, hosts)
    known = known or {}
    # A row, once there, stays; only the URLs not seen before the lock, and those that
    # may take a shallower depth (their state may have moved), are read again under it.
    again = [key for key in sorted(by_key) if key not in known or _may_deepen(known[key], by_key)]
    existing = {key: row for key, row in known.items() if key in by_key}
    existing.update(_existing(conn, crawl_id, again))
    own_changes = changes is None
    changes = defaultdict(HostCounts) if changes is None else changes
    new = [url for key, url in sorted(by_key.items()) if key not in existing]
    if new:
        # The hosts' rows are locked, so no other run can be adding these URLs: a plain
        # INSERT, and a duplicate would be a bug, raised as one.
        ids = insert_with_ids(
            conn,
            frontier_t,
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
        insert_rows(
            conn,
            ready_t,
            [ready_row(crawl_id, id_, url) for id_, url in zip(ids, new, strict=True)],
        )
        for url in new:
            changes.setdefault(url.host, HostCounts()).queued += 1
    _deepen_waiting(conn, crawl_id, by_key, existing)
    if own_changes:
        bump_counts(conn, crawl_id, changes)
    return len(new)


def known_urls(conn: Connection, crawl_id: int, urls: Iterable[NewURL]) -> dict:
    """The frontier rows these URLs already have, read before their hosts are locked, so that
    most of a page's links (seen before) are not looked up while other workers wait."""
    return _existing(conn, crawl_id, sorted({url.key for url in urls}))


def _may_deepen(row, by_key: dict) -> bool:
    return by_key[row.url_key].depth < row.depth and row.state in (QUEUED, RETRY)


def _existing(conn: Connection, crawl_id: int, keys: list[str]) -> dict:
    """The frontier rows these keys already have, and whether each is ready now."""
    f, r = frontier_t.c, ready_t.c
    # A subquery on the ready row's whole key, not a join: a join lets the planner read every
    # ready row of a crawl it believes small, for each URL.
    ready = (
        select(r.url_key)
        .where(
            r.crawl_id == f.crawl_id,
            r.host == f.host,
            r.depth == f.depth,
            r.url_key == f.url_key,
        )
        .scalar_subquery()
    )
    found = {}
    for start in range(0, len(keys), 500):
        rows = conn.execute(
            select(f.id, f.url_key, f.host, f.depth, f.state, ready.label("ready")).where(
                in_crawl(f.crawl_id, crawl_id), f.url_key.in_(keys[start : start + 500])
            )
        )
        found.update((row.url_key, row) for row in rows)
    return found


def _deepen_waiting(conn: Connection, crawl_id: int, by_key: dict, existing: dict) -> None:
    """URLs ready or waiting for a retry, found at a shallower depth than they have, take it
    (one in flight keeps the depth it was leased at)."""
    deeper = [
        (row, by_key[key])
        for key, row in existing.items()
        if by_key[key].depth < row.depth
        and ((row.state == QUEUED and row.ready is not None) or row.state == RETRY)
    ]
    if not deeper:
        return
    conn.execute(
        _deepen,
        [
            {
                "b_id": row.id,
                "b_depth": url.depth,
                "b_found_from": url.found_from,
                "b_hops": url.redirect_hops,
            }
            for row, url in deeper
        ],
    )
    ready = [(row, url) for row, url in deeper if row.ready is not None]
    if ready:
        conn.execute(
            _deepen_ready,
            [
                {
                    "b_crawl": crawl_id,
                    "b_host": row.host,
                    "b_old": row.depth,
                    "b_key": row.url_key,
                    "b_depth": url.depth,
                    "b_hops": url.redirect_hops,
                }
                for row, url in ready
            ],
        )
