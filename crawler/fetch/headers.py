"""Request headers every fetcher sends, so the three frontends ask servers the same thing."""

from __future__ import annotations

from crawler.model import FetchPolicy

ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"
ACCEPT_ENCODING = "gzip, deflate"  # what both clients decode without optional packages


def request_headers(policy: FetchPolicy) -> dict[str, str]:
    return {
        "User-Agent": policy.user_agent,
        "Accept": ACCEPT,
        "Accept-Encoding": ACCEPT_ENCODING,
    }
