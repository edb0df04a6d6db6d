"""Per-host state in the database, shared by every run on every machine: whether a host may be
asked now (politeness, Retry-After, the circuit breaker, robots.txt, its page limit), and
what each stored batch teaches about it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from crawler.model import FetchResult
from crawler.retry import host_free_at
from crawler.robots_cache import UNAVAILABLE
from crawler.store.models import Host
from crawler.urls import host_of, origin_of

if TYPE_CHECKING:
    from crawler.frontier import Frontier

hosts_t = Host.__table__


class _Verdict:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


ADMIT: Final = _Verdict("ADMIT")  # lease it now
WAIT: Final = _Verdict("WAIT")  # not now: pass the host over in this lease
# Anything else admit() returns is the reason to skip the URL for good.


def ensure_hosts(conn: Connection, crawl_id: int, hosts: list[str]) -> None:
    """Create the hosts' rows if they are new (in key order, so no two runs deadlock)."""
    if not hosts:
        return
    insert = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
    conn.execute(
        insert(hosts_t).on_conflict_do_nothing(index_elements=["crawl_id", "host"]),
        [
            {
                "crawl_id": crawl_id,
                "host": host,
                "next_fetch_at": 0.0,
                "failures": 0,
                "breaker_until": 0.0,
                "breaker_trips": 0,
                "urls_started": 0,
            }
            for host in sorted(set(hosts))
        ],
    )


def _load(conn: Connection, crawl_id: int, host: str, *, lock: str | None = None):
    """A host's row; with lock="wait" or "skip", locked until the transaction ends (on
    PostgreSQL; SQLite's writers take turns anyway). "skip" returns None for a row another
    run holds."""
    query = select(hosts_t).where(hosts_t.c.crawl_id == crawl_id, hosts_t.c.host == host)
    if lock:
        query = query.with_for_update(skip_locked=lock == "skip")
    return conn.execute(query).first()


@dataclass(slots=True)
class _HostNow:
    level: int | None
    leased: int | None  # read only for a host with a cap
    not_before: float  # the later of the next allowed request and the breaker's reopening
    urls_started: int
    newly_started: int = 0


class HostBook:
    """What one lease() knows about the hosts it meets, read once per host per lease."""

    def __init__(self, frontier: Frontier, conn: Connection, now: float) -> None:
        self.frontier = frontier
        self.conn = conn
        self.now = now
        self._hosts: dict[str, _HostNow] = {}

    def _state(self, host: str) -> _HostNow:
        state = self._hosts.get(host)
        if state is None:
            # The host's row is held until this lease commits, so that two runs cannot both
            # admit it against the same count; a host another run is leasing just now waits.
            frontier = self.frontier
            if host not in frontier.known_hosts:
                ensure_hosts(self.conn, frontier.crawl_id, [host])
                frontier.known_hosts.add(host)
            row = _load(self.conn, frontier.crawl_id, host, lock="skip")
            if row is None:
                state = self._hosts[host] = _HostNow(None, 0, float("inf"), 0)
                return state
            state = self._hosts[host] = _HostNow(
                level=frontier.cached_level(self.conn, host, self.now),
                leased=None,
                not_before=max(
                    row.next_fetch_at,
                    row.breaker_until,
                    self.frontier.local_not_before.get(host, 0.0),
                ),
                urls_started=row.urls_started,
            )
        return state

    def admit(self, row) -> _Verdict | str:
        """ADMIT, WAIT, or why the URL is skipped for good."""
        frontier = self.frontier
        state = self._state(row.host)
        slack = 0 if frontier.limits.bounded else 1
        if state.level is not None and row.depth > state.level + slack:
            return WAIT
        if state.not_before > self.now:
            return WAIT
        crawl_delay = None
        if frontier.robots is not None:
            origin = origin_of(row.url)
            rules = frontier.robots.rules(self.conn, origin, self.now)
            if rules is None:
                return WAIT  # robots.txt is being fetched, or retried after a failure
            if rules is UNAVAILABLE:
                return "robots.txt unavailable"
            if not rules.allowed(row.url):
                return "disallowed by robots.txt"
            if frontier.robots.sitemaps_pending(origin):
                return WAIT
            crawl_delay = rules.crawl_delay
        per_host_max = frontier.limits.max_pages_per_host
        started = state.urls_started + state.newly_started
        if per_host_max is not None and row.attempts == 0 and started >= per_host_max:
            return f"host page limit ({per_host_max})"
        delay = frontier.politeness.delay_for(row.host, crawl_delay)
        frontier.host_delays[row.host] = delay
        cap = frontier.politeness.concurrency_for(row.host, delay)
        if cap is not None:
            if state.leased is None:
                state.leased = frontier.leased_on(self.conn, row.host)
            if state.leased >= cap:
                return WAIT
        return ADMIT

    def take(self, row) -> None:
        state = self._state(row.host)
        if state.leased is not None:
            state.leased += 1
        state.newly_started += row.attempts == 0

    def save(self) -> None:
        started = {h: s.newly_started for h, s in self._hosts.items() if s.newly_started}
        if not started:
            return
        ensure_hosts(self.conn, self.frontier.crawl_id, list(started))
        for host, count in sorted(started.items()):
            self.conn.execute(
                update(hosts_t)
                .where(hosts_t.c.crawl_id == self.frontier.crawl_id, hosts_t.c.host == host)
                .values(urls_started=hosts_t.c.urls_started + count)
            )


def learn_from(frontier: Frontier, conn: Connection, results: list[FetchResult]) -> None:
    """Update each host a stored batch touched: the earliest next request (its delay after
    the last one ended, a Retry-After), and the breaker's count of failures in a row."""
    by_host: dict[str, list[FetchResult]] = {}
    for result in results:
        by_host.setdefault(host_of(result.task.url), []).append(result)
    new_hosts = [host for host in by_host if host not in frontier.known_hosts]
    ensure_hosts(conn, frontier.crawl_id, new_hosts)
    frontier.known_hosts.update(new_hosts)
    now = time.time()
    breaker = frontier.breaker
    for host in sorted(by_host):
        row = _load(conn, frontier.crawl_id, host, lock="wait")
        next_fetch_at, failures = row.next_fetch_at, row.failures
        breaker_until, trips = row.breaker_until, row.breaker_trips
        delay = frontier.host_delays.get(host, 0.0)
        for result in sorted(by_host[host], key=lambda r: r.started_at + r.timings.total):
            next_fetch_at = max(next_fetch_at, host_free_at(result, delay, frontier.retry, now))
            failures, opened = breaker.tally(failures, result)
            if opened:
                trips += 1
                breaker_until = now + breaker.cooldown(trips)
                if trips >= breaker.max_trips:
                    frontier.skip_host(conn, host, f"host failing: breaker opened {trips} times")
        learned = (next_fetch_at, failures, breaker_until, trips)
        if learned == (row.next_fetch_at, row.failures, row.breaker_until, row.breaker_trips):
            continue
        conn.execute(
            update(hosts_t)
            .where(hosts_t.c.id == row.id)
            .values(
                next_fetch_at=next_fetch_at,
                failures=failures,
                breaker_until=breaker_until,
                breaker_trips=trips,
            )
        )
