"""Whether a host may be asked now, and which of its ready URLs a lease takes.

A lease claims a host, asks `admit_host` (its row, what this run holds unstored for it, the
robots.txt verdict, the time), and then walks the host's ready URLs, shallowest first, asking
`admit_url` of each. Breadth-first order is kept per host: with `level` the shallowest depth
the host has ready or in flight, only depths `level` and `level + 1` are leased (only `level`
under a page or depth limit), so every URL is stored at its true link depth whatever the
timing. A URL waiting on a retry is neither ready nor in flight: it never holds its host's
other URLs back.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

from crawler.policy.rules import CrawlRules
from crawler.robots import RobotsRules

ROBOTS_POLL_S = 0.25  # a host whose robots.txt is being fetched is asked again after this


class RobotsState(Enum):
    PENDING = "pending"  # being fetched, or asked again after a failure: wait
    UNAVAILABLE = "unavailable"  # failed for good: skip the origin's URLs


ROBOTS_PENDING: Final = RobotsState.PENDING
ROBOTS_UNAVAILABLE: Final = RobotsState.UNAVAILABLE
RobotsVerdict = RobotsRules | RobotsState | None  # None: robots.txt is not obeyed


@dataclass(frozen=True, slots=True)
class HostView:
    """A host as its row says, read under the lease's lock."""

    host: str
    queued: int  # URLs ready now
    in_flight: int  # URLs leased, by any run
    next_fetch_at: float  # epoch seconds: politeness delay, a host-wide Retry-After
    breaker_until: float
    urls_started: int  # URLs leased for the first time, for --max-pages-per-host
    breaker_trips: int = 0  # times its breaker opened


@dataclass(frozen=True, slots=True)
class Held:
    """What this run's finished but not yet stored results say of a host."""

    results: int = 0  # requests over: their slots are free though the rows still say leased
    last_end: float = 0.0  # when the last of them ended (the delay counts from there)
    not_before: float = 0.0  # a Retry-After, or the breaker those results opened


NOTHING_HELD: Final = Held()


@dataclass(frozen=True, slots=True)
class Wait:
    """Not now. `shared`: the reason holds for every run (write it to the host's row)."""

    until: float | None  # None: until one of its requests ends
    shared: bool = False


@dataclass(frozen=True, slots=True)
class GiveUpHost:
    """The host failed too often: every URL of it that turns up is skipped, for this reason."""

    reason: str


@dataclass(frozen=True, slots=True)
class Admit:
    delay: float  # seconds between requests to the host, as the lease finds them
    cap: int | None  # most requests in flight to it (None: no cap)
    slots: int | None  # how many more may start now (None: no cap)
    robots: RobotsVerdict


def host_wait(view: HostView, held: Held, now: float) -> Wait | None:
    """Whether the host must wait whatever its robots.txt says: its next allowed request, its
    breaker, or what this run's unstored results say."""
    not_before = max(view.next_fetch_at, view.breaker_until, held.not_before)
    return Wait(not_before) if not_before > now else None


def admit_host(
    view: HostView,
    held: Held,
    robots: RobotsVerdict,
    sitemaps_pending: bool,
    rules: CrawlRules,
    now: float,
) -> Admit | Wait | GiveUpHost:
    if rules.breaker.threshold and view.breaker_trips >= rules.breaker.max_trips:
        return GiveUpHost(f"host failing: breaker opened {view.breaker_trips} times")
    waiting = host_wait(view, held, now)
    if waiting is not None:
        return waiting
    if robots is ROBOTS_PENDING or sitemaps_pending:
        return Wait(now + ROBOTS_POLL_S, shared=robots is ROBOTS_PENDING)
    crawl_delay = robots.crawl_delay if isinstance(robots, RobotsRules) else None
    delay = rules.politeness.delay_for(view.host, crawl_delay)
    if delay and held.results and held.last_end + delay > now:
        return Wait(held.last_end + delay)
    cap = rules.politeness.concurrency_for(view.host, delay)
    if cap is None:
        return Admit(delay, None, None, robots)
    slots = cap - max(0, view.in_flight - held.results)
    if slots <= 0:
        return Wait(None)
    return Admit(delay, cap, slots, robots)


def deepest_leasable(level: int, rules: CrawlRules) -> int:
    """The deepest level a lease may take from a host whose shallowest ready or in-flight URL
    is at `level`: a URL at level + 1 cannot be reached in fewer links once the levels above
    `level` are done. Under a page or depth limit, only `level` itself."""
    return level if rules.limits.bounded else level + 1


TAKE: Final = "take"
LATER: Final = "later"  # not in this lease: the page budget is spent
GIVE_UP: Final = "give up"  # leased max_attempts times without a result: mark it failed


def admit_url(
    url: str,
    attempts: int,
    robots: RobotsVerdict,
    started_on_host: int,
    budget_left: int | None,
    rules: CrawlRules,
) -> str:
    """TAKE, LATER, GIVE_UP, or why the URL is skipped for good. A URL's first attempt uses the
    crawl's page budget and the host's page limit; later attempts do not."""
    if attempts >= rules.limits.max_attempts:
        return GIVE_UP
    if robots is ROBOTS_UNAVAILABLE:
        return "robots.txt unavailable"
    if isinstance(robots, RobotsRules) and not robots.allowed(url):
        return "disallowed by robots.txt"
    if attempts == 0:
        per_host = rules.limits.max_pages_per_host
        if per_host is not None and started_on_host >= per_host:
            return f"host page limit ({per_host})"
        if budget_left is not None and budget_left <= 0:
            return LATER
    return TAKE
