"""Which links a page leads the crawl to: in scope, within the depth limit, not nofollow, not
a trap. Every link is stored; only followed ones become frontier URLs."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from crawler.model import Link
from crawler.policy.rules import CrawlRules
from crawler.urls import host_of, trap_reason, url_key


@dataclass(frozen=True, slots=True)
class NewURL:
    """A URL to queue, and how it was found."""

    url: str
    key: str
    host: str
    depth: int
    found_from: int | None = None  # frontier id of the page or redirect that led here
    redirect_hops: int = 0

    @classmethod
    def of(cls, url: str, depth: int, found_from: int | None = None, hops: int = 0) -> NewURL:
        return cls(url, url_key(url), host_of(url), depth, found_from, hops)

    @property
    def url_key(self) -> str:
        return self.key

    @property
    def attempts(self) -> int:
        return 0  # a new URL was never leased


class RecentKeys:
    """A bounded LRU of URL keys known to be in the frontier, with the shallowest depth each was
    queued at: most links on a page repeat (navigation), and skipping them saves the database a
    lookup. The database's unique key stays the real dedup, so memory does not grow with the
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

    def __len__(self) -> int:
        return len(self._depths)


def follow_links(
    links: Iterable[Link],
    depth: int,
    found_from: int,
    rules: CrawlRules,
    recent: RecentKeys,
    queue: dict[str, NewURL],
) -> list[bool]:
    """Whether each link (found on a page at `depth`) is followed; the URLs it leads to that are
    not known at this depth or shallower are put in `queue` (one batch's new URLs by key, the
    shallowest depth winning)."""
    max_depth = rules.limits.max_depth
    child_depth = depth + 1
    within_depth = max_depth is None or child_depth <= max_depth
    followed_flags = []
    for link in links:
        followed = within_depth and not link.nofollow and link.url in rules.scope
        if followed:
            key = url_key(link.url)
            queued = queue.get(key)
            # A URL seen before passed the trap test then: only new ones are tested.
            if queued is None and not recent.knows(key):
                followed = trap_reason(link.url) is None
            new_or_shallower = (
                queued.depth > child_depth
                if queued
                else not recent.known_at_or_above(key, child_depth)
            )
            if followed and new_or_shallower:
                queue[key] = NewURL(link.url, key, host_of(link.url), child_depth, found_from)
        followed_flags.append(followed)
    return followed_flags


def sitemap_urls(urls: Iterable[str], rules: CrawlRules) -> list[NewURL]:
    """URLs listed in sitemaps start one link away from the seeds: in scope, not traps, and
    only if the depth limit lets the crawl go past its seeds."""
    if rules.limits.max_depth is not None and rules.limits.max_depth < 1:
        return []
    found = {}
    for url in urls:
        if url in rules.scope and trap_reason(url) is None:
            new = NewURL.of(url, depth=1)
            found[new.key] = new
    return list(found.values())
