"""The rules one crawl is run by, gathered from its settings and seeds, so that every decision
takes one argument for them."""

from __future__ import annotations

from dataclasses import dataclass, field

from crawler.policy.politeness import Politeness
from crawler.policy.retry import BreakerPolicy, RetryPolicy
from crawler.urls import Scope


@dataclass(frozen=True, slots=True)
class Limits:
    """The crawl-wide limits."""

    max_pages: int | None = None  # URLs fetched, redirects included
    max_depth: int | None = None
    max_redirects: int = 5  # hops followed from one URL
    max_attempts: int = 3  # fetches of one URL before it is marked failed
    max_pages_per_host: int | None = None  # a trap guard: URLs fetched per host[:port]

    @property
    def bounded(self) -> bool:
        """With a page or depth limit the crawl goes strictly level by level, so that which
        pages make the cut does not depend on timing."""
        return self.max_pages is not None or self.max_depth is not None

    def finished(self, queued: int, in_flight: int, retrying: int, urls_started: int) -> bool:
        """No run will ever have work here: nothing ready, in flight or waiting for a retry,
        or the page budget is spent and nothing is in flight or waiting."""
        if in_flight or retrying:
            return False
        return not queued or (self.max_pages is not None and urls_started >= self.max_pages)


@dataclass(frozen=True, slots=True)
class CrawlRules:
    scope: Scope
    limits: Limits = field(default_factory=Limits)
    politeness: Politeness = field(default_factory=Politeness)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    obey_robots: bool = True
    sitemaps: bool = False

    @classmethod
    def for_crawl(cls, seeds: list[str], settings) -> CrawlRules:
        """The rules of a crawl with these seeds and `CrawlSettings`."""
        return cls(
            scope=Scope.for_seeds(seeds, settings.allow_hosts),
            limits=Limits(
                max_pages=settings.max_pages,
                max_depth=settings.max_depth,
                max_redirects=settings.max_redirects,
                max_attempts=settings.max_attempts,
                max_pages_per_host=settings.max_pages_per_host,
            ),
            politeness=Politeness(settings.per_host_concurrency, settings.per_host_delay),
            retry=RetryPolicy(
                max_attempts=settings.max_attempts,
                backoff_s=settings.retry_backoff,
                max_retry_after_s=settings.max_retry_after,
            ),
            breaker=BreakerPolicy(
                threshold=settings.breaker_threshold, cooldown_s=settings.breaker_cooldown
            ),
            obey_robots=not settings.ignore_robots,
            sitemaps=settings.sitemaps,
        )
