"""What the questions about a crawl answer with: frozen dataclasses of primitives, so that a
notebook, the command line's tables and its `--json` lines all show the same fields.

Times a person reads are ISO 8601 strings in UTC; durations are seconds or milliseconds, as
their names say.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class URLCounts:
    """A crawl's URLs by where they stand. `queued` are ready to be leased, `in_flight` leased
    now (or held by a run that died), `retry` waiting for their next attempt; `done` got a
    response (a 404 is done: the server answered), `failed` got none after their attempts,
    `skipped` were never fetched (robots.txt, a budget, a failing host)."""

    queued: int = 0
    in_flight: int = 0
    retry: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def total(self) -> int:
        return self.queued + self.in_flight + self.retry + self.done + self.failed + self.skipped

    @property
    def left(self) -> int:
        return self.queued + self.in_flight + self.retry


@dataclass(frozen=True, slots=True)
class CrawlInfo:
    """One crawl as `crawler crawls` lists it. `state`: submitted (no run has joined it
    yet: start a worker), running (a live run works on it),
    finished (nothing left, or its budgets spent: `next_step` says how to go on), interrupted
    (no run works on it and work is left: resume it), or stuck (leases have lapsed and no live
    run will take them back: resume it). `failed_fetches` counts attempts that failed or
    answered 4xx/5xx; `urls.failed` the URLs that ended without a response."""

    crawl_id: int
    name: str
    state: str
    seeds: list[str]
    urls: URLCounts
    pages: int
    fetches: int
    failed_fetches: int
    live_runs: int
    backends: list[str]
    created_at: str
    last_activity_at: str | None
    elapsed_s: float | None
    next_step: str | None


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One run that worked on a crawl, with what it cost. `state` is the row's, except that a
    running run whose process on this machine is gone, or whose heartbeat is older than the
    crawl's worker timeout, shows as dead."""

    run_id: int
    backend: str
    concurrency: int
    hostname: str
    pid: int
    state: str
    started_at: str
    wall_s: float | None
    pages: int
    fetches: int
    errors: int
    pages_per_s: float | None
    cpu_s: float | None
    peak_rss_kb: int | None
    error: str | None
    heartbeat_s_ago: float | None = None  # last sign of life of a running or dead run


@dataclass(frozen=True, slots=True)
class GroupCounts:
    """URLs by state within one host or one depth."""

    key: str
    queued: int
    in_flight: int
    retry: int
    done: int
    failed: int
    skipped: int


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """The oldest lease still held: which URL, which run, and when it lapses (negative: it has)."""

    url: str
    run_id: int
    attempt: int
    expires_in_s: float


@dataclass(frozen=True, slots=True)
class ErrorCount:
    """One kind of failure: an error kind (`read_timeout`, ...) or a status (`HTTP 503`);
    how many attempts ended so, how many URLs ended so at their last attempt (None where not
    counted: `status` leaves it to `errors`), and one of them."""

    kind: str
    attempts: int
    urls: int | None  # None where not counted (crawler status)
    example_url: str | None
    example_message: str | None


@dataclass(frozen=True, slots=True)
class SkipCount:
    reason: str
    urls: int
    example_url: str | None


@dataclass(frozen=True, slots=True)
class RateBucket:
    """Responses stored in one slice of the crawl's time, and their rate."""

    started_at: str
    seconds: float
    responses: int
    per_s: float


@dataclass(frozen=True, slots=True)
class CrawlStatus:
    """`crawler status`: one crawl in depth, and a one-line verdict with what to run next."""

    crawl: CrawlInfo
    verdict: str
    runs: list[RunInfo]
    by_host: list[GroupCounts]
    by_depth: list[GroupCounts]
    oldest_lease: LeaseInfo | None
    errors: list[ErrorCount]
    skipped: list[SkipCount]
    rate: list[RateBucket]


@dataclass(frozen=True, slots=True)
class PageInfo:
    """One URL of a crawl with its last attempt (none for a URL never fetched)."""

    url: str
    state: str
    host: str
    depth: int
    attempts: int
    status: int | None
    error_kind: str | None
    title: str | None
    content_type: str | None
    bytes: int | None
    total_ms: float | None
    fetched_at: str | None
    skip_reason: str | None


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """A link from a page, and what became of its target: its state and last answer (None
    for a target never put in the frontier: out of scope, or past a limit)."""

    from_url: str
    to_url: str
    anchor_text: str
    nofollow: bool
    followed: bool
    target_state: str | None
    target_status: int | None
    target_error: str | None


@dataclass(frozen=True, slots=True)
class HostInfo:
    """One host of a crawl: its URLs, its answers and how fast, and how the crawl treats it."""

    host: str
    urls: int
    done: int
    failed: int
    skipped: int
    fetches: int
    median_ms: float | None
    p95_ms: float | None
    robots: str | None
    breaker: str
    delay_s: float


@dataclass(frozen=True, slots=True)
class AttemptInfo:
    """One attempt at a URL, with each phase's time."""

    attempt: int
    run_id: int
    worker: str
    started_at: str
    status: int | None
    error_kind: str | None
    error_message: str | None
    location: str | None
    content_type: str | None
    bytes: int
    queue_wait_ms: float
    connect_ms: float | None
    first_byte_ms: float | None
    download_ms: float | None
    parse_ms: float | None
    total_ms: float


@dataclass(frozen=True, slots=True)
class URLStory:
    """`crawler show`: everything stored about one URL. `redirected_from`: the chain of URLs
    that redirected here, first one first; `redirects_to`: where its answers led, hop by hop."""

    url: str
    state: str
    host: str
    depth: int
    attempts: list[AttemptInfo]
    skip_reason: str | None
    found_on: str | None
    redirected_from: list[str]
    redirects_to: list[str]
    title: str | None
    canonical: str | None
    links_out: list[LinkInfo]
    links_in: list[LinkInfo]
    links_in_total: int
