"""One run's finished results that are not stored yet, per host.

A batch is stored every half second or so; until then the host's row still counts those
requests as in flight and knows nothing of their delays or failures. What they say is kept
here and handed to each lease, so a host gets its slots back at once, is not asked again
before its delay or a Retry-After, and a host refusing every connection is rested before the
batch that proves it is stored."""

from __future__ import annotations

from collections import Counter

from crawler.model import FetchResult
from crawler.policy.admission import Held
from crawler.policy.rules import CrawlRules
from crawler.urls import host_of


class PendingHosts:
    def __init__(self, rules: CrawlRules) -> None:
        self._rules = rules
        self._held: dict[str, Held] = {}
        self._failures: Counter[str] = Counter()

    def add(self, result: FetchResult, now: float) -> str:
        """Note a finished result; returns its host."""
        host = host_of(result.task.url)
        held = self._held.get(host, Held())
        not_before = held.not_before
        if result.retry_after is not None and result.status in (429, 503):
            not_before = max(
                not_before, now + min(result.retry_after, self._rules.retry.max_retry_after_s)
            )
        self._failures[host], opened = self._rules.breaker.tally(self._failures[host], result)
        if opened:
            not_before = max(not_before, now + self._rules.breaker.cooldown_s)
        self._held[host] = Held(
            results=held.results + 1,
            last_end=max(held.last_end, result.started_at + result.timings.total),
            not_before=not_before,
        )
        return host

    def held(self) -> dict[str, Held]:
        return dict(self._held)

    def stored(self) -> None:
        """The results were stored: the host rows know what they said."""
        self._held.clear()
        self._failures.clear()

    def __len__(self) -> int:
        return sum(h.results for h in self._held.values())
