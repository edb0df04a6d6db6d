"""The threads frontend: a ThreadPoolExecutor of workers, each with its own requests.Session.

The main thread coordinates: it leases work, keeps at most `concurrency` fetches submitted
(the executor's own queue is unbounded), waits for the first to finish, and is the only
thread that writes to the database.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from time import perf_counter

import requests

from crawler.fetch.sync import fetch, make_session
from crawler.fetch.watchdog import WATCHDOG
from crawler.frontends import FrontendReport, ProgressCallback
from crawler.frontier import Frontier
from crawler.model import FetchPolicy, FetchResult, FetchTask

IDLE_POLL_S = 0.2  # when other runs hold every lease, look again this often


def run(
    frontier: Frontier,
    policy: FetchPolicy,
    concurrency: int,
    on_progress: ProgressCallback | None = None,
) -> FrontendReport:
    local = threading.local()
    sessions: list[requests.Session] = []

    def work(task: FetchTask) -> FetchResult:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = make_session(policy)
            sessions.append(session)
        return fetch(session, task, policy)

    started = perf_counter()
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="fetch")
    startup_s = perf_counter() - started
    ready: deque[FetchTask] = deque()
    in_flight: set[Future[FetchResult]] = set()
    try:
        while True:
            if len(ready) + len(in_flight) <= concurrency:
                ready.extend(frontier.lease_or_flush(2 * concurrency - len(ready) - len(in_flight)))
            while ready and len(in_flight) < concurrency:
                in_flight.add(pool.submit(work, ready.popleft()))
            if not in_flight:
                frontier.flush()
                if frontier.finished():
                    break
                time.sleep(IDLE_POLL_S)
                continue
            done, in_flight = wait(
                in_flight, timeout=frontier.batch_seconds, return_when=FIRST_COMPLETED
            )
            failed = [f for f in done if f.exception() is not None]
            for future in done:
                if future.exception() is None:
                    frontier.add(future.result())
            if failed:
                raise failed[0].exception()  # a bug in a worker: stop loudly, the rest stored
            frontier.flush_due()
            if on_progress:
                on_progress(frontier.progress)
    finally:
        # What finished is stored; what is in flight is abandoned (its sockets are shut, so
        # the workers return at once) and the run gives its leases back.
        finished = [
            f for f in in_flight if f.done() and not f.cancelled() and f.exception() is None
        ]
        WATCHDOG.abort_all()  # from here on a result is our own doing, not the server's
        for future in finished:
            frontier.add(future.result())
        pool.shutdown(wait=False, cancel_futures=True)
        frontier.flush()
        for session in sessions:
            session.close()
    return FrontendReport(workers=concurrency, startup_s=startup_s)
