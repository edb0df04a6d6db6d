"""How hard the crawler may press one host: in-flight requests and the gap between them.

The defaults are Scrapy's for hosts on the network (8 at once, no delay) and no cap for our own
machine, so a backend comparison against the fixture site is never quietly capped. A flag
given by the user always wins; a robots.txt Crawl-delay raises the gap (up to a ceiling).
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

import ada_url

NETWORK_CONCURRENCY = 8
MAX_CRAWL_DELAY_S = 30.0


@functools.lru_cache(maxsize=4096)  # asked for every URL a lease admits
def is_loopback_host(host: str) -> bool:
    """`host[:port]` names this machine: localhost, 127.0.0.0/8 or ::1."""
    try:
        name = ada_url.URL(f"http://{host}/").hostname.strip("[]").rstrip(".")
    except ValueError:
        return False
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Politeness:
    per_host_concurrency: int | None = None  # None: the default for the host
    per_host_delay: float | None = None
    max_crawl_delay: float = MAX_CRAWL_DELAY_S

    def delay_for(self, host: str, crawl_delay: float | None = None) -> float:
        """The least seconds between the end of one request to `host` and the next."""
        delay = self.per_host_delay or 0.0
        if crawl_delay:
            delay = max(delay, min(crawl_delay, self.max_crawl_delay))
        return delay

    def concurrency_for(self, host: str, delay: float = 0.0) -> int | None:
        """The most requests in flight to `host` (None: no cap). With a delay between
        requests they go one at a time, so that the delay means what it says."""
        if delay > 0:
            return 1
        if self.per_host_concurrency is not None:
            return self.per_host_concurrency
        return None if is_loopback_host(host) else NETWORK_CONCURRENCY
