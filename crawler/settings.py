"""Every crawl setting, defined once: its default, its check and its help text.

The command line builds its options from these definitions, the Python API and `resume` build
a `CrawlSettings` from keywords or from the JSON stored with a crawl, and all of them validate
through `CrawlSettings.checked`. Adding a setting here adds it everywhere.
"""

from __future__ import annotations

import math
import resource
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from crawler.errors import UsageError
from crawler.frontends import BACKENDS
from crawler.model import DEFAULT_USER_AGENT, PARSERS, FetchPolicy
from crawler.urls import BadURL, normalize_host

MAX_SECONDS = 3600.0
MAX_BODY_BYTES = 1024**3  # a page is held whole while it is parsed


@dataclass(frozen=True, slots=True)
class Option:
    """How one setting looks to a user."""

    help: str
    parse: Callable[[str], Any] | None = None  # text -> value; None: an on/off flag
    check: Callable[[Any], bool] | None = None
    must: str = ""  # what `check` demands, for the error message
    normalize: Callable[[Any], Any] | None = None  # may raise UsageError
    metavar: str | None = None
    group: str = "crawl"
    repeat: bool = False  # given once per value (--allow-host A --allow-host B)
    cli: bool = True  # False: worked out by the crawler, not set by users
    default_text: str | None = None  # shown in --help instead of the default's repr

    def flag(self, name: str) -> str:
        return "--" + name.replace("_", "-")


def setting(default: Any, help: str, **option: Any) -> Any:
    return field(default=default, metadata={"option": Option(help, **option)})


def _between(low: int, high: int) -> dict[str, Any]:
    """A whole number in a range: past `high` a typo would cost the machine or mean nothing."""
    return {
        "parse": int,
        "check": lambda v: low <= v <= high,
        "must": f"{low:,} to {high:,}",
        "metavar": "N",
    }


def _seconds(*, low_exclusive: bool = False) -> dict[str, Any]:
    def ok(v: float) -> bool:
        return math.isfinite(v) and (v > 0 if low_exclusive else v >= 0) and v <= MAX_SECONDS

    low = "more than 0" if low_exclusive else "0"
    must = f"a number of seconds, {low} to {MAX_SECONDS:g}"
    return {"parse": float, "check": ok, "must": must, "metavar": "S"}


def _host(host: str) -> str:
    try:
        return normalize_host(host)
    except BadURL as exc:
        raise UsageError(
            f"--allow-host takes a host name such as docs.example.org: {exc}"
        ) from None


def _user_agent(user_agent: str) -> str:
    if not user_agent.strip() or any(ord(c) < 32 or ord(c) == 127 for c in user_agent):
        raise UsageError("--user-agent must be one line of printable text")
    try:
        user_agent.encode("latin-1")
    except UnicodeEncodeError:
        raise UsageError(
            "--user-agent must be plain Latin-1 text: HTTP headers cannot carry other characters"
        ) from None
    return user_agent


# What `crawler resume` may change: a crawl's budgets. The rest is what the crawl is.
RESUME_BUDGETS = ("max_pages", "max_depth", "max_pages_per_host")


@dataclass(frozen=True, slots=True)
class CrawlSettings:
    """Everything about a crawl but the frontend; stored with it, so `resume` needs none of it."""

    max_pages: int | None = setting(
        None, "stop after fetching N URLs (a redirect counts as one)", **_between(1, 10**9)
    )
    max_depth: int | None = setting(
        None, "follow links at most N steps from a seed (0: the seeds only)", **_between(0, 10_000)
    )
    allow_hosts: tuple[str, ...] = setting(
        (),
        "also crawl this host, on any port (the seeds' hosts are always in scope)",
        parse=str,
        normalize=lambda hosts: tuple(_host(h) for h in hosts),
        metavar="HOST",
        repeat=True,
        default_text="the seeds' hosts only",
    )
    timeout: float = setting(
        30.0,
        "total deadline of one fetch; connect and read get at most half",
        **_seconds(low_exclusive=True),
    )
    user_agent: str = setting(
        DEFAULT_USER_AGENT,
        "the User-Agent header; its first word is the product token robots.txt is read for",
        parse=str,
        normalize=_user_agent,
        metavar="UA",
        default_text="crawler/0.1 (...)",
    )
    max_redirects: int = setting(5, "redirect hops followed from one URL", **_between(0, 20))
    max_body_bytes: int = setting(
        5 * 1024 * 1024,
        "decoded bytes read of one page before it is refused (a compression bomb stops here)",
        parse=int,
        check=lambda v: 1024 <= v <= MAX_BODY_BYTES,
        must=f"1024 to {MAX_BODY_BYTES} bytes",
        metavar="N",
        default_text="5 MiB",
    )
    ignore_robots: bool = setting(
        False, "do not fetch or obey robots.txt (recorded with the crawl)", group="politeness"
    )
    sitemaps: bool = setting(
        False, "also seed the frontier from robots.txt Sitemap: lines", group="politeness"
    )
    per_host_concurrency: int | None = setting(
        None,
        "most requests in flight to one host:port",
        group="politeness",
        default_text="8 on the network, no cap on loopback",
        **_between(1, 50_000),
    )
    per_host_delay: float | None = setting(
        None,
        "least time between the end of one request to a host and the next (Crawl-delay raises it)",
        group="politeness",
        default_text="0",
        **_seconds(),
    )
    max_pages_per_host: int | None = setting(
        None, "a trap guard: URLs fetched per host", group="politeness", **_between(1, 10**9)
    )
    max_attempts: int = setting(
        3, "fetches of one URL before it is marked failed", group="politeness", **_between(1, 100)
    )
    retry_backoff: float = setting(
        1.0,
        "wait before the first retry, doubled for each next one (with jitter, at most 60 s)",
        group="politeness",
        **_seconds(),
    )
    max_retry_after: float = setting(
        120.0, "ceiling on a server's Retry-After", group="politeness", **_seconds()
    )
    breaker_threshold: int = setting(
        10,
        "connection failures in a row that rest a host (0: never)",
        group="politeness",
        **_between(0, 100_000),
    )
    breaker_cooldown: float = setting(
        30.0,
        "how long a failing host rests, doubled each time; after 3 rests its URLs are skipped",
        group="politeness",
        **_seconds(),
    )
    worker_timeout: float = setting(
        30.0,
        "a worker whose heartbeat is this old is dead to the others, and its URLs go back to "
        "the queue (a worker paused this long is stopped when it wakes)",
        parse=float,
        check=lambda v: 3.0 <= v <= MAX_SECONDS,
        must=f"a number of seconds, 3 to {MAX_SECONDS:g}",
        metavar="S",
    )
    block_private_addresses: bool = setting(
        False, "refuse to connect to non-public addresses (set when a seed is public)", cli=False
    )

    @classmethod
    def checked(cls, **values: Any) -> CrawlSettings:
        """Settings from user input: unknown names, bad values and malformed hosts or user
        agents are UsageErrors naming the flag and what it must be."""
        return _checked(cls, "crawl setting", values)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CrawlSettings:
        """The settings stored with a crawl; names a newer or older crawler wrote are ignored."""
        known = {f.name for f in fields(cls)}
        stored = {k: v for k, v in data.items() if k in known}
        if "allow_hosts" in stored:
            stored["allow_hosts"] = tuple(stored["allow_hosts"])
        return cls(**stored)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "allow_hosts": list(self.allow_hosts)}

    def with_budgets(self, **budgets: Any) -> CrawlSettings:
        """These settings with new budgets (RESUME_BUDGETS), each checked as on a new crawl."""
        unknown = set(budgets) - set(RESUME_BUDGETS)
        if unknown:
            raise UsageError(
                f"a resume may change only {', '.join(RESUME_BUDGETS)}, not "
                f"{', '.join(sorted(unknown))}"
            )
        checked = CrawlSettings.checked(**budgets)
        return replace(self, **{name: getattr(checked, name) for name in budgets})

    def with_public_seeds(self) -> CrawlSettings:
        return replace(self, block_private_addresses=True)

    def policy(self) -> FetchPolicy:
        return FetchPolicy(
            user_agent=self.user_agent,
            # Under a short --timeout the phase timeouts shrink with it, so a server that
            # goes quiet still shows as a read timeout, not as the whole deadline.
            connect_timeout=min(5.0, self.timeout / 2),
            read_timeout=min(10.0, self.timeout / 2),
            deadline=self.timeout,
            max_body_bytes=self.max_body_bytes,
            block_private_addresses=self.block_private_addresses,
        )

    @property
    def lease_seconds(self) -> float:
        """A lease outlives any fetch under the policy, so no live run loses its work."""
        return max(120.0, 4 * self.timeout)


def _checked(settings_class: type, what: str, values: dict[str, Any]):
    """`settings_class(**values)`, each value normalised and checked by its option; None is
    the default, whatever the default is."""
    known = {f.name: f for f in fields(settings_class)}
    for name in values:
        if name not in known:
            raise UsageError(f"unknown {what} {name!r}; known ones: {', '.join(known)}")
    clean = {}
    for name, value in values.items():
        if value is None:
            continue
        option: Option = known[name].metadata["option"]
        if option.normalize is not None:
            value = option.normalize(value)
        if option.check is not None and not _passes(option, value):
            raise UsageError(f"{option.flag(name)} must be {option.must}, not {value!r}")
        clean[name] = value
    return settings_class(**clean)


def _backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    return backend


POOL_RETURNS = ("pages", "bodies")


def _pool_returns(returns: str) -> str:
    if returns not in POOL_RETURNS:
        raise UsageError(
            f"unknown --pool-returns {returns!r}; choose one of: {', '.join(POOL_RETURNS)}"
        )
    return returns


def _parser(parser: str) -> str:
    if parser not in PARSERS:
        raise UsageError(f"unknown --parser {parser!r}; choose one of: {', '.join(PARSERS)}")
    return parser


def _passes(option: Option, value: Any) -> bool:
    try:
        return bool(option.check(value))
    except TypeError:
        return False


# Past these a typo costs the machine: a process is an interpreter (~30 MiB), a thread a stack,
# and asyncio's connections stop paying for themselves long before.
MAX_CONCURRENCY = {"threads": 10_000, "processes": 256, "asyncio": 50_000}
FILES_KEPT_BACK = 256  # open files for the database, logs and the interpreter itself


def max_concurrency(backend: str) -> int:
    """The most fetches in flight `backend` may be given on this machine: its own bound, and
    one socket each under the hard limit on open files."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    by_files = hard - FILES_KEPT_BACK if hard != resource.RLIM_INFINITY else math.inf
    return int(min(MAX_CONCURRENCY[backend], max(1, by_files)))


def _why_at_most(backend: str, most: int) -> str:
    if most < MAX_CONCURRENCY[backend]:
        return "a socket each, under the hard limit on open files; `ulimit -Hn` raises it"
    return (
        "the bound for that backend; to go further, join the crawl from more processes or "
        "machines with `crawler resume`"
    )


@dataclass(frozen=True, slots=True)
class RunSettings:
    """How one run fetches: the frontend and how many fetches it keeps in flight."""

    backend: str = setting(
        "threads",
        "how to wait for I/O: a thread pool, a process pool or an asyncio event loop",
        parse=str,
        normalize=_backend,
        metavar="|".join(BACKENDS),
        group="run",
    )
    concurrency: int = setting(
        16,
        "fetches in flight: threads, processes or asyncio tasks (at most "
        + ", ".join(f"{n:,} {backend}" for backend, n in MAX_CONCURRENCY.items())
        + ", and what the open-file limit allows)",
        group="run",
        **_between(1, 10**6),  # each backend has its own bound, checked below
    )
    pool_returns: str = setting(
        "pages",
        "processes only: what a pool child sends back, its parsed pages or the whole bodies "
        "for the parent to parse (to measure what moving data between processes costs)",
        parse=str,
        normalize=_pool_returns,
        metavar="|".join(POOL_RETURNS),
        group="run",
    )
    parser: str = setting(
        "beautifulsoup",
        "how pages are parsed: BeautifulSoup, or lxml.html directly (several times faster; "
        "the same titles and links, a test says so)",
        parse=str,
        normalize=_parser,
        metavar="|".join(PARSERS),
        group="run",
    )

    @classmethod
    def checked(cls, **values: Any) -> RunSettings:
        run = _checked(cls, "run setting", values)
        if run.pool_returns != "pages" and run.backend != "processes":
            raise UsageError(
                "--pool-returns is for the processes backend: threads and asyncio tasks share "
                "one process, so nothing is moved"
            )
        most = max_concurrency(run.backend)
        if run.concurrency > most:
            raise UsageError(
                f"--concurrency {run.concurrency:,} is too many for the {run.backend} backend: "
                f"at most {most:,} here ({_why_at_most(run.backend, most)})"
            )
        return run


def options(settings_class: type) -> list[tuple[str, Any, Option]]:
    """(name, default, option) of each setting a user may give, in definition order."""
    return [
        (f.name, f.default, f.metadata["option"])
        for f in fields(settings_class)
        if f.metadata["option"].cli
    ]


def help_text(default: Any, option: Option) -> str:
    """The option's help with its default, as `--help` shows it."""
    if option.parse is None:
        return option.help
    shown = option.default_text
    if shown is None:
        shown = (
            "none"
            if default is None
            else f"{default:g}"
            if isinstance(default, float)
            else str(default)
        )
    return f"{option.help} (default: {shown})"
