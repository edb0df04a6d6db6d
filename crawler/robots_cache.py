"""robots.txt as a crawl obeys it: fetched once per origin, shared by every run through the
database, refreshed after 24 h, and read as RFC 9309 says (section 2.3.1.3-4):

- 2xx: the rules in the file (its first 512 KiB);
- 4xx, or more than five redirects: no rules, everything allowed;
- 5xx, 429, or no answer: everything disallowed for now, asked again after a back-off; after
  `max_attempts` failures the origin's URLs are skipped as "robots.txt unavailable".

Fetches run on a few threads of their own, so a slow robots.txt holds up only its own host;
the coordinator writes what they found (one writer per process).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from crawler.fetch.document import Document, fetch_document
from crawler.fetch.errors import ErrorKind
from crawler.fetch.sync import make_session
from crawler.fetch.watchdog import WATCHDOG
from crawler.model import FetchPolicy
from crawler.policy.admission import ROBOTS_PENDING, ROBOTS_UNAVAILABLE, RobotsVerdict
from crawler.policy.retry import RetryPolicy
from crawler.robots import MAX_ROBOTS_BYTES, RobotsRules
from crawler.sitemaps import MAX_SITEMAP_BYTES, MAX_SITEMAPS, SitemapError, parse_sitemap
from crawler.store.models import Robots
from crawler.urls import Scope, resolve_link

log = logging.getLogger(__name__)
robots_t = Robots.__table__
REFRESH_S = 24 * 3600.0
FETCHERS = 4
SITEMAP_CHUNK = 1000
ROBOTS_BACKOFF_FACTOR = 10  # a robots.txt failure is retried 10x slower than a page


@dataclass(frozen=True, slots=True)
class _WalkDone:
    """Sent after an origin's last sitemap chunk."""

    origin: str


class RobotsKeeper:
    def __init__(
        self,
        crawl_id: int,
        run_id: int,
        policy: FetchPolicy,
        retry: RetryPolicy,
        scope: Scope,
        *,
        sitemaps: bool = False,
    ) -> None:
        self.crawl_id = crawl_id
        self.run_id = run_id
        self.policy = policy
        self.retry = retry
        self.scope = scope
        self.sitemaps = sitemaps
        self._rules: OrderedDict[str, tuple[RobotsVerdict, float]] = OrderedDict()
        self._asked: set[str] = set()  # origins this run is fetching
        self._sitemaps_read: set[str] = set()
        self._walking: set[str] = set()  # origins whose sitemaps are not all handed over
        self._found: queue.SimpleQueue = queue.SimpleQueue()
        # Sitemap URLs come in chunks through a bounded queue: a huge sitemap waits for the
        # coordinator instead of filling memory, and one walk never starves robots fetches.
        self._sitemap_urls: queue.Queue[list[str] | _WalkDone | BaseException] = queue.Queue(
            maxsize=8
        )
        self._pool = ThreadPoolExecutor(max_workers=FETCHERS, thread_name_prefix="robots")
        self._sitemap_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sitemaps")
        self._stopping = threading.Event()
        self._local = threading.local()
        self._rng = random.Random()

    def close(self) -> None:
        """Stop at once: queued fetches are dropped, and one under way has its socket shut
        (the frontends are done with the watchdog by now), so Ctrl-C is not held up."""
        self._stopping.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._sitemap_pool.shutdown(wait=False, cancel_futures=True)
        WATCHDOG.abort_all()

    # -- asked by the frontier while leasing -----------------------------------------------

    def verdict(self, conn: Connection, origin: str, now: float) -> RobotsVerdict:
        """The origin's rules; ROBOTS_PENDING while they are being fetched (or retried);
        ROBOTS_UNAVAILABLE once its robots.txt failed for good."""
        known = self._rules.get(origin)
        if known is not None and known[1] > now:
            self._rules.move_to_end(origin)
            return known[0]
        row = conn.execute(
            select(robots_t).where(
                robots_t.c.crawl_id == self.crawl_id, robots_t.c.origin == origin
            )
        ).first()
        if row is None:
            self._claim_new(conn, origin, now)
            return ROBOTS_PENDING
        if row.verdict == "unavailable":
            return self._remember(origin, ROBOTS_UNAVAILABLE, float("inf"))
        if row.verdict == "fetching":
            if (row.claim_expires_at or 0.0) < now:
                self._claim(conn, row, now)
            return ROBOTS_PENDING
        due = row.expires_at <= now
        if due and (row.claim_expires_at or 0.0) < now:
            self._claim(conn, row, now)
        if row.verdict == "disallow_all":  # failed; asked again once the back-off is over
            return self._remember(origin, ROBOTS_PENDING, now + 1.0 if due else row.expires_at)
        rules = (
            RobotsRules.parse(row.body or "", self.policy.user_agent)
            if row.verdict == "rules"
            else RobotsRules.allow_all()
        )
        # An expired file is still obeyed while its refresh is under way.
        return self._remember(origin, rules, row.expires_at if not due else now + 1.0)

    def _remember(self, origin: str, rules, until: float):
        self._rules[origin] = (rules, until)
        self._rules.move_to_end(origin)
        if len(self._rules) > 10_000:
            self._rules.popitem(last=False)
        return rules

    def _claim_expiry(self, now: float) -> float:
        return now + self.policy.deadline * 6 + 10.0

    def _claim_new(self, conn: Connection, origin: str, now: float) -> None:
        insert = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
        created = conn.execute(
            insert(robots_t)
            .on_conflict_do_nothing(index_elements=["crawl_id", "origin"])
            .values(
                crawl_id=self.crawl_id,
                origin=origin,
                verdict="fetching",
                attempts=0,
                expires_at=0.0,
                claimed_by=self.run_id,
                claim_expires_at=self._claim_expiry(now),
            )
        ).rowcount
        if created:
            self._ask(origin)

    def _claim(self, conn: Connection, row, now: float) -> None:
        """Take the (re)fetch of a row nobody is fetching; a compare-and-set, so only one run
        of many wins."""
        won = conn.execute(
            update(robots_t)
            .where(
                robots_t.c.id == row.id,
                robots_t.c.claim_expires_at.is_(None)
                if row.claim_expires_at is None
                else robots_t.c.claim_expires_at == row.claim_expires_at,
            )
            .values(claimed_by=self.run_id, claim_expires_at=self._claim_expiry(now))
        ).rowcount
        if won:
            self._ask(origin=row.origin)

    def _ask(self, origin: str) -> None:
        if origin in self._asked:
            return
        self._asked.add(origin)
        self._pool.submit(self._fetch_robots, origin)

    # -- on the fetch threads ----------------------------------------------------------------

    def _session(self):
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = make_session(self.policy, pool_size=2)
        return session

    def _fetch_robots(self, origin: str) -> None:
        document = fetch_document(
            self._session(), f"{origin}/robots.txt", self.policy, max_bytes=MAX_ROBOTS_BYTES
        )
        self._found.put((origin, document))

    def _fetch_sitemaps(self, origin: str, listed: tuple[str, ...]) -> None:
        try:
            self._walk_sitemaps(origin, listed)
        except BaseException as exc:  # a bug: settle() raises it on the coordinator
            self._sitemap_urls.put(exc)
        self._hand_over(_WalkDone(origin))

    def _walk_sitemaps(self, origin: str, listed: tuple[str, ...]) -> None:
        """Walk the origin's sitemaps (indexes included, at most MAX_SITEMAPS files), passing
        on the page URLs in scope a chunk at a time."""
        todo = [u for u in (resolve_link(s, origin + "/") for s in listed) if u and u in self.scope]
        seen: set[str] = set()
        while todo and len(seen) < MAX_SITEMAPS and not self._stopping.is_set():
            url = todo.pop(0)
            if url in seen:
                continue
            seen.add(url)
            document = fetch_document(
                self._session(), url, self.policy, max_bytes=MAX_SITEMAP_BYTES + 1
            )
            if document.status != 200 or document.truncated:
                continue
            try:
                sitemap = parse_sitemap(document.body)
            except SitemapError:
                continue
            pages = [resolve_link(loc, url) for loc in sitemap.pages]
            in_scope = [page for page in pages if page and page in self.scope]
            for start in range(0, len(in_scope), SITEMAP_CHUNK):
                self._hand_over(in_scope[start : start + SITEMAP_CHUNK])
            for loc in sitemap.sitemaps:
                child = resolve_link(loc, url)
                if child and child in self.scope:
                    todo.append(child)

    def _hand_over(self, urls: list[str] | _WalkDone) -> None:
        while not self._stopping.is_set():
            try:
                self._sitemap_urls.put(urls, timeout=0.2)
                return
            except queue.Full:
                continue

    # -- back on the coordinator --------------------------------------------------------------

    @property
    def unsettled(self) -> bool:
        """Fetches have answered, or sitemap URLs are waiting: settle() has work."""
        return not self._found.empty() or not self._sitemap_urls.empty()

    def settle(self, conn: Connection, now: float) -> list[str]:
        """Store what the robots fetches found; returns a chunk or two of page URLs read from
        sitemaps (the rest wait in the bounded queue for the next lease)."""
        while True:
            try:
                origin, document = self._found.get_nowait()
            except queue.Empty:
                break
            self._asked.discard(origin)
            self._store(conn, origin, document, now)
        pages: list[str] = []
        for _ in range(2):
            try:
                chunk = self._sitemap_urls.get_nowait()
            except queue.Empty:
                break
            if isinstance(chunk, BaseException):
                raise chunk
            if isinstance(chunk, _WalkDone):
                self._walking.discard(chunk.origin)
                continue
            pages.extend(chunk)
        return pages

    def sitemaps_pending(self, origin: str) -> bool:
        """The origin's sitemaps are still being read: its URLs wait, so that the sitemap's
        pages join the frontier before the crawl goes past the seeds (which pages fill a
        --max-pages budget then does not depend on how fast the sitemaps came in)."""
        return origin in self._walking

    def _store(self, conn: Connection, origin: str, document: Document, now: float) -> None:
        row = conn.execute(
            select(robots_t).where(
                robots_t.c.crawl_id == self.crawl_id, robots_t.c.origin == origin
            )
        ).first()
        attempts = row.attempts if row else 0
        status = document.status
        values = {"status": status, "error": document.error_message, "fetched_at": now}
        if status is not None and 200 <= status < 300:
            body = document.body.decode("utf-8", errors="replace")
            values |= {"verdict": "rules", "body": body, "attempts": 0}
            values["expires_at"] = now + REFRESH_S
        elif (
            status is not None and 400 <= status < 500 and status != 429
        ) or document.error_kind in (ErrorKind.TOO_MANY_REDIRECTS, ErrorKind.BAD_REDIRECT):
            values |= {"verdict": "allow_all", "body": None, "attempts": 0}
            values["expires_at"] = now + REFRESH_S
        else:
            attempts += 1
            backoff = ROBOTS_BACKOFF_FACTOR * self.retry.delay(attempts, None, self._rng)
            values |= {"attempts": attempts, "expires_at": now + backoff}
            if row is not None and row.verdict in ("rules", "allow_all"):
                values["verdict"] = row.verdict  # a failed refresh: the copy we have holds
            elif attempts >= self.retry.max_attempts:
                values["verdict"] = "unavailable"
            else:
                values["verdict"] = "disallow_all"
        conn.execute(
            update(robots_t)
            .where(robots_t.c.crawl_id == self.crawl_id, robots_t.c.origin == origin)
            .values(**values, claimed_by=None, claim_expires_at=None)
        )
        self._rules.pop(origin, None)
        log.info("robots.txt of %s: %s", origin, _verdict_text(document, values, now))
        if values["verdict"] == "rules" and self.sitemaps and origin not in self._sitemaps_read:
            self._sitemaps_read.add(origin)
            listed = RobotsRules.parse(values["body"], self.policy.user_agent).sitemaps
            if listed:
                self._walking.add(origin)
                self._sitemap_pool.submit(self._fetch_sitemaps, origin, tuple(listed))


def _verdict_text(document: Document, values: dict, now: float) -> str:
    """What a stored robots.txt verdict means for the crawl, in words."""
    answer = f"HTTP {document.status}" if document.status is not None else document.error_kind
    verdict = values["verdict"]
    if "body" in values:  # an answer that settles it for a day
        if verdict == "rules":
            return f"{answer}, its rules apply"
        return f"{answer}, everything allowed"
    if verdict == "unavailable":
        return f"{answer}, unavailable after {values['attempts']} tries: its URLs are skipped"
    wait = values["expires_at"] - now
    if verdict == "disallow_all":
        return f"{answer}, unavailable for now: its URLs wait, asked again in {wait:.0f} s"
    return f"{answer}, refresh failed: the copy we have holds, asked again in {wait:.0f} s"
