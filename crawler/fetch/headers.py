"""Request headers every fetcher sends, so the three frontends ask servers the same thing, and
the response headers both read the same way."""

from __future__ import annotations

import email.utils
import time
from datetime import UTC

from crawler.fetch.body import SUPPORTED
from crawler.model import FetchPolicy

ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"
# Exactly the codings fetch/body.py decodes: both clients hand it the raw body.
ACCEPT_ENCODING = ", ".join(SUPPORTED)


def request_headers(policy: FetchPolicy) -> dict[str, str]:
    return {
        "User-Agent": policy.user_agent,
        "Accept": ACCEPT,
        "Accept-Encoding": ACCEPT_ENCODING,
    }


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait, from a Retry-After header (RFC 9110 section 10.2.3): delay-seconds, or
    an HTTP-date taken relative to `now` (epoch seconds; a date in the past is 0). None when
    the header is missing or is neither. No ceiling: the frontier decides how long is too
    long."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" or asctime: HTTP dates are in GMT all the same
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
