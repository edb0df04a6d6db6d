"""One run's handle on a crawl's frontier. Each method is one transaction, retried through a
locked or dropped database (`store.failures.retrying`); the decisions inside are the policy's.
Only the coordinator of a process uses it, from one thread."""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from time import perf_counter

from sqlalchemy import Connection, Engine, func, select

from crawler.frontier.enqueue import enqueue
from crawler.frontier.leasing import Lease, LeaseRequest, RobotsGate, adopt, lease
from crawler.frontier.liveness import beat, bury_silent
from crawler.frontier.recovery import give_back, release_runs
from crawler.frontier.storing import BatchPlan, Stored, store_batch
from crawler.frontier.tables import crawls_t, hosts_t
from crawler.model import FetchResult, FetchTask
from crawler.policy.admission import Held
from crawler.policy.links import NewURL, RecentKeys, sitemap_urls
from crawler.policy.liveness import beat_due, ends_a_gap, may_judge
from crawler.policy.rules import CrawlRules
from crawler.store.clock import DatabaseClock
from crawler.store.failures import Failure, retrying

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FrontierCounts:
    """The crawl's URLs by state, from the hosts' maintained counts (no scan of the queue)."""

    queued: int = 0
    in_flight: int = 0
    retrying: int = 0
    urls_started: int = 0


def read_counts(conn: Connection, crawl_id: int) -> FrontierCounts:
    h = hosts_t.c
    queued, in_flight, waiting = conn.execute(
        select(
            func.coalesce(func.sum(h.queued), 0),
            func.coalesce(func.sum(h.in_flight), 0),
            func.coalesce(func.sum(h.retrying), 0),
        ).where(h.crawl_id == crawl_id)
    ).one()
    started = conn.execute(
        select(crawls_t.c.urls_started).where(crawls_t.c.id == crawl_id)
    ).scalar_one()
    return FrontierCounts(int(queued), int(in_flight), int(waiting), started)


class Frontier:
    def __init__(
        self,
        engine: Engine,
        crawl_id: int,
        run_id: int,
        rules: CrawlRules,
        *,
        lease_seconds: float = 120.0,
        worker_timeout: float = 30.0,
        robots: RobotsGate | None = None,
        then: str = "run the command again",
    ) -> None:
        self.engine = engine
        self.crawl_id = crawl_id
        self.run_id = run_id
        self.rules = rules
        self.lease_seconds = lease_seconds
        self.worker_timeout = worker_timeout
        self.clock = DatabaseClock()
        self._beaten = perf_counter()  # when this run's last heartbeat got through
        self._steady_since = self._beaten  # since when its beats got through on time
        self._beating = False
        self.robots = robots
        self.recent = RecentKeys()
        self.rng = random.Random()
        self.store_s = 0.0  # time spent storing batches, for the run's cost
        self.then = then  # what a database failure's message tells the user to do next

    def _transaction(self, work, *, read_only: bool = False):
        return retrying(
            self.engine, work, read_only=read_only, then=self.then, meanwhile=self._while_locked
        )

    def _while_locked(self, failure: Failure) -> None:
        """Waiting for a lock, this run still beats and judges: the lock may be held by a run
        that stopped inside its transaction, which only burial ends."""
        if failure is Failure.LOCKED and not self._beating:
            self.beat()

    def lease(self, n: int, held: Mapping[str, Held]) -> Lease:
        """Up to n URLs for this run (see frontier.leasing). Tried again after a connection
        that dropped as it committed, a lease first takes up the leases it already made."""
        if n <= 0:
            return Lease()
        request = LeaseRequest(
            self.crawl_id,
            self.run_id,
            self.rules,
            self.lease_seconds,
            token_prefix=uuid.uuid4().hex[:16] + "-",
        )
        tries = 0

        def work(conn: Connection) -> Lease:
            nonlocal tries
            tries += 1
            now = self.clock.read(conn)
            if tries > 1 and (adopted := adopt(conn, request, now)):
                return Lease(adopted)
            if self.robots is not None and self.robots.unsettled:
                urls = self.robots.settle(conn, now)
                enqueue(conn, self.crawl_id, sitemap_urls(urls, self.rules))
            return lease(conn, request, n, now, held, self.robots)

        leased = self._transaction(work)
        if self.clock.offset:  # the queue wait is measured on this machine's clock
            for at, task in enumerate(leased.tasks):
                leased.tasks[at] = replace(task, leased_at=self.clock.to_local(task.leased_at))
        return leased

    def store(self, results: list[FetchResult]) -> Stored:
        """Store a batch in one transaction (see frontier.storing)."""
        started = perf_counter()
        plan = BatchPlan.of(results, self.rules, self.recent, self.clock.now(), self.rng)
        stored = self._transaction(
            lambda conn: store_batch(
                conn, self.crawl_id, self.run_id, plan, self.rules, self.clock.read(conn)
            )
        )
        stored.log()
        for url in stored.queued:
            self.recent.add(url.key, url.depth)
        self.store_s += perf_counter() - started
        return stored

    def beat(self, *, force: bool = False) -> None:
        """The heartbeat (see policy.liveness and frontier.liveness), when one is due (or
        `force`d: the first, once the frontend is up); raises DeclaredDead once the others
        have taken this run's work over. Then the silent runs of others are judged, in a
        transaction of their own, when this run may judge."""
        started = perf_counter()
        since = started - self._beaten
        if self._beating or (not force and not beat_due(since, self.worker_timeout)):
            return
        self._beating = True
        try:
            self._beat(started, since)
        finally:
            self._beating = False

    def stop_beating(self) -> None:
        """The run is ending: what is left (storing, giving back) beats and judges no more."""
        self._beating = True

    def _beat(self, started: float, since: float) -> None:
        judge = may_judge(since, started - self._steady_since, self.worker_timeout)
        self._transaction(lambda conn: beat(conn, self.run_id, self.clock.read(conn)))
        done = perf_counter()
        if ends_a_gap(done - self._beaten, self.worker_timeout):
            self._steady_since = done
        self._beaten = done
        if not judge:
            return
        buried = self._transaction(
            lambda conn: bury_silent(
                conn, self.crawl_id, self.run_id, self.clock.read(conn), self.worker_timeout
            )
        )
        if buried:
            log.warning(
                "runs %s of crawl %d were silent for %g s: declared dead, their URLs back "
                "in the queue",
                ", ".join(map(str, buried)),
                self.crawl_id,
                self.worker_timeout,
            )

    def enqueue(self, urls: Iterable[NewURL]) -> int:
        urls = list(urls)
        return self._transaction(lambda conn: enqueue(conn, self.crawl_id, urls))

    def release(self, run_ids: list[int], *, refund: bool) -> int:
        """Give back the leases (and robots.txt claims) of runs that stopped or died."""
        return self._transaction(
            lambda conn: release_runs(conn, self.crawl_id, run_ids, refund=refund)
        )

    def give_back(self, tasks: list[FetchTask]) -> int:
        """Tasks whose worker died: their URLs go back to the queue, the attempt counted."""
        return self._transaction(lambda conn: give_back(conn, self.crawl_id, tasks))

    def counts(self) -> FrontierCounts:
        return self._transaction(lambda conn: read_counts(conn, self.crawl_id), read_only=True)

    def finished(self) -> bool:
        counts = self.counts()
        return self.rules.limits.finished(
            counts.queued, counts.in_flight, counts.retrying, counts.urls_started
        )
