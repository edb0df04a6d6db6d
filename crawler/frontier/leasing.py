"""Leasing, host first: claim the hosts that are due, then take each one's ready URLs.

A host is due when it has ready URLs, its next allowed request and its breaker are past, and
it has a free slot; the claim reads hosts rows only (least recently leased first), with
SKIP LOCKED on PostgreSQL so that runs on several machines claim different hosts and never
wait for each other. Each claimed host's URLs come through its own index, shallowest first;
the policy decides which to take. The transaction is short and committed at once: no lock is
held while anything is fetched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Connection, bindparam, func, literal_column, or_, select, update

from crawler.frontier.recovery import give_up, promote_due_retries, reclaim_lapsed
from crawler.frontier.tables import (
    crawls_t,
    frontier_t,
    hosts_t,
    insert_rows,
    leases_t,
    ready_t,
    unready,
)
from crawler.model import FetchTask
from crawler.policy.admission import (
    GIVE_UP,
    LATER,
    NOTHING_HELD,
    TAKE,
    Admit,
    GiveUpHost,
    Held,
    HostView,
    RobotsVerdict,
    Wait,
    admit_host,
    admit_url,
    deepest_leasable,
    host_wait,
)
from crawler.policy.rules import CrawlRules
from crawler.store.models import SKIPPED
from crawler.urls import origin_of


class RobotsGate(Protocol):
    """What a lease asks about robots.txt (see robots_cache.RobotsKeeper)."""

    def verdict(self, conn: Connection, origin: str, now: float) -> RobotsVerdict: ...

    def sitemaps_pending(self, origin: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class LeaseRequest:
    crawl_id: int
    run_id: int
    rules: CrawlRules
    lease_seconds: float
    token_prefix: str  # unique to this lease: a row's token is the prefix and its id


@dataclass(slots=True)
class Lease:
    tasks: list[FetchTask] = field(default_factory=list)
    skipped: int = 0
    given_up: int = 0


def lease(
    conn: Connection,
    request: LeaseRequest,
    n: int,
    now: float,
    held: Mapping[str, Held],
    robots: RobotsGate | None,
) -> Lease:
    """Claim up to n URLs for the run (see the module docstring)."""
    result = Lease()
    promote_due_retries(conn, request.crawl_id, now)
    reclaim_lapsed(conn, request.crawl_id, now)
    budget_left = _budget_left(conn, request)
    taken_rows: list = []
    host_updates: list[dict] = []
    fresh_total = 0
    for host in _claim_due_hosts(conn, request, n, now, held):
        wanted = n - len(taken_rows)
        if wanted <= 0:
            break
        view = HostView(*host[1:8])
        mine = held.get(host.host, NOTHING_HELD)
        if host_wait(view, mine, now) is not None:
            continue
        rows = conn.execute(
            _READY_URLS, {"b_crawl": request.crawl_id, "b_host": host.host, "b_limit": wanted}
        ).all()
        if not rows:
            continue
        origin = origin_of(rows[0].url)
        verdict = robots.verdict(conn, origin, now) if robots is not None else None
        pending = robots is not None and robots.sitemaps_pending(origin)
        admitted = admit_host(view, mine, verdict, pending, request.rules, now)
        if isinstance(admitted, GiveUpHost):
            _skip(conn, request.crawl_id, rows, admitted.reason)
            host_updates.append(_host_update(host, now, skipped=len(rows)))
            result.skipped += len(rows)
            continue
        if isinstance(admitted, Wait):
            if admitted.shared and admitted.until is not None:
                _defer(conn, host.id, admitted.until)
            continue
        leased_min = rows[0].leased_min
        level = rows[0].depth if leased_min is None else min(rows[0].depth, leased_min)
        taken, skipped, gave_up, fresh = _pick(
            rows, level, admitted, view, budget_left, request.rules
        )
        if budget_left is not None:
            budget_left -= fresh
        fresh_total += fresh
        if gave_up:
            give_up(conn, request.crawl_id, request.run_id, gave_up, now)
        for row, reason in skipped:
            _skip(conn, request.crawl_id, [row], reason)
        taken_rows.extend(taken)
        result.skipped += len(skipped)
        result.given_up += len(gave_up)
        host_updates.append(
            _host_update(
                host,
                now,
                taken=len(taken),
                skipped=len(skipped) + len(gave_up),
                fresh=fresh,
                delay=admitted.delay,
                cap=admitted.cap,
            )
        )
    result.tasks = _lease_rows(conn, request, taken_rows, now)
    if host_updates:
        conn.execute(_UPDATE_HOST, host_updates)
    if fresh_total:
        conn.execute(
            update(crawls_t)
            .where(crawls_t.c.id == request.crawl_id)
            .values(urls_started=crawls_t.c.urls_started + fresh_total)
        )
    return result


# Built once: a lease runs these for every host it claims.
_r, _l = ready_t.c, leases_t.c
_leased_min = (
    select(func.min(_l.depth))
    .where(_l.crawl_id == bindparam("b_crawl"), _l.host == bindparam("b_host"))
    .scalar_subquery()
)
_READY_URLS = (
    select(
        _r.frontier_id.label("id"),
        _r.host,
        _r.depth,
        _r.url_key,
        _r.url,
        _r.attempts,
        _r.redirect_hops,
        _leased_min.label("leased_min"),
    )
    .where(_r.crawl_id == bindparam("b_crawl"), _r.host == bindparam("b_host"))
    .order_by(_r.depth, _r.url_key)
    .limit(bindparam("b_limit"))
)
_UPDATE_HOST = (
    update(hosts_t)
    .where(hosts_t.c.id == bindparam("b_id"))
    .values(
        queued=hosts_t.c.queued - bindparam("b_out"),
        in_flight=hosts_t.c.in_flight + bindparam("b_taken"),
        urls_started=hosts_t.c.urls_started + bindparam("b_fresh"),
        leased_at=bindparam("b_now"),
        delay=bindparam("b_delay"),
        cap=bindparam("b_cap"),
    )
)


def _host_update(
    host,
    now: float,
    *,
    taken: int = 0,
    skipped: int = 0,
    fresh: int = 0,
    delay: float | None = None,
    cap: int | None = None,
) -> dict:
    """Parameters of _UPDATE_HOST for a host a lease took `taken` URLs from and skipped
    `skipped` of; a host given up keeps its delay and cap."""
    return {
        "b_id": host.id,
        "b_out": taken + skipped,
        "b_taken": taken,
        "b_fresh": fresh,
        "b_now": now,
        "b_delay": host.delay if delay is None else delay,
        "b_cap": host.cap if delay is None else cap,
    }


def adopt(conn: Connection, request: LeaseRequest, now: float) -> list[FetchTask]:
    """The leases a lease made before its commit was cut off (the connection dropped as it
    committed): tried again, a lease first takes up what it may already hold."""
    lease_c = leases_t.c
    rows = conn.execute(
        select(leases_t).where(
            lease_c.run_id == request.run_id, lease_c.token.startswith(request.token_prefix)
        )
    ).all()
    return [
        FetchTask(
            row.frontier_id, row.url, row.depth, row.token, row.attempt, row.redirect_hops, now
        )
        for row in rows
    ]


def _budget_left(conn: Connection, request: LeaseRequest) -> int | None:
    max_pages = request.rules.limits.max_pages
    if max_pages is None:
        return None
    started = conn.execute(
        select(crawls_t.c.urls_started)
        .where(crawls_t.c.id == request.crawl_id)
        .with_for_update()  # runs on other machines take turns on the budget
    ).scalar_one()
    return max(0, max_pages - started)


def _claim_due_hosts(
    conn: Connection, request: LeaseRequest, n: int, now: float, held: Mapping[str, Held]
) -> list:
    h = hosts_t.c
    free_slot = [h.cap.is_(None), h.in_flight < h.cap]
    if held:  # this run's finished results free slots the rows do not know of yet
        free_slot.append(h.host.in_(sorted(held)))
    query = (
        select(
            h.id,  # then the fields of a HostView, in order
            h.host,
            h.queued,
            h.in_flight,
            h.next_fetch_at,
            h.breaker_until,
            h.urls_started,
            h.breaker_trips,
        )
        .add_columns(h.delay, h.cap)
        .where(
            h.crawl_id == request.crawl_id,
            h.queued > literal_column("0"),  # a literal, so the partial index applies
            h.next_fetch_at <= now,
            h.breaker_until <= now,
            or_(*free_slot),
        )
        .limit(n + len(held))
    )
    if request.rules.limits.bounded:
        query = query.order_by(h.host)  # level by level, the same hosts first on every run
    else:
        query = query.order_by(h.leased_at, h.host)  # hosts take turns
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return conn.execute(query).all()


def _skip(conn: Connection, crawl_id: int, rows: list, reason: str) -> None:
    """Ready URLs that will never be fetched: out of `ready`, skipped, with the reason."""
    unready(conn, crawl_id, rows)
    conn.execute(
        update(frontier_t)
        .where(frontier_t.c.id.in_([row.id for row in rows]))
        .values(state=SKIPPED, skip_reason=reason[:100])
    )


def _defer(conn: Connection, host_id: int, until: float) -> None:
    """Every run leaves the host alone until `until` (its robots.txt is being fetched)."""
    conn.execute(
        update(hosts_t)
        .where(hosts_t.c.id == host_id, hosts_t.c.next_fetch_at < until)
        .values(next_fetch_at=until)
    )


def _pick(rows, level: int, admitted: Admit, view: HostView, budget_left, rules: CrawlRules):
    """Walk a host's ready URLs in order and sort them: taken, skipped (with the reason),
    given up; returns those and how many of the taken are first attempts."""
    deepest = deepest_leasable(level, rules)
    taken, skipped, gave_up = [], [], []
    fresh = 0
    for row in rows:
        if row.depth > deepest:
            break
        if admitted.slots is not None and len(taken) >= admitted.slots:
            break
        left = None if budget_left is None else budget_left - fresh
        verdict = admit_url(
            row.url, row.attempts, admitted.robots, view.urls_started + fresh, left, rules
        )
        if verdict == TAKE:
            taken.append(row)
            fresh += row.attempts == 0
        elif verdict == GIVE_UP:
            gave_up.append(row)
        elif verdict != LATER:
            skipped.append((row, verdict))
    return taken, skipped, gave_up, fresh


def _lease_rows(conn: Connection, request: LeaseRequest, rows: list, now: float) -> list[FetchTask]:
    """The URLs move from `ready` to `leases`; their frontier rows are not touched. Each
    token is the lease's prefix and the URL's id."""
    if not rows:
        return []
    unready(conn, request.crawl_id, rows)
    tasks = [
        FetchTask(
            frontier_id=row.id,
            url=row.url,
            depth=row.depth,
            lease_token=f"{request.token_prefix}{row.id}",
            attempt=row.attempts + 1,
            redirect_hops=row.redirect_hops,
            leased_at=now,
        )
        for row in rows
    ]
    insert_rows(
        conn,
        leases_t,
        [
            {
                "frontier_id": row.id,
                "crawl_id": request.crawl_id,
                "host": row.host,
                "depth": row.depth,
                "url_key": row.url_key,
                "url": row.url,
                "attempt": task.attempt,
                "redirect_hops": row.redirect_hops,
                "run_id": request.run_id,
                "token": task.lease_token,
                "expires_at": now + request.lease_seconds,
            }
            for task, row in zip(tasks, rows, strict=True)
        ],
    )
    return tasks
