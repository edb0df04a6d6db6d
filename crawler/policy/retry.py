"""When a failed fetch is tried again, and when a host that keeps failing is left alone.

Pure rules, no I/O: the frontier applies them when it stores a batch, so they hold the same
for every frontend and every machine sharing the frontier.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from crawler.fetch.errors import ErrorKind
from crawler.model import FetchResult

# Failures that say nothing about the URL itself: the server or the path to it was unwell.
TRANSIENT_KINDS = frozenset(
    {
        ErrorKind.CONNECT,
        ErrorKind.CONNECT_TIMEOUT,
        ErrorKind.READ_TIMEOUT,
        ErrorKind.DEADLINE,
        ErrorKind.RESET,
    }
)
TRANSIENT_STATUSES = frozenset({408, 429})


def is_transient(result: FetchResult) -> bool:
    """Worth another attempt: a connection error, a timeout, a 5xx, 408 or 429."""
    if result.error_kind is not None:
        return result.error_kind in TRANSIENT_KINDS
    status = result.status or 0
    return status >= 500 or status in TRANSIENT_STATUSES


def counts_against_host(result: FetchResult) -> bool:
    """A failure the host is to blame for, as the circuit breaker counts them (a 408 is the
    client's slowness as much as the server's, so it does not count)."""
    return is_transient(result) and result.status != 408


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3  # fetches of one URL, the first included
    backoff_s: float = 1.0  # before the second attempt; doubled for each one after
    max_backoff_s: float = 60.0
    max_retry_after_s: float = 120.0  # a server's Retry-After is honoured up to this

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before attempt `attempt + 1`: the server's Retry-After when it
        gave one (up to the ceiling), else exponential back-off with jitter, so that many
        URLs failing together do not come back together."""
        if retry_after is not None:
            return min(max(0.0, retry_after), self.max_retry_after_s)
        backoff = min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s)
        return backoff / 2 + rng.uniform(0, backoff / 2)


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """A host failing `threshold` times in a row is not asked for `cooldown_s` (doubling each
    time it opens again); after `max_trips` openings its remaining URLs are skipped."""

    threshold: int = 10
    cooldown_s: float = 30.0
    max_trips: int = 3

    def cooldown(self, trips: int) -> float:
        return self.cooldown_s * 2 ** max(0, trips - 1)

    def tally(self, failures: int, result: FetchResult) -> tuple[int, bool]:
        """A host's failures in a row after `result`, and whether they open its breaker (the
        count then starts again)."""
        if not counts_against_host(result):
            return 0, False
        failures += 1
        if self.threshold and failures >= self.threshold:
            return 0, True
        return failures, False


def host_free_at(result: FetchResult, delay: float, retry: RetryPolicy, now: float) -> float:
    """The earliest moment `result` allows its host to be asked again: `delay` after the
    request ended, and a 429's or 503's Retry-After (up to the ceiling). 0.0: at once."""
    free_at = result.started_at + result.timings.total + delay if delay else 0.0
    if result.retry_after is not None and result.status in (429, 503):
        free_at = max(free_at, now + min(result.retry_after, retry.max_retry_after_s))
    return free_at
