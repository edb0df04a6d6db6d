"""Plain data that crosses every border: threads, processes, the event loop and the database.

Frozen, slotted dataclasses of primitives only, so they pickle cheaply to a pool child and
map one-to-one onto rows. No logic lives here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_USER_AGENT = "crawler/0.1 (educational crawler; threads, processes and asyncio)"


PARSERS = ("beautifulsoup", "lxml")  # crawler.parse: BeautifulSoup, or lxml.html directly


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """How one HTTP exchange is bounded; the same for every frontend."""

    user_agent: str = DEFAULT_USER_AGENT
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    deadline: float = 30.0
    max_body_bytes: int = 5 * 1024 * 1024  # decoded bytes: a compression bomb stops here
    max_header_bytes: int = 64 * 1024  # the whole response head: status line, fields, blank line
    block_private_addresses: bool = False  # refuse peers that are not public (SSRF guard)
    parser: str = PARSERS[0]  # a run's choice (BeautifulSoup by default), the same for every fetch


@dataclass(frozen=True, slots=True)
class FetchTask:
    """One leased URL, handed to a worker."""

    frontier_id: int
    url: str
    depth: int
    lease_token: str
    attempt: int
    redirect_hops: int
    leased_at: float  # epoch seconds, to measure queue wait across processes


@dataclass(frozen=True, slots=True)
class Link:
    """A link found on a page, already resolved against the page and canonicalised."""

    url: str
    anchor_text: str
    rel: str
    nofollow: bool


@dataclass(frozen=True, slots=True)
class ParsedPage:
    """What the crawler keeps of an HTML page: never the body itself."""

    title: str | None
    canonical: str | None
    charset: str | None
    content_hash: str
    meta_nofollow: bool
    links: tuple[Link, ...] = ()


@dataclass(frozen=True, slots=True)
class Timings:
    """Seconds spent in each phase of one fetch, measured with perf_counter."""

    queue_wait: float = 0.0
    connect: float | None = None
    first_byte: float | None = None
    download: float | None = None
    parse: float | None = None
    total: float = 0.0


@dataclass(frozen=True, slots=True)
class FetchResult:
    """The outcome of one HTTP exchange: a response, or an error kind, never an exception."""

    task: FetchTask
    worker: str
    started_at: float  # epoch seconds
    status: int | None = None
    content_type: str | None = None
    body_bytes: int = 0
    location: str | None = None  # resolved, canonical redirect target
    error_kind: str | None = None
    error_message: str | None = None
    page: ParsedPage | None = None
    timings: Timings = field(default_factory=Timings)
    retry_after: float | None = None  # seconds, from a Retry-After header; the frontier caps it

    @property
    def is_error(self) -> bool:
        return self.error_kind is not None or (self.status is not None and self.status >= 400)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What one run did and cost: its own pages over its own time, not the crawl's."""

    run_id: int
    backend: str
    concurrency: int
    pages: int
    fetches: int
    errors: int
    elapsed_s: float
    pages_per_s: float
    cpu_s: float
    peak_rss_kb: int


@dataclass(frozen=True, slots=True)
class CrawlSummary:
    """The crawl's totals after a run, and the run apart; the CLI's `--json` line is this as a
    dict (README, "JSON output"). `run` is None when no run started; `error` says why a run
    failed or stopped."""

    crawl_id: int | None
    name: str | None
    state: str  # finished, running (stopped by a limit or joined by others), interrupted, failed
    # The crawl's totals; None when they could not be read (the database failed).
    pages: int | None
    fetches: int | None
    errors: int | None
    queued: int | None
    skipped: int | None  # URLs never fetched: robots.txt, host limits, a failing host
    run: RunSummary | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SubmittedCrawl:
    """A crawl `submit` made (or found, with exists_ok), for workers to join by its name."""

    crawl_id: int
    name: str
    seeds: list[str]
    created: bool
