"""The threads frontend: a ThreadPoolExecutor whose workers each keep one requests.Session.

The coordinator never submits more than `concurrency` tasks (the executor's own queue is
unbounded), and each finished future hands its result back from the worker's thread.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import requests

from crawler.fetch.sync import fetch, make_session
from crawler.fetch.watchdog import WATCHDOG
from crawler.model import FetchPolicy, FetchResult, FetchTask


class Frontend:
    ipc_bytes = 0

    def start(self, policy: FetchPolicy, concurrency: int, deliver) -> None:
        self.policy = policy
        self.deliver = deliver
        self.local = threading.local()
        self.sessions: list[requests.Session] = []  # one per worker, to close at the end
        self.sessions_lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="fetch")

    def submit(self, tasks: list[FetchTask]) -> None:
        for task in tasks:
            future = self.pool.submit(self.work, task)
            future.add_done_callback(lambda done, task=task: self.answer(task, done))

    def work(self, task: FetchTask) -> FetchResult:
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = make_session(self.policy)
            with self.sessions_lock:
                self.sessions.append(session)
        return fetch(session, task, self.policy)

    def answer(self, task: FetchTask, done: Future[FetchResult]) -> None:
        if not done.cancelled():
            self.deliver(task, done.exception() or done.result())

    def stop(self) -> None:
        """Shut every socket in flight, so the workers return at once; do not wait for them."""
        WATCHDOG.abort_all()
        self.pool.shutdown(wait=False, cancel_futures=True)
        with self.sessions_lock:
            for session in self.sessions:
                session.close()
