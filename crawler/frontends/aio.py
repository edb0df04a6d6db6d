"""The asyncio frontend, after the crawler in *500 Lines or Less*: `asyncio.run(crawl())`, one
`aiohttp.ClientSession`, a queue, N worker tasks in a `TaskGroup`, `task_done()` in a
`finally`, and a clean close of the session and the loop.

The event loop runs on a thread of its own; the coordinator, on the main thread, puts tasks
on the loop's queue with `call_soon_threadsafe` and gets finished ones back through
`deliver`. Nothing but the loop touches the queue, the session or the tasks.
"""

from __future__ import annotations

import asyncio
import threading

from crawler.fetch.aio import fetch, make_session
from crawler.model import FetchPolicy, FetchTask
from crawler.runs import raise_open_file_limit

STOP_WAIT_S = 10.0


class Frontend:
    ipc_bytes = 0

    def start(self, policy: FetchPolicy, concurrency: int, deliver) -> None:
        raise_open_file_limit(concurrency + 256)  # a socket per task, plus the database
        self.policy = policy
        self.concurrency = concurrency
        self.deliver = deliver
        self.ready = threading.Event()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self.run_loop, name="asyncio", daemon=True)
        self.thread.start()
        self.ready.wait()
        if self.failure is not None:
            raise self.failure

    def submit(self, tasks: list[FetchTask]) -> None:
        """Hand the tasks to the loop in one wake-up, and wait until it has taken them. The
        loop gets to them only once it is through its current round of answers, so the
        coordinator does not share the interpreter with a loop busy parsing a burst of pages
        (as a coroutine on the loop it could not have run then either): the loop keeps its
        connect timeouts."""
        taken = threading.Event()
        self.loop.call_soon_threadsafe(self.enqueue, tasks, taken)
        while not taken.wait(1.0):
            if not self.thread.is_alive():
                raise RuntimeError("the asyncio event loop stopped") from self.failure

    def enqueue(self, tasks: list[FetchTask], taken: threading.Event) -> None:
        for task in tasks:
            self.queue.put_nowait(task)
        taken.set()

    def stop(self) -> None:
        """Cancel every worker (in-flight fetches are abandoned), close the session and the
        loop."""
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.stopping.set)
            self.thread.join(STOP_WAIT_S)

    def run_loop(self) -> None:
        try:
            asyncio.run(self.crawl())
        except BaseException as exc:  # raised to the coordinator by start(), if still there
            self.failure = exc
        finally:
            self.ready.set()

    async def crawl(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[FetchTask] = asyncio.Queue()
        self.stopping = asyncio.Event()
        async with (
            make_session(self.policy, self.concurrency) as self.session,
            asyncio.TaskGroup() as group,
        ):
            workers = [group.create_task(self.work(f"task-{n}")) for n in range(self.concurrency)]
            self.ready.set()
            await self.stopping.wait()
            for worker in workers:
                worker.cancel()

    async def work(self, name: str) -> None:
        while True:
            task = await self.queue.get()
            try:
                self.deliver(task, await fetch(self.session, task, self.policy, name))
            except Exception as exc:  # a bug: the coordinator stops the crawl with it
                self.deliver(task, exc)
            finally:
                self.queue.task_done()
