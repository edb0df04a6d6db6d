"""What one fetch learns as it goes, whichever HTTP client does it: both fetchers fill an
Exchange and freeze it into a FetchResult, so redirects, parsing and timing are decided once.

Timing: the phases are disjoint and follow one another, so they add up to `total`:

    start ─ connect ─ first_byte (wait) ─ download ─ parse ─ end
    └────────────────────────── total ──────────────────────┘

`connect` is the TCP (and TLS) connect the client reports (0 on a reused pooled connection);
`first_byte` is everything else from the start to the status line: time spent inside the
client before connecting (pool queue, DNS) and the server's wait. `download` runs from the
status line to the last body byte (or to the failure that stopped the reading), `parse` from
there until the page is parsed. A phase that did not happen is None; an exchange that failed
before any answer has `total` = the time until the failure."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from time import perf_counter

from crawler.fetch.body import BodyDecodeError, BodyTooLarge
from crawler.fetch.errors import ErrorKind
from crawler.fetch.head import HeadersTooLarge
from crawler.fetch.headers import retry_after
from crawler.fetch.messages import bad_redirect, parse_failed
from crawler.model import PARSERS, FetchResult, FetchTask, Timings
from crawler.parse import is_html, parse_page
from crawler.urls import resolve_link

# Our own limits, raised the same way under both clients.
LIMIT_ERRORS = (BodyTooLarge, BodyDecodeError, HeadersTooLarge)


def _percent_encode_non_ascii(raw: bytes) -> str:
    """A header's bytes as an ASCII URL reference: bytes past ASCII become %XX, as browsers
    do with a UTF-8 Location."""
    return "".join(chr(b) if b < 0x80 else f"%{b:02X}" for b in raw)


class Exchange:
    def __init__(
        self, task: FetchTask, worker: str, *, parser: str = PARSERS[0], keep_body: bool = False
    ) -> None:
        self.task = task
        self.worker = worker
        self.parser = parser
        # keep_body: leave the page unparsed and keep its body and headers, for a pool child
        # that sends whole bodies to its parent (--pool-returns bodies)
        self.keep_body = keep_body
        self.kept: tuple[bytes, dict[str, str]] | None = None
        self.started_at = time.time()
        self.started = perf_counter()
        self.status: int | None = None
        self.content_type: str | None = None
        self.location: str | None = None
        self.retry_after: float | None = None
        self.body_bytes = 0
        self.page = None
        self.error_kind: ErrorKind | None = None
        self.error_message: str | None = None
        self.connect: float | None = None
        self.first_byte: float | None = None
        self.download: float | None = None
        self.parse: float | None = None
        self._answered_at: float | None = None  # perf_counter at the status line
        self._reading = False  # the body is being read
        self._end: float | None = None  # perf_counter when the last phase (or a failure) ended

    def answered(
        self,
        status: int,
        headers: Mapping[str, str],
        connect: float | None,
        location: bytes | None,
    ) -> None:
        """The status line and headers are in. A 3xx is resolved here: the frontier, not the
        client, follows it. `location` is the header's raw bytes, since the two clients decode
        non-ASCII header bytes differently."""
        now = perf_counter()
        self._answered_at = self._end = now
        self.connect = connect
        self.first_byte = max(0.0, now - self.started - (connect or 0.0))
        self.status = status
        self.content_type = headers.get("Content-Type")
        self.retry_after = retry_after(headers.get("Retry-After"))
        if 300 <= status < 400:
            raw = _percent_encode_non_ascii(location) if location else None
            self.location = resolve_link(raw, self.task.url) if raw else None
            if self.location is None:
                self.fail(ErrorKind.BAD_REDIRECT, bad_redirect(status, location))

    @property
    def wants_body(self) -> bool:
        """Only HTML is downloaded: other content types stop at the headers."""
        return self.location is None and self.error_kind is None and is_html(self.content_type)

    def connected(self, connect: float | None) -> None:
        """The client's connect time, for an exchange that fails before any answer (None:
        no connection was made)."""
        if self._answered_at is None:
            self.connect = connect

    def reading(self) -> None:
        """The body is being read: a failure from here on ends the download phase."""
        self._reading = True

    def downloaded(self, body: bytes) -> None:
        """The whole body is in: the download phase ran from the status line until now."""
        self._end = perf_counter()
        self.download = self._end - (self._answered_at or self._end)
        self._reading = False
        self.body_bytes = len(body)

    def parse_body(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Parse a 200 HTML page (not under the exchange's deadline: it is our own work). A
        parse that raises, even for want of memory, makes this page an error row, not the
        end of the crawl."""
        if self.keep_body:  # a page to parse elsewhere; header names lower-cased, as HTTP's are
            if self.status == 200 and self.error_kind is None:
                self.kept = (body, {name.lower(): value for name, value in headers.items()})
            return
        if self.status == 200 and self.error_kind is None:
            parse_started = self._end or perf_counter()  # any gap since the download: parse's
            try:
                self.page = parse_page(self.task.url, body, headers, self.parser)
            except Exception as exc:
                self.fail(ErrorKind.PARSE, parse_failed(exc))
            self._end = perf_counter()
            self.parse = self._end - parse_started

    def hit_limit(self, exc: Exception) -> None:
        """One of LIMIT_ERRORS ended the exchange."""
        if isinstance(exc, BodyTooLarge):
            self.too_large(exc.decoded, str(exc))
        elif isinstance(exc, BodyDecodeError):
            self.fail(ErrorKind.DECODE, str(exc))
        else:
            self.fail(ErrorKind.PROTOCOL, str(exc))

    def too_large(self, decoded: int, message: str) -> None:
        """The decoded body passed the cap and reading stopped. body_bytes keeps how much had
        been decoded, so a row shows where the abort came (a compression bomb's included)."""
        self.body_bytes = decoded
        self.fail(ErrorKind.TOO_LARGE, message)

    def fail(self, kind: ErrorKind, message: str) -> None:
        """The exchange ends in an error. Failing while the body is read ends the download
        phase there, so the phases still add up to the total."""
        if self._reading:
            self._end = perf_counter()
            self.download = self._end - (self._answered_at or self._end)
            self._reading = False
        elif self._answered_at is None:
            self._end = perf_counter()
        self.error_kind = kind
        self.error_message = message[:1000]
        self.page = None

    def result(self) -> FetchResult:
        return FetchResult(
            task=self.task,
            worker=self.worker,
            started_at=self.started_at,
            status=self.status,
            content_type=self.content_type,
            body_bytes=self.body_bytes,
            location=self.location,
            error_kind=self.error_kind.value if self.error_kind else None,
            error_message=self.error_message,
            page=self.page,
            retry_after=self.retry_after,
            timings=Timings(
                queue_wait=max(0.0, self.started_at - self.task.leased_at),
                connect=self.connect,
                first_byte=self.first_byte,
                download=self.download,
                parse=self.parse,
                total=(self._end or perf_counter()) - self.started,
            ),
        )


def parse_shipped(
    result: FetchResult, kept: tuple[bytes, dict[str, str]] | None, parser: str
) -> FetchResult:
    """A result whose page a pool child left unparsed (it sent the body instead), parsed here
    as Exchange.parse_body would have: same page, same error on a parse that raises, and the
    parse's time added to the total."""
    if kept is None or result.status != 200 or result.error_kind is not None:
        return result
    body, headers = kept
    started = perf_counter()
    page, kind, message = None, None, None
    try:
        page = parse_page(result.task.url, body, headers, parser)
    except Exception as exc:
        kind, message = ErrorKind.PARSE.value, parse_failed(exc)[:1000]
    took = perf_counter() - started
    timings = replace(result.timings, parse=took, total=result.timings.total + took)
    return replace(result, page=page, error_kind=kind, error_message=message, timings=timings)
