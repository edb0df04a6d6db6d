"""The asyncio frontend, after the crawler in *500 Lines or Less*: `asyncio.run(crawl())`, one
`aiohttp.ClientSession`, a queue, N worker tasks in a `TaskGroup`, `task_done()` in a
`finally`, and a clean close of the session and the loop.

One coordinator coroutine leases URLs into the queue and stores finished results in batches.
The database calls run on one thread of their own, so the loop keeps serving sockets while a
batch is written, and one thread is the only writer, even while Ctrl-C unwinds the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from time import perf_counter

from crawler.fetch.aio import fetch, make_session
from crawler.frontends import FrontendReport, ProgressCallback
from crawler.frontier import Frontier
from crawler.model import FetchPolicy, FetchResult, FetchTask
from crawler.runs import raise_open_file_limit

IDLE_POLL_S = 0.2  # when other runs hold every lease, look again this often


def run(
    frontier: Frontier,
    policy: FetchPolicy,
    concurrency: int,
    on_progress: ProgressCallback | None = None,
) -> FrontendReport:
    raise_open_file_limit(concurrency + 256)  # a socket per task, plus the database
    return asyncio.run(Crawler(frontier, policy, concurrency, on_progress).crawl())


class Crawler:
    def __init__(
        self,
        frontier: Frontier,
        policy: FetchPolicy,
        concurrency: int,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.frontier = frontier
        self.policy = policy
        self.concurrency = concurrency
        self.on_progress = on_progress
        self.queue: asyncio.Queue[FetchTask] = asyncio.Queue()
        self.done: list[FetchResult] = []
        self.outstanding = 0  # leased and not yet fetched
        self.progressed = asyncio.Event()
        self.last_store = perf_counter()
        self.database = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")

    async def crawl(self) -> FrontendReport:
        started = perf_counter()
        async with make_session(self.policy, self.concurrency) as self.session:
            startup_s = perf_counter() - started
            try:
                async with asyncio.TaskGroup() as group:
                    workers = [
                        group.create_task(self.work(f"task-{n}")) for n in range(self.concurrency)
                    ]
                    try:
                        await self.coordinate()
                    finally:
                        for worker in workers:
                            worker.cancel()
            finally:
                # On completion, on a limit or on Ctrl-C: what finished is stored (after any
                # batch the database thread is still writing); what was in flight was
                # cancelled, and the run gives its leases back.
                if self.done:
                    self.database.submit(self.frontier.complete, self.done).result()
                self.done = []
                self.database.shutdown(wait=True)
        return FrontendReport(workers=self.concurrency, startup_s=startup_s)

    async def work(self, name: str) -> None:
        while True:
            task = await self.queue.get()
            try:
                result = await fetch(self.session, task, self.policy, name)
                self.frontier.note(result)
                self.done.append(result)  # after the await: store() may swap the list meanwhile
            finally:
                self.outstanding -= 1
                self.progressed.set()
                self.queue.task_done()

    async def coordinate(self) -> None:
        """Keep the queue fed, store results in batches, and return when the crawl is done."""
        while True:
            if self.outstanding <= self.concurrency:
                for task in await self.lease(2 * self.concurrency - self.outstanding):
                    self.queue.put_nowait(task)
                    self.outstanding += 1
            if not self.outstanding:
                await self.store()
                if await self.on_database(self.frontier.finished):
                    return
                await asyncio.sleep(IDLE_POLL_S)
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.frontier.batch_seconds):
                    await self.progressed.wait()
            self.progressed.clear()
            batch_due = perf_counter() - self.last_store >= self.frontier.batch_seconds
            if len(self.done) >= self.frontier.batch_size or (self.done and batch_due):
                await self.store()
            if self.on_progress:
                self.on_progress(self.frontier.progress)

    async def lease(self, n: int) -> list[FetchTask]:
        """Lease ahead of need; when nothing is leasable, store what finished first, since the
        links it found may be the next work."""
        tasks = await self.on_database(self.frontier.lease, n)
        if not tasks and self.done:
            await self.store()
            tasks = await self.on_database(self.frontier.lease, n)
        return tasks

    async def store(self) -> None:
        batch, self.done = self.done, []
        self.last_store = perf_counter()
        if batch:
            await self.on_database(self.frontier.complete, batch)

    async def on_database(self, call, *args):
        return await asyncio.get_running_loop().run_in_executor(self.database, call, *args)
