"""What a fetch result means: for its URL (done, retried at T, failed, a redirect hop to
follow) and for its host (when it may be asked again, its circuit breaker)."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from crawler.fetch.errors import ErrorKind
from crawler.model import FetchResult
from crawler.policy.retry import host_free_at, is_transient
from crawler.policy.rules import CrawlRules

DONE, RETRY, FAILED = "done", "retry", "failed"


@dataclass(frozen=True, slots=True)
class Outcome:
    state: str  # DONE (a response is stored), RETRY at retry_at, or FAILED
    retry_at: float | None = None
    error_kind: str | None = None
    error_message: str | None = None
    redirect_to: str | None = None  # a hop to queue: within the hop limit and in scope


def outcome_of(result: FetchResult, rules: CrawlRules, now: float, rng: random.Random) -> Outcome:
    """A transient failure with attempts left is tried again after a back-off (the server's
    Retry-After when it gave one); otherwise the URL is done if it got a response, else failed.
    Every attempt keeps its own fetch row either way."""
    task = result.task
    error_kind, message = result.error_kind, result.error_message
    redirect_to = None
    if result.location:
        if task.redirect_hops + 1 > rules.limits.max_redirects:
            error_kind = error_kind or ErrorKind.TOO_MANY_REDIRECTS.value
            message = message or f"stopped after {rules.limits.max_redirects} redirect hops"
        elif result.location in rules.scope:
            redirect_to = result.location
    transient = is_transient(result)
    if transient and task.attempt < rules.retry.max_attempts:
        wait = rules.retry.delay(task.attempt, result.retry_after, rng)
        return Outcome(RETRY, now + wait, error_kind, message, redirect_to)
    state = FAILED if result.status is None or transient else DONE
    return Outcome(state, None, error_kind, message, redirect_to)


@dataclass(frozen=True, slots=True)
class HostTally:
    """The part of a host's row that results change."""

    next_fetch_at: float = 0.0
    failures: int = 0  # in a row
    breaker_until: float = 0.0
    trips: int = 0  # times the breaker opened


def tally_host(
    tally: HostTally,
    results: Iterable[FetchResult],
    delay: float,
    rules: CrawlRules,
    now: float,
) -> tuple[HostTally, str | None]:
    """The host's row after `results` (in the order they ended), and, when its breaker has
    opened too often, why its remaining URLs are skipped.

    A request already in flight when the breaker opened does not count towards opening it
    again: a thousand connects that time out together are one failing moment, not a hundred,
    and must not give the host up at once."""
    next_fetch_at, failures = tally.next_fetch_at, tally.failures
    breaker_until, trips = tally.breaker_until, tally.trips
    breaker = rules.breaker
    opened_at = breaker_until - breaker.cooldown(trips) if trips else float("-inf")
    for result in sorted(results, key=lambda r: r.started_at + r.timings.total):
        next_fetch_at = max(next_fetch_at, host_free_at(result, delay, rules.retry, now))
        if result.started_at < opened_at:
            continue
        failures, opened = breaker.tally(failures, result)
        if opened and trips < breaker.max_trips:
            trips += 1
            breaker_until, opened_at = now + breaker.cooldown(trips), now
    if trips >= breaker.max_trips and trips > tally.trips:
        # Given up: it need not rest, its URLs are skipped (now and as they turn up).
        return HostTally(
            next_fetch_at, 0, 0.0, trips
        ), f"host failing: breaker opened {trips} times"
    return HostTally(next_fetch_at, failures, breaker_until, trips), None
