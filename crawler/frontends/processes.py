"""The processes frontend: a `multiprocessing` pool started with `forkserver`.

The fork server is a fresh interpreter that imports the fetch and parse modules once (no
database connection, nor any other state of ours, is in it); each child is forked from it, so
it starts in milliseconds and shares those modules' pages instead of importing its own copy.
Each child builds one requests.Session in its initializer, ignores SIGINT (Ctrl-C is the
parent's to handle), fetches *and parses*, and sends back only the compact FetchResult: no
page bodies cross the pipe. The children are the fork server's, not ours, so their CPU time
never reaches our getrusage: `stop` reads it from each child before ending it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import sys
import threading

import psutil

from crawler.fetch.exchange import parse_shipped
from crawler.fetch.sync import fetch, fetch_keeping_body, make_session
from crawler.model import FetchPolicy, FetchResult, FetchTask

START_TIMEOUT_S = 300
# What the fork server imports once for every child: this module pulls in the fetch code
# (requests, urllib3) and the parsers (BeautifulSoup, lxml).
PRELOAD = ["crawler.frontends.processes"]

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
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        everyone_up, crawling = context.Barrier(concurrency + 1), context.Event()
        self.deliver = deliver
        self.parser = policy.parser  # for bodies sent back to parse here
        self.unreaped: Usage = (0.0, 0.0, 0, 0)
        self.seen_workers: dict[int, psutil.Process] = {}  # every child the pool had
        self.new_pool = lambda: context.Pool(
            concurrency, initializer=_start_child, initargs=(policy, everyone_up, crawling)
        )
        with _main_script_hidden():
            self.pool = self.new_pool()
        everyone_up.wait(START_TIMEOUT_S)
        crawling.set()

    def submit(self, tasks: list[FetchTask]) -> None:
        if not self.pool._worker_handler.is_alive():
            # It died starting a child (its fork server was killed, and a new one was asked
            # for before the old one's death showed): nothing would run again. The tasks in
            # the old pool are lost, and the coordinator gives them back after the deadline.
            self._end_pool()
            with _main_script_hidden():
                self.pool = self.new_pool()
        for worker in self.pool._pool:
            if worker.pid not in self.seen_workers:
                with contextlib.suppress(psutil.Error):
                    self.seen_workers[worker.pid] = psutil.Process(worker.pid)
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
        """What is in flight is abandoned with its children, once their cost is read."""
        self._end_pool()

    def _end_pool(self) -> None:
        """Read the children's cost and end the pool; after a death, first kill every child
        it had, including any it lost track of."""
        workers = [worker.pid for worker in self.pool._pool]
        self.unreaped = _add(self.unreaped, _usage(self.seen_workers.values()))
        self.unreaped = _add(self.unreaped, _fork_server_usage(workers))
        handler_alive = self.pool._worker_handler.is_alive()
        replaced = set(self.seen_workers) - set(workers)  # died, or orphaned and working on
        if replaced or not handler_alive:
            # A child died (the OOM killer, or its fork server's death): one killed while it
            # waited for a task still holds the task queue's read lock, and terminate() would
            # wait for it for ever; a child whose fork server died works on, unseen by the
            # pool. Every child goes (psutil refuses a pid used again), then the lock is new.
            for child in self.seen_workers.values():
                with contextlib.suppress(psutil.Error):
                    child.kill()
            self.pool._inqueue._rlock = multiprocessing.get_context("forkserver").Lock()
        if not handler_alive:  # it died without telling the task handler to end,
            self.pool._taskqueue.put(None)  # which terminate() waits for
        self.pool.terminate()
        self.pool.join()
        self.seen_workers.clear()


@contextlib.contextmanager
def _main_script_hidden():
    """A child started from a script (the `crawler` console script, a user's own) runs that
    script again before it works, importing the whole command line into every child: 0.5 s
    each instead of 0.1. Nothing in it is needed there, so the children are not told of it.
    (The fork server's own "__main__" preload is meant for this, but never gets the path.)"""
    main = sys.modules["__main__"]
    path = main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        if path is not None:
            main.__file__ = path


Usage = tuple[float, float, int, int]  # user s, system s, voluntary, involuntary switches
_charged: dict[int, Usage] = {}  # fork server pid -> its own usage charged to runs so far


def _usage(processes) -> Usage:
    """User and system CPU seconds and voluntary and involuntary context switches of these
    processes so far. A process already gone counts nothing: the fork server reaped it, and
    its time is lost to us (a child that died mid-crawl)."""
    total: Usage = (0.0, 0.0, 0, 0)
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times, switches = process.cpu_times(), process.num_ctx_switches()
            own = (times.user, times.system, switches.voluntary, switches.involuntary)
            total = _add(total, own)
    return total


def _fork_server_usage(workers: list[int]) -> Usage:
    """The fork server's own work (importing the preloaded modules, forking) not yet charged
    to a run: it outlives the pool, serving every later pool of this process."""
    with contextlib.suppress(psutil.Error, IndexError):
        server = psutil.Process(psutil.Process(workers[0]).ppid())
        if server.ppid() != os.getpid():  # an orphan's parent is init: not ours to charge
            return (0.0, 0.0, 0, 0)
        now = _usage([server])
        before = _charged.get(server.pid, (0.0, 0.0, 0, 0))
        _charged[server.pid] = now
        return _add(now, (-before[0], -before[1], -before[2], -before[3]))
    return (0.0, 0.0, 0, 0)


def _add(a: Usage, b: Usage) -> Usage:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3])
