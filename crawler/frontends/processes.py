"""The processes frontend: a `multiprocessing` pool started with `spawn`.

Each child builds one requests.Session in its initializer, ignores SIGINT (Ctrl-C is the
parent's to handle), fetches *and parses*, and sends back only the compact FetchResult: no
page bodies cross the pipe. `spawn` starts each child as a fresh interpreter: no database
connection (or any other state) crosses a fork, and the children are the parent's own, so
their CPU time is counted in the run's cost once they are reaped.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import threading

from crawler.fetch.exchange import parse_shipped
from crawler.fetch.sync import fetch, fetch_keeping_body, make_session
from crawler.model import FetchPolicy, FetchResult, FetchTask

START_TIMEOUT_S = 300

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


def _work_shipping_body(task: FetchTask) -> tuple[tuple, int]:
    """Fetch in the child, parse nothing: the result and the whole body go back."""
    shipped = fetch_keeping_body(_child["session"], task, _child["policy"])
    return shipped, len(pickle.dumps(shipped, pickle.HIGHEST_PROTOCOL))


class Frontend:
    def __init__(self, pool_returns: str = "pages") -> None:
        self.work = _work if pool_returns == "pages" else _work_shipping_body
        self.sent_bytes = 0  # counted by the coordinator's thread
        self.received_bytes = 0  # counted by the pool's result thread

    @property
    def ipc_bytes(self) -> int:
        return self.sent_bytes + self.received_bytes

    def start(self, policy: FetchPolicy, concurrency: int, deliver) -> None:
        """Start every child and wait until all are up: the crawl's clock starts then."""
        context = multiprocessing.get_context("spawn")
        everyone_up, crawling = context.Barrier(concurrency + 1), context.Event()
        self.deliver = deliver
        self.parser = policy.parser  # for bodies sent back to parse here
        self.pool = context.Pool(
            concurrency, initializer=_start_child, initargs=(policy, everyone_up, crawling)
        )
        everyone_up.wait(START_TIMEOUT_S)
        crawling.set()

    def submit(self, tasks: list[FetchTask]) -> None:
        for task in tasks:
            self.sent_bytes += len(pickle.dumps(task, pickle.HIGHEST_PROTOCOL))
            self.pool.apply_async(
                self.work,
                (task,),
                callback=lambda answer, task=task: self.answer(task, answer),
                error_callback=lambda exc, task=task: self.deliver(task, exc),
            )

    def answer(self, task: FetchTask, answer: tuple) -> None:
        result, size = answer
        self.received_bytes += size
        if isinstance(result, tuple):  # a body to parse here
            result = parse_shipped(*result, self.parser)
        self.deliver(task, result)

    def stop(self) -> None:
        """What is in flight is abandoned with its children; they are reaped, so their CPU
        time counts in RUSAGE_CHILDREN."""
        self.pool.terminate()
        self.pool.join()
