"""The durable frontier: which URLs are to be fetched, leased, done or failed, in SQL.

A frontend asks `lease(n)` for work and hands results to `add()`; results are written in
batches by `complete()`, each batch one transaction holding the fetch rows, the pages, their
links, the new URLs they found and the state changes. A lease expires, so work held by a dead
process comes back; its token fences a late completion from a lease that was taken over.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, and_, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from crawler.fetch.errors import ErrorKind
from crawler.hosts import ADMIT, WAIT, HostBook, learn_from
from crawler.model import FetchResult, FetchTask
from crawler.politeness import Politeness
from crawler.retry import BreakerPolicy, RetryPolicy, host_free_at, is_transient
from crawler.store.engine import reading
from crawler.store.models import (
    DONE,
    FAILED,
    LEASED,
    QUEUED,
    SKIPPED,
    Crawl,
    Fetch,
    FrontierEntry,
    Host,
    Page,
    PageLink,
    Robots,
)
from crawler.urls import Scope, host_of, trap_reason, url_key

if TYPE_CHECKING:
    from crawler.robots_cache import RobotsKeeper

LEASE_ROUNDS = 4  # candidate reads per lease, each passing over the hosts that must wait
LEVEL_TTL_S = 0.2

frontier_t = FrontierEntry.__table__
crawls_t = Crawl.__table__
fetches_t = Fetch.__table__
pages_t = Page.__table__
links_t = PageLink.__table__
robots_t = Robots.__table__
hosts_t = Host.__table__


@dataclass(frozen=True, slots=True)
class Limits:
    """The crawl-wide limits the frontier enforces."""

    max_pages: int | None = None  # URLs fetched, redirects included
    max_depth: int | None = None
    max_redirects: int = 5  # hops followed from one URL
    max_attempts: int = 3  # leases of one URL before it is marked failed
    max_pages_per_host: int | None = None  # a trap guard: URLs leased per host[:port]

    @property
    def bounded(self) -> bool:
        """With a page or depth limit, the crawl goes strictly level by level (see
        Frontier.lease), so that which pages make the cut does not depend on timing."""
        return self.max_pages is not None or self.max_depth is not None


@dataclass(slots=True)
class Progress:
    """Counters of this run, for the progress display and the runs row."""

    fetches: int = 0
    pages: int = 0
    errors: int = 0
    fenced: int = 0  # results dropped because their lease had been taken over
    retries: int = 0  # failed attempts queued to be tried again
    skipped: int = 0  # URLs never to be fetched (robots.txt, host limits)
    batches: int = 0
    store_s: float = 0.0
    queued: int = 0  # from the database, refreshed at most once a second
    started: float = field(default_factory=perf_counter)


class _RecentKeys:
    """A bounded LRU of URL keys known to be in the frontier, with the shallowest depth they
    were queued at: most links on a page repeat (navigation), and skipping them saves the
    insert. The database's unique key stays the real dedup, so memory does not grow with the
    site."""

    def __init__(self, size: int = 50_000) -> None:
        self._depths: OrderedDict[str, int] = OrderedDict()
        self._size = size

    def known_at_or_above(self, key: str, depth: int) -> bool:
        known = self._depths.get(key)
        if known is None:
            return False
        self._depths.move_to_end(key)
        return known <= depth

    def knows(self, key: str) -> bool:
        return key in self._depths

    def add(self, key: str, depth: int) -> None:
        self._depths[key] = min(depth, self._depths.get(key, depth))
        self._depths.move_to_end(key)
        if len(self._depths) > self._size:
            self._depths.popitem(last=False)


def insert_ignoring_duplicates(conn: Connection, rows: list[dict]) -> None:
    """Add frontier rows. A URL already there keeps its row (dedup on the unique key), except
    that a URL still queued takes the shallower depth: found first on a slow deep path, it is
    still crawled at its true depth. Rows go in key order, so two runs inserting overlapping
    links lock them in the same order and cannot deadlock."""
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "sqlite":
        stmt = sqlite.insert(frontier_t)
    elif dialect == "postgresql":
        stmt = postgresql.insert(frontier_t)
    else:  # pragma: no cover - only the two dialects above are supported
        raise RuntimeError(f"unsupported database dialect {dialect}")
    stmt = stmt.on_conflict_do_update(
        index_elements=["crawl_id", "url_key"],
        set_={
            "depth": stmt.excluded.depth,
            "found_from": stmt.excluded.found_from,
            "redirect_hops": stmt.excluded.redirect_hops,
        },
        where=and_(frontier_t.c.state == QUEUED, stmt.excluded.depth < frontier_t.c.depth),
    )
    conn.execute(stmt, sorted(rows, key=lambda row: row["url_key"]))


def frontier_row(
    crawl_id: int, url: str, depth: int, found_from: int | None = None, hops: int = 0
) -> dict:
    return {
        "crawl_id": crawl_id,
        "url": url,
        "url_key": url_key(url),
        "host": host_of(url),
        "depth": depth,
        "redirect_hops": hops,
        "state": QUEUED,
        "attempts": 0,
        "next_attempt_at": 0.0,
        "found_from": found_from,
    }


class Frontier:
    """One run's handle on a crawl's frontier. Only the coordinator of a process uses it."""

    def __init__(
        self,
        engine: Engine,
        crawl_id: int,
        run_id: int,
        scope: Scope,
        limits: Limits,
        *,
        lease_seconds: float = 120.0,
        batch_size: int = 100,
        batch_seconds: float = 0.5,
        politeness: Politeness | None = None,
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        robots: RobotsKeeper | None = None,
    ) -> None:
        self.engine = engine
        self.crawl_id = crawl_id
        self.run_id = run_id
        self.scope = scope
        self.limits = limits
        self.lease_seconds = lease_seconds
        self.batch_size = batch_size
        self.batch_seconds = batch_seconds
        self.progress = Progress()
        self._pending: list[FetchResult] = []
        self._oldest_pending = 0.0
        self._recent = _RecentKeys()
        self._queued_checked = 0.0
        self.politeness = politeness or Politeness()
        self.retry = retry or RetryPolicy(max_attempts=limits.max_attempts)
        self.breaker = breaker or BreakerPolicy()
        self.robots = robots
        self.host_delays: dict[str, float] = {}  # seconds between requests, as last admitted
        self.local_not_before: dict[str, float] = {}  # from results not yet stored
        self._pending_hosts: Counter[str] = Counter()
        self._failures: Counter[str] = Counter()
        self._others_idle_until = 0.0
        self.known_hosts: set[str] = set()  # have a hosts row
        self._levels: dict[str, tuple[int | None, float]] = {}
        self._rng = random.Random()

    # -- leasing -------------------------------------------------------------------------

    def lease(self, n: int) -> list[FetchTask]:
        """Claim up to n URLs: leases that expired in other runs' hands first (work a dead run
        left), then queued URLs that are due, shallowest first and then in key order, each
        admitted by its host (see `_admit`): robots.txt, politeness, the circuit breaker.

        Leasing follows the levels of a breadth-first walk, per host, so that every URL is
        stored at its true depth whatever the frontend, the concurrency or the timing: with d
        the shallowest depth a host still has queued or leased, only its depths d and d+1 are
        leased (a URL at d+1 cannot be reached in fewer links once level d-1 is done). With a
        page or depth limit, only depth d: which URLs fill the page budget is then the same on
        every run too. A host that must wait is passed over, never waited on, so a slow host
        does not hold up the others. --max-pages counts URLs leased for the first time."""
        if n <= 0:
            return []
        now = time.time()
        f = frontier_t.c
        tasks: list[FetchTask] = []
        with self.engine.begin() as conn:
            if self.robots is not None:
                self._enqueue_sitemap_urls(conn, self.robots.settle(conn, now))
            budget = None
            if self.limits.max_pages is not None:
                started = conn.execute(
                    select(crawls_t.c.urls_started)
                    .where(crawls_t.c.id == self.crawl_id)
                    .with_for_update()  # runs on other machines take turns on the budget
                ).scalar_one()
                budget = max(0, self.limits.max_pages - started)
            book = HostBook(self, conn, now)
            passed_over: set[str] = set()
            fresh = 0
            for round_ in range(LEASE_ROUNDS):
                if round_ and now < self._others_idle_until:
                    break  # looked a moment ago: only hosts that must wait have work
                want = max(4 * n, 64)
                expired_elsewhere = and_(f.lease_expires_at < now, f.lease_owner != self.run_id)
                rows = [
                    *self._candidates(conn, LEASED, expired_elsewhere, want, passed_over),
                    *self._candidates(conn, QUEUED, f.next_attempt_at <= now, want, passed_over),
                ]
                for row in rows:
                    if len(tasks) >= n:
                        break
                    if row.host in passed_over:
                        continue
                    if row.attempts >= self.limits.max_attempts:
                        self._give_up(conn, [row], now)
                        continue
                    if row.attempts == 0 and budget is not None and fresh >= budget:
                        continue
                    verdict = book.admit(row)
                    if verdict is WAIT:
                        passed_over.add(row.host)
                        continue
                    if verdict is not ADMIT:
                        self._skip(conn, row, verdict)
                        continue
                    fresh += row.attempts == 0
                    book.take(row)
                    tasks.append(self._lease_row(conn, row, now))
                if round_ and not rows:
                    # Finding that out read past every URL of the hosts passed over: do not
                    # read it again on each lease, only once a second.
                    self._others_idle_until = now + 1.0
                if len(tasks) >= n or len(rows) < want:
                    break
            book.save()
            if fresh:
                conn.execute(
                    update(crawls_t)
                    .where(crawls_t.c.id == self.crawl_id)
                    .values(urls_started=crawls_t.c.urls_started + fresh)
                )
        return tasks

    def _lease_row(self, conn: Connection, row, now: float) -> FetchTask:
        token = uuid.uuid4().hex
        conn.execute(
            update(frontier_t)
            .where(frontier_t.c.id == row.id)
            .values(
                state=LEASED,
                lease_owner=self.run_id,
                lease_token=token,
                lease_expires_at=now + self.lease_seconds,
                attempts=row.attempts + 1,
            )
        )
        return FetchTask(
            frontier_id=row.id,
            url=row.url,
            depth=row.depth,
            lease_token=token,
            attempt=row.attempts + 1,
            redirect_hops=row.redirect_hops,
            leased_at=now,
        )

    def _skip(self, conn: Connection, row, reason: str) -> None:
        conn.execute(
            update(frontier_t)
            .where(frontier_t.c.id == row.id)
            .values(
                state=SKIPPED,
                skip_reason=reason[:100],
                lease_owner=None,
                lease_token=None,
                lease_expires_at=None,
            )
        )
        self.progress.skipped += 1

    def skip_host(self, conn: Connection, host: str, reason: str) -> None:
        """Every URL of `host` still queued is skipped (its breaker opened too often)."""
        f = frontier_t.c
        self.progress.skipped += conn.execute(
            update(frontier_t)
            .where(f.crawl_id == self.crawl_id, f.host == host, f.state == QUEUED)
            .values(state=SKIPPED, skip_reason=reason[:100])
        ).rowcount

    def _enqueue_sitemap_urls(self, conn: Connection, urls: list[str]) -> None:
        """URLs listed in sitemaps start one link away from the seeds."""
        if not urls or (self.limits.max_depth is not None and self.limits.max_depth < 1):
            return
        rows = {}
        for url in urls:
            if url in self.scope and trap_reason(url) is None:
                rows[url_key(url)] = frontier_row(self.crawl_id, url, depth=1)
        insert_ignoring_duplicates(conn, list(rows.values()))

    def lease_or_flush(self, n: int) -> list[FetchTask]:
        """Lease ahead of need; when nothing is leasable, store the buffered results first,
        since the links they found may be the next work."""
        tasks = self.lease(n)
        if not tasks and self._pending:
            self.flush()
            tasks = self.lease(n)
        return tasks

    def host_level(self, conn: Connection, host: str) -> int | None:
        """The shallowest depth `host` has queued or leased (two index lookups)."""
        f = frontier_t.c
        depths = [
            conn.execute(
                select(func.min(f.depth)).where(
                    f.crawl_id == self.crawl_id, f.host == host, f.state == state
                )
            ).scalar()
            for state in (QUEUED, LEASED)
        ]
        known = [d for d in depths if d is not None]
        return min(known) if known else None

    def cached_level(self, conn: Connection, host: str, now: float) -> int | None:
        """host_level, read again after each batch this run stores, and at least every
        LEVEL_TTL_S (for other runs' batches). A level only rises as a crawl goes (new links
        are deeper, retries and redirects keep their depth), so a level read a moment ago is
        never too deep: at worst a lease waits for the next reading. URLs from sitemaps are
        the exception, at depth 1 whenever they arrive."""
        cached = self._levels.get(host)
        if cached is not None and now - cached[1] < LEVEL_TTL_S:
            return cached[0]
        level = self.host_level(conn, host)
        self._levels[host] = (level, now)
        if len(self._levels) > 10_000:
            self._levels.clear()
        return level

    def leased_on(self, conn: Connection, host: str) -> int:
        """Leases on `host` held by any run, less the ones this run has finished and not yet
        stored: those requests are over."""
        f = frontier_t.c
        leased = conn.execute(
            select(func.count()).where(
                f.crawl_id == self.crawl_id,
                f.host == host,
                f.state == LEASED,
                f.lease_expires_at >= time.time(),  # a dead run's lapsed lease holds nothing
            )
        ).scalar_one()
        return leased - self._pending_hosts[host]

    def _candidates(self, conn: Connection, state: str, due, n: int, passed_over: set[str]):
        f = frontier_t.c
        query = (
            select(f.id, f.url, f.host, f.depth, f.attempts, f.redirect_hops, f.state)
            .where(f.crawl_id == self.crawl_id, f.state == state, due)
            .order_by(f.depth, f.url_key)
            .limit(n)
            .with_for_update(skip_locked=True)
        )
        if passed_over:
            query = query.where(f.host.not_in(sorted(passed_over)))
        return conn.execute(query).all()

    def _give_up(self, conn: Connection, rows, now: float) -> None:
        """A URL whose lease expired max_attempts times (its runs died on it) is marked failed,
        with a fetch row saying so, so that an export shows it."""
        conn.execute(
            update(frontier_t)
            .where(frontier_t.c.id.in_([row.id for row in rows]))
            .values(state=FAILED, lease_owner=None, lease_token=None, lease_expires_at=None)
        )
        conn.execute(
            insert(fetches_t),
            [
                {
                    "crawl_id": self.crawl_id,
                    "frontier_id": row.id,
                    "run_id": self.run_id,
                    "worker": "frontier",
                    "url": row.url,
                    "attempt": row.attempts,
                    "started_at": now,
                    "error_kind": ErrorKind.ABANDONED.value,
                    "error_message": f"lease expired {row.attempts} times without a result",
                    "body_bytes": 0,
                    "queue_wait_s": 0.0,
                    "total_s": 0.0,
                }
                for row in rows
            ],
        )

    # -- completing ----------------------------------------------------------------------

    def add(self, result: FetchResult) -> None:
        """Buffer a result; the buffer is written when it is full or old enough."""
        if not self._pending:
            self._oldest_pending = perf_counter()
        self._pending.append(result)
        self._pending_hosts[self.note(result)] += 1
        if len(self._pending) >= self.batch_size:
            self.flush()

    def note(self, result: FetchResult) -> str:
        """Learn at once what a finished fetch says about its host (when it may be asked
        again, its failures in a row), before the batch holding it is stored; learn_from
        keeps the shared record. Returns the host."""
        host = host_of(result.task.url)
        now = time.time()
        free_at = host_free_at(result, self.host_delays.get(host, 0.0), self.retry, now)
        self._failures[host], opened = self.breaker.tally(self._failures[host], result)
        if opened:
            free_at = max(free_at, now + self.breaker.cooldown_s)
        if free_at:
            self.local_not_before[host] = max(self.local_not_before.get(host, 0.0), free_at)
        return host

    def flush_due(self) -> None:
        if self._pending and perf_counter() - self._oldest_pending >= self.batch_seconds:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            batch, self._pending = self._pending, []
            self._pending_hosts.clear()
            self.complete(batch)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def complete(self, results: Iterable[FetchResult]) -> None:
        """Store a batch in one transaction. A result whose lease token no longer matches (the
        lease expired and another run took the URL) is dropped: that run will store it."""
        started = perf_counter()
        self._levels.clear()  # a stored batch may finish a level
        with self.engine.begin() as conn:
            now = time.time()
            accepted = [r for r in results if self._close_lease(conn, r, now)]
            if accepted:
                fetch_ids = self._insert_fetches(conn, accepted)
                self._insert_pages_and_links(conn, accepted, fetch_ids)
                self._enqueue_redirects(conn, accepted)
                learn_from(self, conn, accepted)
        self.progress.store_s += perf_counter() - started
        self.progress.batches += 1
        self.refresh_queued()

    def _close_lease(self, conn: Connection, result: FetchResult, now: float) -> bool:
        """Done, failed, or (a transient failure with attempts left) queued again after a
        back-off; every attempt keeps its own fetch row."""
        f = frontier_t.c
        values = {"lease_owner": None, "lease_token": None, "lease_expires_at": None}
        transient = is_transient(result)
        if transient and result.task.attempt < self.retry.max_attempts:
            wait = self.retry.delay(result.task.attempt, result.retry_after, self._rng)
            values |= {"state": QUEUED, "next_attempt_at": now + wait}
        else:
            values["state"] = FAILED if result.status is None or transient else DONE
        closed = conn.execute(
            update(frontier_t)
            .where(
                f.id == result.task.frontier_id,
                f.lease_token == result.task.lease_token,
                f.state == LEASED,
            )
            .values(**values)
        ).rowcount
        self.progress.retries += bool(closed) and values["state"] == QUEUED
        if not closed:
            self.progress.fenced += 1
            return False
        self.progress.fetches += 1
        self.progress.errors += result.is_error
        self.progress.pages += result.page is not None
        return True

    def _redirect_error(self, result: FetchResult) -> str | None:
        if result.location and result.task.redirect_hops + 1 > self.limits.max_redirects:
            return ErrorKind.TOO_MANY_REDIRECTS.value
        return None

    def _insert_fetches(self, conn: Connection, results: list[FetchResult]) -> list[int]:
        rows = []
        for r in results:
            error_kind = r.error_kind or self._redirect_error(r)
            message = r.error_message
            if error_kind == ErrorKind.TOO_MANY_REDIRECTS and message is None:
                message = f"stopped after {self.limits.max_redirects} redirect hops"
            rows.append(
                {
                    "crawl_id": self.crawl_id,
                    "frontier_id": r.task.frontier_id,
                    "run_id": self.run_id,
                    "worker": r.worker[:100],
                    "url": r.task.url,
                    "attempt": r.task.attempt,
                    "started_at": r.started_at,
                    "status": r.status,
                    "content_type": (r.content_type or "")[:200] or None,
                    "body_bytes": r.body_bytes,
                    "location": r.location,
                    "error_kind": error_kind,
                    "error_message": message,
                    "queue_wait_s": r.timings.queue_wait,
                    "connect_s": r.timings.connect,
                    "first_byte_s": r.timings.first_byte,
                    "download_s": r.timings.download,
                    "parse_s": r.timings.parse,
                    "total_s": r.timings.total,
                }
            )
        returned = conn.execute(
            insert(fetches_t).returning(fetches_t.c.id, sort_by_parameter_order=True), rows
        )
        return list(returned.scalars())

    def _insert_pages_and_links(
        self, conn: Connection, results: list[FetchResult], fetch_ids: list[int]
    ) -> None:
        with_pages = [(r, fid) for r, fid in zip(results, fetch_ids, strict=True) if r.page]
        if not with_pages:
            return
        page_rows = [
            {
                "crawl_id": self.crawl_id,
                "frontier_id": r.task.frontier_id,
                "fetch_id": fetch_id,
                "url": r.task.url,
                "title": r.page.title,
                "canonical": r.page.canonical,
                "charset": r.page.charset,
                "link_count": len(r.page.links),
                "content_hash": r.page.content_hash,
            }
            for r, fetch_id in with_pages
        ]
        page_ids = list(
            conn.execute(
                insert(pages_t).returning(pages_t.c.id, sort_by_parameter_order=True), page_rows
            ).scalars()
        )
        link_rows: list[dict] = []
        new_urls: dict[str, dict] = {}
        max_depth = self.limits.max_depth
        for (r, _), page_id in zip(with_pages, page_ids, strict=True):
            depth = r.task.depth + 1
            for position, link in enumerate(r.page.links):
                followed = (
                    not link.nofollow
                    and (max_depth is None or depth <= max_depth)
                    and link.url in self.scope
                )
                key = url_key(link.url) if followed else ""
                known = new_urls.get(key)
                # A URL seen before passed the trap test then: only new ones are tested.
                if followed and known is None and not self._recent.knows(key):
                    followed = trap_reason(link.url) is None
                link_rows.append(
                    {
                        "page_id": page_id,
                        "position": position,
                        "url": link.url,
                        "anchor_text": link.anchor_text,
                        "rel": link.rel[:200],
                        "nofollow": link.nofollow,
                        "followed": followed,
                    }
                )
                if followed:
                    if known is not None and known["depth"] <= depth:
                        continue  # already in this batch, as shallow or shallower
                    if known is None and self._recent.known_at_or_above(key, depth):
                        continue
                    new_urls[key] = frontier_row(self.crawl_id, link.url, depth, r.task.frontier_id)
        if link_rows:
            conn.execute(insert(links_t), link_rows)
        insert_ignoring_duplicates(conn, list(new_urls.values()))
        for key, row in new_urls.items():
            self._recent.add(key, row["depth"])

    def _enqueue_redirects(self, conn: Connection, results: list[FetchResult]) -> None:
        rows = [
            frontier_row(
                self.crawl_id,
                r.location,
                r.task.depth,
                r.task.frontier_id,
                hops=r.task.redirect_hops + 1,
            )
            for r in results
            if r.location and r.location in self.scope and self._redirect_error(r) is None
        ]
        insert_ignoring_duplicates(conn, rows)

    # -- state ---------------------------------------------------------------------------

    def refresh_queued(self, every: float = 1.0) -> int:
        """URLs queued, for the progress display: at most once a second, and only the queued
        range of the lease index is counted, not the whole frontier."""
        if perf_counter() - self._queued_checked >= every:
            self._queued_checked = perf_counter()
            f = frontier_t.c
            with reading(self.engine) as conn:
                self.progress.queued = conn.execute(
                    select(func.count()).where(f.crawl_id == self.crawl_id, f.state == QUEUED)
                ).scalar_one()
        return self.progress.queued

    def finished(self) -> bool:
        """True when no run will ever have work here: nothing queued or leased, or the page
        limit is used up and nothing is still leased. One statement, so one snapshot."""
        f = frontier_t.c
        started = (
            select(crawls_t.c.urls_started).where(crawls_t.c.id == self.crawl_id).scalar_subquery()
        )
        with reading(self.engine) as conn:
            leased, queued, urls_started = conn.execute(
                select(
                    func.count().filter(f.state == LEASED),
                    func.count().filter(f.state == QUEUED),
                    started,
                ).where(f.crawl_id == self.crawl_id, f.state.in_((LEASED, QUEUED)))
            ).one()
        if leased:
            return False
        if not queued:
            return True
        return self.limits.max_pages is not None and urls_started >= self.limits.max_pages

    def release_leases_of(self, run_ids: list[int], *, refund_attempt: bool = False) -> int:
        """Give back at once the leases of runs known to be gone. A run that stopped cleanly
        (Ctrl-C) refunds the attempt: its look-ahead was never tried, and a URL back at zero
        attempts is taken off the page budget again. A run that died does not refund: the URL
        may be what killed it, and max_attempts must stop that."""
        if not run_ids:
            return 0
        f = frontier_t.c
        released = and_(f.crawl_id == self.crawl_id, f.state == LEASED, f.lease_owner.in_(run_ids))
        values = {
            "state": QUEUED,
            "lease_owner": None,
            "lease_token": None,
            "lease_expires_at": None,
        }
        with self.engine.begin() as conn:
            if refund_attempt:
                values["attempts"] = f.attempts - 1
                first_tries = conn.execute(
                    select(func.count()).where(released, f.attempts == 1)
                ).scalar_one()
                if first_tries:
                    conn.execute(
                        update(crawls_t)
                        .where(crawls_t.c.id == self.crawl_id)
                        .values(urls_started=crawls_t.c.urls_started - first_tries)
                    )
                    per_host = conn.execute(
                        select(f.host, func.count())
                        .where(released, f.attempts == 1)
                        .group_by(f.host)
                        .order_by(f.host)
                    ).all()
                    for host, count in per_host:
                        conn.execute(
                            update(hosts_t)
                            .where(hosts_t.c.crawl_id == self.crawl_id, hosts_t.c.host == host)
                            .values(urls_started=hosts_t.c.urls_started - count)
                        )
            # robots.txt fetches they had claimed are free to be taken at once, too
            conn.execute(
                update(robots_t)
                .where(robots_t.c.crawl_id == self.crawl_id, robots_t.c.claimed_by.in_(run_ids))
                .values(claimed_by=None, claim_expires_at=0.0)
            )
            return conn.execute(update(frontier_t).where(released).values(**values)).rowcount

    def give_back(self, tasks: list[FetchTask]) -> None:
        """Return leased URLs whose results will never come (their worker died). The attempt
        counts, so a URL that keeps killing workers ends as failed."""
        f = frontier_t.c
        with self.engine.begin() as conn:
            for task in tasks:
                conn.execute(
                    update(frontier_t)
                    .where(f.id == task.frontier_id, f.lease_token == task.lease_token)
                    .values(state=QUEUED, lease_owner=None, lease_token=None, lease_expires_at=None)
                )
