"""The processes frontend: a `multiprocessing` pool started with `spawn`.

Each child builds one requests.Session in its initializer, ignores SIGINT (Ctrl-C is the
parent's to handle), fetches *and parses*, and sends back only the compact FetchResult: no
page bodies cross the pipe. The parent leases work, keeps at most `concurrency` tasks
submitted, and is the only writer. `spawn` starts each child as a fresh interpreter: no
database connection (or any other state) crosses a fork, and the children are the parent's
own, so their CPU time is counted in the run's cost once they are reaped.
"""

from __future__ import annotations

import multiprocessing
import pickle
import queue
import signal
import time
from collections import deque
from time import perf_counter
from typing import TYPE_CHECKING

from crawler.fetch.sync import fetch, make_session
from crawler.frontends import FrontendReport, ProgressCallback
from crawler.model import FetchPolicy, FetchResult, FetchTask

if TYPE_CHECKING:  # the children import this module: keep SQLAlchemy out of them
    from crawler.frontier import Frontier

IDLE_POLL_S = 0.2
START_TIMEOUT_S = 300

_child: dict = {}  # the session and policy of this pool child


def _start_child(policy: FetchPolicy, started: multiprocessing.Barrier) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _child["policy"] = policy
    _child["session"] = make_session(policy)
    started.wait(START_TIMEOUT_S)


def _work(task: FetchTask) -> tuple[FetchResult, int]:
    """Fetch and parse in the child; return the result and its size on the pipe."""
    result = fetch(_child["session"], task, _child["policy"])
    return result, len(pickle.dumps(result, pickle.HIGHEST_PROTOCOL))


def run(
    frontier: Frontier,
    policy: FetchPolicy,
    concurrency: int,
    on_progress: ProgressCallback | None = None,
) -> FrontendReport:
    context = multiprocessing.get_context("spawn")
    started = perf_counter()
    all_started = context.Barrier(concurrency + 1)
    pool = context.Pool(concurrency, initializer=_start_child, initargs=(policy, all_started))
    finished: queue.SimpleQueue = queue.SimpleQueue()  # filled by the pool's result thread
    ready: deque[FetchTask] = deque()
    in_flight = ipc_bytes = 0
    try:
        all_started.wait(START_TIMEOUT_S)  # the clock for crawling starts with every child up
        startup_s = perf_counter() - started
        while True:
            if len(ready) + in_flight <= concurrency:
                ready.extend(frontier.lease_or_flush(2 * concurrency - len(ready) - in_flight))
            while ready and in_flight < concurrency:
                task = ready.popleft()
                ipc_bytes += len(pickle.dumps(task, pickle.HIGHEST_PROTOCOL))
                pool.apply_async(_work, (task,), callback=finished.put, error_callback=finished.put)
                in_flight += 1
            if not in_flight:
                frontier.flush()
                if frontier.finished():
                    break
                time.sleep(IDLE_POLL_S)
                continue
            for outcome in _drain(finished, timeout=frontier.batch_seconds):
                if isinstance(outcome, BaseException):
                    raise outcome  # a bug in a child: stop loudly
                result, size = outcome
                ipc_bytes += size
                in_flight -= 1
                frontier.add(result)
            frontier.flush_due()
            if on_progress:
                on_progress(frontier.progress)
    finally:
        # What finished is stored; what is in flight is abandoned with its children.
        pool.terminate()
        pool.join()  # reaped: their CPU time now counts in RUSAGE_CHILDREN
        for outcome in _drain(finished, timeout=0):
            if not isinstance(outcome, BaseException):
                frontier.add(outcome[0])
        frontier.flush()
    return FrontendReport(workers=concurrency, startup_s=startup_s, ipc_bytes=ipc_bytes)


def _drain(finished: queue.SimpleQueue, timeout: float) -> list:
    """Everything that has arrived, waiting up to `timeout` for the first."""
    outcomes = []
    try:
        outcomes.append(finished.get(timeout=timeout) if timeout else finished.get_nowait())
        while True:
            outcomes.append(finished.get_nowait())
    except queue.Empty:
        return outcomes
