"""The cap on a response head, one rule for both fetchers: the status line, the header lines
and the blank line that ends them add up to at most `FetchPolicy.max_header_bytes`. No other
limit applies, not on a line's length nor on how many lines there are (http.client alone
allows 100 header lines of 64 KiB; aiohttp 128 fields of 8 KiB), so a page with 200 small
headers is fetched by both, and a head past the cap fails on both as soon as its bytes pass
the cap, without waiting for its end or for the deadline.
"""

from __future__ import annotations

import re

# A head ends at an empty line; both clients accept a bare LF for a CRLF.
_END = re.compile(rb"\n\r?\n")


class HeadersTooLarge(Exception):
    def __init__(self, cap: int) -> None:
        super().__init__(f"headers larger than {cap} bytes")


class HeadCounter:
    """Counts the bytes of a response head as they arrive off the socket (sans I/O: the
    caller feeds it what it reads). Used where the client parses heads on its own (aiohttp)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.seen = 0
        self.done = False
        self._carry = b""  # the last bytes seen, for an end split across two reads

    def feed(self, data: bytes) -> None:
        """Raise HeadersTooLarge if these bytes take the head past the cap; once the head is
        complete, later bytes (the body) are not counted."""
        if self.done or not data:
            return
        window = self._carry + data
        end = _END.search(window)
        if end is not None:
            self.seen += end.end() - len(self._carry)
            self.done = True
        else:
            self.seen += len(data)
            self._carry = window[-2:]
        if self.seen > self.cap:
            raise HeadersTooLarge(self.cap)
