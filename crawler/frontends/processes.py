"""The processes frontend: a `multiprocessing` pool started with `spawn`.

Each child builds one requests.Session in its initializer, ignores SIGINT (Ctrl-C is the
parent's to handle), fetches *and parses*, and sends back only the compact FetchResult: no
page bodies cross the pipe. The parent leases work, keeps at most `concurrency` tasks
submitted, and is the only writer. `spawn` starts each child as a fresh interpreter: no
database connection (or any other state) crosses a fork, and the children are the parent's
own, so their CPU time is counted in the run's cost once they are reaped.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import pickle
import queue
import signal
import threading
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
LOST_AFTER_S = 5  # past the deadline: a task whose child died will never answer

_child: dict = {}  # the session and policy of this pool child


def _start_child(policy: FetchPolicy, everyone_up, crawling) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.current_thread().name = f"process-{os.getpid()}"  # names the fetch rows
    _child["policy"] = policy
    _child["session"] = make_session(policy)
    if not crawling.is_set():  # a child that replaces a dead one does not wait
        with contextlib.suppress(threading.BrokenBarrierError):
            everyone_up.wait(START_TIMEOUT_S)


def _work(task: FetchTask) -> tuple[FetchResult, int]:
    """Fetch and parse in the child; return the result and its size on the pipe (measured by
    pickling it once more here, a cost charged to this frontend)."""
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
    everyone_up, crawling = context.Barrier(concurrency + 1), context.Event()
    pool = context.Pool(
        concurrency, initializer=_start_child, initargs=(policy, everyone_up, crawling)
    )
    finished: queue.SimpleQueue = queue.SimpleQueue()  # (task, outcome), from the pool's thread
    ready: deque[FetchTask] = deque()
    in_flight: dict[int, tuple[FetchTask, float]] = {}  # frontier id -> (task, submitted at)
    ipc_bytes = 0
    try:
        everyone_up.wait(START_TIMEOUT_S)  # the clock for crawling starts with every child up
        crawling.set()
        startup_s = perf_counter() - started
        while True:
            if len(ready) + len(in_flight) <= concurrency:
                ready.extend(frontier.lease_or_flush(2 * concurrency - len(ready) - len(in_flight)))
            while ready and len(in_flight) < concurrency:
                task = ready.popleft()
                ipc_bytes += len(pickle.dumps(task, pickle.HIGHEST_PROTOCOL))
                answer = functools.partial(_answer, finished, task)
                pool.apply_async(_work, (task,), callback=answer, error_callback=answer)
                in_flight[task.frontier_id] = (task, perf_counter())
            if not in_flight:
                frontier.flush()
                if frontier.finished():
                    break
                time.sleep(IDLE_POLL_S)
                continue
            errors = []
            for task, outcome in _drain(finished, timeout=frontier.batch_seconds):
                in_flight.pop(task.frontier_id, None)
                if isinstance(outcome, BaseException):
                    errors.append(outcome)
                    continue
                result, size = outcome
                ipc_bytes += size
                frontier.add(result)
            if errors:
                raise errors[0]  # a bug in a child: stop loudly (the others are stored)
            _give_back_lost(frontier, in_flight, policy)
            frontier.flush_due()
            if on_progress:
                on_progress(frontier.progress)
    finally:
        # What finished is stored; what is in flight is abandoned with its children.
        pool.terminate()
        pool.join()  # reaped: their CPU time now counts in RUSAGE_CHILDREN
        for _task, outcome in _drain(finished, timeout=0):
            if not isinstance(outcome, BaseException):
                frontier.add(outcome[0])
        frontier.flush()
    return FrontendReport(workers=concurrency, startup_s=startup_s, ipc_bytes=ipc_bytes)


def _answer(finished: queue.SimpleQueue, task: FetchTask, outcome) -> None:
    finished.put((task, outcome))


def _give_back_lost(frontier: Frontier, in_flight: dict, policy: FetchPolicy) -> None:
    """A child that died (the OOM killer, a crash in a C library) takes its task with it: the
    pool starts a new child but never answers for the task. Past the deadline and a margin,
    the URL goes back to the frontier; its attempt counts, so a URL that keeps killing
    children ends as failed."""
    cutoff = perf_counter() - policy.deadline - LOST_AFTER_S
    lost = [task for task, submitted in in_flight.values() if submitted < cutoff]
    for task in lost:
        del in_flight[task.frontier_id]
    if lost:
        frontier.give_back(lost)


def _drain(finished: queue.SimpleQueue, timeout: float) -> list:
    """Everything that has arrived, waiting up to `timeout` for the first."""
    outcomes = []
    try:
        outcomes.append(finished.get(timeout=timeout) if timeout else finished.get_nowait())
        while True:
            outcomes.append(finished.get_nowait())
    except queue.Empty:
        return outcomes
