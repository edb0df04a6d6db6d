"""The loop every frontend shares: lease URLs, hand them to the frontend, collect what it
finishes, store it in batches, and stop cleanly.

The coordinator runs on the process's main thread and is the only one that talks to the
database. A frontend only says how it waits for I/O: it starts its pool or event loop, takes
tasks with `submit`, hands finished ones to `deliver` from whatever thread it runs them on,
and `stop`s at once when asked. So the three frontends lease, batch, store, account per host
and stop in exactly the same way, and only their way of waiting differs.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from time import perf_counter
from typing import Protocol

from crawler.frontier.repository import Frontier
from crawler.frontier.storing import Stored
from crawler.model import FetchPolicy, FetchResult, FetchTask
from crawler.policy.pending import PendingHosts

log = logging.getLogger(__name__)
IDLE_POLL_S = 0.2  # nothing in flight and nothing leasable: look again this often
GATHER_S = 0.02  # the longest a finished result waits for others before it is taken in
LOST_AFTER_S = 5.0  # past the deadline: a task whose worker died will never answer

Outcome = FetchResult | BaseException  # a result, or the exception a worker's bug raised
Deliver = Callable[[FetchTask, Outcome], None]


class Frontend(Protocol):
    """How one concurrency model waits for I/O (see crawler/frontends/)."""

    def start(self, policy: FetchPolicy, concurrency: int, deliver: Deliver) -> None:
        """Start the pool or loop; returns when it can take tasks."""

    def submit(self, tasks: list[FetchTask]) -> None:
        """Fetch and parse each task, `concurrency` at a time (the others wait in the
        frontend's queue); call `deliver(task, result)` as each is done, from any thread."""

    def stop(self) -> None:
        """Abandon what is in flight and shut down, within a few seconds."""

    @property
    def ipc_bytes(self) -> int:
        """Bytes moved between processes (0 for one process)."""


@dataclass(slots=True)
class Progress:
    """This run's counters, for the progress display and the runs row."""

    fetches: int = 0
    pages: int = 0
    errors: int = 0
    fenced: int = 0  # results dropped because their lease had been taken over
    retries: int = 0  # failed attempts queued to be tried again
    skipped: int = 0  # URLs never to be fetched (robots.txt, host limits)
    batches: int = 0
    queued: int = 0  # ready in the whole crawl, refreshed at most once a second
    started: float = field(default_factory=perf_counter)

    def add(self, stored: Stored) -> None:
        self.fetches += stored.fetches
        self.pages += stored.pages
        self.errors += stored.errors
        self.fenced += stored.fenced
        self.retries += stored.retries
        self.skipped += stored.skipped
        self.batches += 1


@dataclass(frozen=True, slots=True)
class RunReport:
    """What only the frontend's side of a run knows."""

    workers: int
    startup_s: float
    ipc_bytes: int


class Inbox:
    """Finished work on its way from the frontend's threads to the coordinator.

    The coordinator is woken once `wake_after` results have arrived (or its wait times out),
    not for each one: at high concurrency a wake-up per result would have the two threads
    hand the GIL back and forth a thousand times a second, and the event loop, starved, would
    miss its connect timeouts. Closed before the frontend is stopped: what a stop breaks is
    our doing, not the server's, and is never stored as its answer."""

    def __init__(self, wake_after: int = 1) -> None:
        self._arrived: list[tuple[FetchTask, Outcome]] = []
        self._lock = threading.Condition()
        self._open = True
        self._wake_after = wake_after

    def deliver(self, task: FetchTask, outcome: Outcome) -> None:
        with self._lock:
            if self._open:
                self._arrived.append((task, outcome))
                if len(self._arrived) >= self._wake_after:
                    self._lock.notify()

    def close(self) -> None:
        with self._lock:
            self._open = False

    def take(self, timeout: float) -> list[tuple[FetchTask, Outcome]]:
        """What has arrived, after waiting up to `timeout` for enough of it."""
        with self._lock:
            if len(self._arrived) < self._wake_after and timeout > 0:
                self._lock.wait(timeout)
            arrived, self._arrived = self._arrived, []
        return arrived


class StopSignals:
    """Ctrl-C and SIGTERM while a run goes on, turned into a flag that the coordinator checks
    at safe points. Raised as an exception at whatever bytecode the main thread is on, the
    interruption could leave a lock held (the inbox's, the database pool's), and the stop it
    asked for would then wait on that lock for ever."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # else: not ours to handle
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._note)
        return self

    def _note(self, _signum, _frame) -> None:
        self.requested = True

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt


class Coordinator:
    def __init__(
        self,
        frontier: Frontier,
        frontend: Frontend,
        policy: FetchPolicy,
        concurrency: int,
        *,
        batch_size: int = 100,
        batch_seconds: float = 0.5,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.frontier = frontier
        self.frontend = frontend
        self.policy = policy
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.batch_seconds = batch_seconds
        self.on_progress = on_progress
        self.progress = Progress()
        # Woken for every result at low concurrency, for every 1/64 of it at high.
        self.inbox = Inbox(wake_after=max(1, concurrency // 64))
        self.in_flight: dict[int, tuple[FetchTask, float]] = {}  # frontier id -> task, when
        self.done: list[FetchResult] = []  # finished, not yet stored
        self.oldest_done = 0.0
        self.inbox_gathers = concurrency >= 128
        self.stop = StopSignals()
        self.pending = PendingHosts(frontier.rules)
        self.counted_at = 0.0

    def run(self) -> RunReport:
        """Crawl until the crawl is finished (or a limit is reached); on Ctrl-C or an error,
        store what finished, abandon what is in flight, and raise."""
        with self.stop:
            started = perf_counter()
            self.frontend.start(self.policy, self.concurrency, self.inbox.deliver)
            startup_s = perf_counter() - started
            try:
                self.frontier.beat(force=True)  # alive to the others from now on
                self._crawl()
            finally:
                self.inbox.close()
                self.frontend.stop()
                for task, outcome in self.inbox.take(timeout=0):
                    self._finished(task, outcome)
                self._store()
        return RunReport(self.concurrency, startup_s, self.frontend.ipc_bytes)

    def _crawl(self) -> None:
        while True:
            self.stop.check()
            self.frontier.beat()
            if len(self.in_flight) <= self.concurrency:
                self._submit(self._lease(2 * self.concurrency - len(self.in_flight)))
            if not self.in_flight:
                self._store()
                if self.frontier.finished():
                    return
                time.sleep(IDLE_POLL_S)
                continue
            bugs = [
                outcome
                for task, outcome in self.inbox.take(timeout=self._until_batch_due())
                if not self._finished(task, outcome)
            ]
            if bugs:
                raise bugs[0]  # a bug in a worker: stop loudly (the others are stored)
            self._give_back_lost()
            if self.done and (
                len(self.done) >= self.batch_size
                or perf_counter() - self.oldest_done >= self.batch_seconds
            ):
                self._store()
            self._report()

    def _lease(self, n: int) -> list[FetchTask]:
        """Lease ahead of need; when nothing is leasable, store what finished first, since the
        links it found may be the next work."""
        lease = self.frontier.lease(n, self.pending.held())
        if not lease.tasks and self.done:
            self._store()
            lease = self.frontier.lease(n, self.pending.held())
        self.progress.skipped += lease.skipped
        return lease.tasks

    def _submit(self, tasks: list[FetchTask]) -> None:
        """Up to twice the concurrency is submitted: as many running, as many waiting in the
        frontend's own queue, so a worker that finishes starts its next fetch at once (on the
        connection it just released) instead of waiting for the coordinator."""
        now = perf_counter()
        for task in tasks:
            self.in_flight[task.frontier_id] = (task, now)
        if tasks:
            self.frontend.submit(tasks)

    def _finished(self, task: FetchTask, outcome: Outcome) -> bool:
        """Take in one finished task; False if its worker raised (a bug)."""
        if self.in_flight.pop(task.frontier_id, None) is None:
            return True  # given back as lost meanwhile: its URL is someone else's now
        if isinstance(outcome, BaseException):
            return False
        clock = self.frontier.clock
        if clock.offset:  # taken on this machine's clock: the frontier decides on the database's
            outcome = replace(outcome, started_at=clock.from_local(outcome.started_at))
        if not self.done:
            self.oldest_done = perf_counter()
        self.done.append(outcome)
        self.pending.add(outcome, clock.now())
        if log.isEnabledFor(logging.DEBUG):  # the hot path: nothing more when it is off
            log.debug(
                "fetched %s: %s, %.0f ms (attempt %d)",
                outcome.task.url,
                outcome.error_kind or outcome.status,
                outcome.timings.total * 1000,
                outcome.task.attempt,
            )
        return True

    def _until_batch_due(self) -> float:
        if not self.done:
            return GATHER_S if self.inbox_gathers else self.batch_seconds
        due = max(0.0, self.batch_seconds - (perf_counter() - self.oldest_done))
        return min(due, GATHER_S) if self.inbox_gathers else due

    def _store(self) -> None:
        if not self.done:
            return
        batch, self.done = self.done, []
        self.progress.add(self.frontier.store(batch))
        self.pending.stored()

    def _give_back_lost(self) -> None:
        """A worker that died (the OOM killer, a crash in a C library) takes its task with
        it. Past two deadlines (one waiting in the frontend's queue, one fetching) and a margin,
        the URL goes back to the frontier; its attempt counts, so a URL that keeps killing
        workers ends as failed. `in_flight` is in the order tasks were submitted, so only its
        oldest entries are looked at."""
        cutoff = perf_counter() - 2 * self.policy.deadline - LOST_AFTER_S
        lost = []
        for task, submitted in self.in_flight.values():
            if submitted >= cutoff:
                break
            lost.append(task)
        for task in lost:
            del self.in_flight[task.frontier_id]
        if lost:
            self.frontier.give_back(lost)

    def _report(self) -> None:
        if self.on_progress is None:
            return
        if perf_counter() - self.counted_at >= 1.0:
            self.counted_at = perf_counter()
            counts = self.frontier.counts()
            self.progress.queued = counts.queued + counts.retrying
        self.on_progress(self.progress)
