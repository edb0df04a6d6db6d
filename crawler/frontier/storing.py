"""Storing a batch of results, in one transaction: the fetch rows, the pages and their links,
the URLs they lead to, each URL's new state, and what the batch teaches about its hosts.

A result is stored only if its lease is still the one it was fetched under (the row's token
matches): a lease that lapsed and was taken over by another run is fenced off, and that run
stores its own result. So a batch tried again after a dropped connection stores nothing twice.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import Connection, bindparam, delete, update

from crawler.frontier.enqueue import enqueue, known_urls
from crawler.frontier.tables import (
    HostCounts,
    bump_counts,
    ensure_hosts,
    fetches_t,
    frontier_t,
    hosts_t,
    in_state,
    insert_rows,
    insert_with_ids,
    leases_t,
    links_t,
    lock_hosts,
    pages_t,
    ready_t,
)
from crawler.log_text import ordinal
from crawler.model import FetchResult
from crawler.policy.links import NewURL, RecentKeys, follow_links
from crawler.policy.outcomes import FAILED, RETRY, HostTally, Outcome, outcome_of, tally_host
from crawler.policy.rules import CrawlRules
from crawler.store.models import SKIPPED
from crawler.urls import host_of

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """What the policy says of each result, worked out before the transaction (so a try
    again after a dropped connection stores the same thing)."""

    results: list[FetchResult]
    hosts: list[str]
    outcomes: list[Outcome]
    followed: list[list[bool]]  # per result, per link on its page
    leads: list[list[NewURL]]  # per result: the URLs it leads to (links, a redirect)

    @classmethod
    def of(
        cls,
        results: list[FetchResult],
        rules: CrawlRules,
        recent: RecentKeys,
        now: float,
        rng: random.Random,
    ) -> BatchPlan:
        outcomes, followed, leads = [], [], []
        for result in results:
            outcome = outcome_of(result, rules, now, rng)
            queue: dict[str, NewURL] = {}
            flags = []
            if result.page is not None:
                task = result.task
                flags = follow_links(
                    result.page.links, task.depth, task.frontier_id, rules, recent, queue
                )
            if outcome.redirect_to is not None:
                hop = NewURL.of(
                    outcome.redirect_to,
                    result.task.depth,
                    result.task.frontier_id,
                    result.task.redirect_hops + 1,
                )
                queue.setdefault(hop.key, hop)
            outcomes.append(outcome)
            followed.append(flags)
            leads.append(list(queue.values()))
        return cls(results, [host_of(r.task.url) for r in results], outcomes, followed, leads)


@dataclass(slots=True)
class Stored:
    """What storing a batch did."""

    fetches: int = 0
    pages: int = 0
    errors: int = 0
    retries: int = 0  # failed attempts queued to be tried again
    fenced: int = 0  # results dropped: their lease had been taken over
    skipped: int = 0  # URLs of a host whose breaker opened too often
    queued: list[NewURL] = field(default_factory=list)  # URLs found and queued (or deepened)
    # For the log, once the transaction is committed (a try again would say it twice):
    exhausted: list[tuple[str, int, str]] = field(default_factory=list)  # url, attempts, why
    breakers: list[tuple[str, int, float]] = field(default_factory=list)  # host, trips, rest s
    given_up: list[tuple[str, int, str]] = field(default_factory=list)  # host, skipped, why

    def log(self) -> None:
        """Say what this batch did that a user watching the crawl should know."""
        for url, attempts, why in self.exhausted:
            log.info("gave up on %s after %d attempts; last error: %s", url, attempts, why)
        for host, trips, rest in self.breakers:
            log.warning(
                "host %s: breaker opened (%s time), resting %g s", host, ordinal(trips), rest
            )
        for host, skipped, why in self.given_up:
            log.warning("host %s given up (%s): %d waiting URLs skipped", host, why, skipped)


def store_batch(
    conn: Connection, crawl_id: int, run_id: int, plan: BatchPlan, rules: CrawlRules, now: float
) -> Stored:
    stored = Stored()
    lead_hosts = {url.host for urls in plan.leads for url in urls}
    ensure_hosts(conn, crawl_id, {*plan.hosts, *lead_hosts})
    # The fence first, on the leases' own rows: a lease is deleted by one transaction only.
    closed = _close_leases(conn, plan)
    accepted = [i for i, r in enumerate(plan.results) if r.task.frontier_id in closed]
    stored.fenced = len(plan.results) - len(accepted)
    if not accepted:
        return stored
    fetch_ids = _insert_fetches(conn, crawl_id, run_id, plan, accepted)
    stored.fetches = len(accepted)
    stored.pages = _insert_pages_and_links(conn, crawl_id, plan, accepted, fetch_ids)
    all_leads = [url for i in accepted for url in plan.leads[i]]
    known = known_urls(conn, crawl_id, all_leads)
    # Only now the hosts' rows, for their counts and new URLs: every other worker's lease
    # skips a locked host, so they are held for the least work that needs them.
    host_rows = lock_hosts(conn, crawl_id, {*plan.hosts, *lead_hosts})
    changes: dict[str, HostCounts] = defaultdict(HostCounts)
    leads: dict[str, NewURL] = {}
    for i in accepted:
        outcome = plan.outcomes[i]
        changes[plan.hosts[i]].in_flight -= 1
        if outcome.state == RETRY:
            changes[plan.hosts[i]].retrying += 1
            stored.retries += 1
        result = plan.results[i]
        stored.errors += outcome.error_kind is not None or (result.status or 0) >= 400
        if outcome.state == FAILED and result.task.attempt >= rules.retry.max_attempts:
            why = outcome.error_kind or f"HTTP {result.status}"
            stored.exhausted.append((result.task.url, result.task.attempt, why))
        for url in plan.leads[i]:
            if url.key not in leads or leads[url.key].depth > url.depth:
                leads[url.key] = url
    enqueue(conn, crawl_id, leads.values(), changes, locked=True, known=known)
    stored.queued = list(leads.values())
    failing = _tally_hosts(conn, plan, accepted, host_rows, rules, now, stored.breakers)
    bump_counts(conn, crawl_id, changes)
    for host, reason in failing:
        skipped = _skip_host(conn, crawl_id, host, reason)
        stored.skipped += skipped
        stored.given_up.append((host, skipped, reason))
    return stored


_SET_OUTCOME = (
    update(frontier_t)
    .where(frontier_t.c.id == bindparam("b_id"))
    .values(
        state=bindparam("b_state"),
        attempts=bindparam("b_attempts"),
        next_attempt_at=bindparam("b_next"),
    )
)


def _close_leases(conn: Connection, plan: BatchPlan) -> set[int]:
    """Each result's URL is done, failed, or waits for a retry, if its lease still holds (its
    row in `leases` has the token it was fetched under); its frontier row is written now, for
    the first time since it was found. Returns the ids of those closed."""
    tasks = [r.task for r in plan.results]
    lease_c = leases_t.c
    closed = dict(
        conn.execute(
            delete(leases_t)
            .where(
                lease_c.frontier_id.in_([t.frontier_id for t in tasks]),
                lease_c.token.in_([t.lease_token for t in tasks]),
            )
            .returning(lease_c.frontier_id, lease_c.attempt)
        ).all()
    )
    outcomes = [
        {
            "b_id": task.frontier_id,
            "b_state": outcome.state,
            "b_attempts": closed[task.frontier_id],
            "b_next": outcome.retry_at or 0.0,
        }
        for task, outcome in zip(tasks, plan.outcomes, strict=True)
        if task.frontier_id in closed
    ]
    if outcomes:
        conn.execute(_SET_OUTCOME, outcomes)
    return set(closed)


def _insert_fetches(
    conn: Connection, crawl_id: int, run_id: int, plan: BatchPlan, accepted: list[int]
) -> list[int]:
    rows = []
    for i in accepted:
        r, outcome = plan.results[i], plan.outcomes[i]
        rows.append(
            {
                "crawl_id": crawl_id,
                "frontier_id": r.task.frontier_id,
                "run_id": run_id,
                "worker": r.worker[:100],
                "url": r.task.url,
                "host": plan.hosts[i],
                "attempt": r.task.attempt,
                "started_at": r.started_at,
                "status": r.status,
                "content_type": (r.content_type or "")[:200] or None,
                "body_bytes": r.body_bytes,
                "location": r.location,
                "error_kind": outcome.error_kind,
                "error_message": outcome.error_message,
                "queue_wait_s": r.timings.queue_wait,
                "connect_s": r.timings.connect,
                "first_byte_s": r.timings.first_byte,
                "download_s": r.timings.download,
                "parse_s": r.timings.parse,
                "total_s": r.timings.total,
            }
        )
    return insert_with_ids(conn, fetches_t, rows)


def _insert_pages_and_links(
    conn: Connection, crawl_id: int, plan: BatchPlan, accepted: list[int], fetch_ids: list[int]
) -> int:
    with_pages = [
        (i, fid) for i, fid in zip(accepted, fetch_ids, strict=True) if plan.results[i].page
    ]
    if not with_pages:
        return 0
    page_rows = []
    for i, fetch_id in with_pages:
        r = plan.results[i]
        page_rows.append(
            {
                "crawl_id": crawl_id,
                "frontier_id": r.task.frontier_id,
                "fetch_id": fetch_id,
                "url": r.task.url,
                "title": r.page.title,
                "canonical": r.page.canonical,
                "charset": r.page.charset,
                "link_count": len(r.page.links),
                "content_hash": r.page.content_hash,
            }
        )
    page_ids = insert_with_ids(conn, pages_t, page_rows)
    link_rows = [
        {
            "page_id": page_id,
            "position": position,
            "url": link.url,
            "anchor_text": link.anchor_text,
            "rel": link.rel[:200],
            "nofollow": link.nofollow,
            "followed": followed,
        }
        for (i, _), page_id in zip(with_pages, page_ids, strict=True)
        for position, (link, followed) in enumerate(
            zip(plan.results[i].page.links, plan.followed[i], strict=True)
        )
    ]
    insert_rows(conn, links_t, link_rows)
    return len(with_pages)


def _tally_hosts(
    conn: Connection,
    plan: BatchPlan,
    accepted: list[int],
    host_rows: dict,
    rules: CrawlRules,
    now: float,
    opened: list[tuple[str, int, float]],
) -> list[tuple[str, str]]:
    """Update each host the batch touched (its next allowed request, its breaker); returns
    the hosts whose breaker opened too often, with the reason to skip their URLs, and adds
    to `opened` each host whose breaker opened now (its trips, how long it rests)."""
    by_host: dict[str, list[FetchResult]] = defaultdict(list)
    for i in accepted:
        by_host[plan.hosts[i]].append(plan.results[i])
    failing = []
    for host in sorted(by_host):
        row = host_rows[host]
        before = HostTally(row.next_fetch_at, row.failures, row.breaker_until, row.breaker_trips)
        after, skip_reason = tally_host(before, by_host[host], row.delay, rules, now)
        if after != before:
            conn.execute(
                update(hosts_t)
                .where(hosts_t.c.id == row.id)
                .values(
                    next_fetch_at=after.next_fetch_at,
                    failures=after.failures,
                    breaker_until=after.breaker_until,
                    breaker_trips=after.trips,
                )
            )
        if skip_reason is not None:
            failing.append((host, skip_reason))
        elif after.trips > before.trips:
            opened.append((host, after.trips, after.breaker_until - now))
    return failing


def _skip_host(conn: Connection, crawl_id: int, host: str, reason: str) -> int:
    """Every URL of the host still waiting (ready, or for a retry) is skipped for good; its
    counts are applied already, so they are simply zero now. URLs in flight finish."""
    f = frontier_t.c
    ready = (
        conn.execute(
            delete(ready_t)
            .where(ready_t.c.crawl_id == crawl_id, ready_t.c.host == host)
            .returning(ready_t.c.frontier_id)
        )
        .scalars()
        .all()
    )
    skipped = {"state": SKIPPED, "skip_reason": reason[:100]}
    if ready:
        conn.execute(update(frontier_t).where(f.id.in_(ready)).values(**skipped))
    waiting = conn.execute(
        update(frontier_t)
        .where(f.crawl_id == crawl_id, in_state(RETRY), f.host == host)
        .values(**skipped)
    ).rowcount
    conn.execute(
        update(hosts_t)
        .where(hosts_t.c.crawl_id == crawl_id, hosts_t.c.host == host)
        .values(queued=0, retrying=0)
    )
    return len(ready) + waiting
