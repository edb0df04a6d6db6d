"""Fetching with requests, for the threads and processes frontends.

The client never follows redirects (the frontier decides), streams the raw body into
fetch/body.py under a byte cap and a total deadline, and we time the connect, first byte,
download and parse phases ourselves. The session's policy also rides on its connection
classes: the cap on the response head (fetch/head.py) and the address guard (fetch/guard.py).
"""

from __future__ import annotations

import email.parser
import http.client
import http.cookiejar
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from time import perf_counter

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from crawler.fetch import guard
from crawler.fetch.body import Body
from crawler.fetch.errors import ErrorKind
from crawler.fetch.exchange import LIMIT_ERRORS, Exchange
from crawler.fetch.head import HeadersTooLarge
from crawler.fetch.headers import request_headers
from crawler.fetch.messages import describe
from crawler.fetch.watchdog import WATCHDOG, Ticket
from crawler.model import FetchPolicy, FetchResult, FetchTask

CHUNK = 64 * 1024


# Parsing holds the GIL whichever thread does it, and lxml, called back by BeautifulSoup for
# every tag, hands the GIL back and forth between threads that parse at once: thousands of
# context switches a page. One parse at a time costs no parallelism and saves that.
_ONE_PARSE_AT_A_TIME = threading.Lock()

# The current thread's exchange (one per thread at a time): its connect time (0 when a pooled
# connection is reused, None until a connection is made) and its watchdog ticket.
_current = threading.local()


class _HeadBudget:
    """The socket file while http.client reads a response head from it: every line read
    counts against the cap, and a line is never read past it."""

    def __init__(self, fp, cap: int) -> None:
        self._fp = fp
        self._cap = cap
        self._left = cap

    def readline(self, size: int | None = -1) -> bytes:
        want = self._left + 1 if size is None or size < 0 else min(size, self._left + 1)
        line = self._fp.readline(want)
        self._left -= len(line)
        if self._left < 0:
            raise HeadersTooLarge(self._cap)
        return line

    def close(self) -> None:
        self._fp.close()


def _header_lines(fp: _HeadBudget) -> list[bytes]:
    lines = []
    while True:
        line = fp.readline()
        lines.append(line)
        if line in (b"\r\n", b"\n", b""):
            return lines


class _CappedResponse(http.client.HTTPResponse):
    """http.client's response, reading its head under our one rule (fetch/head.py) instead
    of http.client's own (100 header lines at most, 64 KiB each, fixed per process).

    `begin` is http.client's own but for reading the head through a budget and parsing any
    number of header lines; the framing that follows (chunked, length, close) is unchanged."""

    max_header_bytes = 64 * 1024  # set per session by _pool_classes

    def begin(self) -> None:
        if self.headers is not None:
            return
        fp, self.fp = self.fp, _HeadBudget(self.fp, self.max_header_bytes)
        try:
            while True:
                version, status, reason = self._read_status()
                if status != http.client.CONTINUE:
                    break
                _header_lines(self.fp)  # an interim 100's head: skipped, but it counts
            lines = _header_lines(self.fp)
        finally:
            if self.fp is not None:  # None when http.client closed it on a bad status line
                self.fp = fp
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        text = b"".join(lines).decode("iso-8859-1")
        self.headers = self.msg = email.parser.Parser(_class=http.client.HTTPMessage).parsestr(text)
        transfer_encoding = self.headers.get("transfer-encoding")
        self.chunked = bool(transfer_encoding and transfer_encoding.lower() == "chunked")
        if self.chunked:
            self.chunk_left = None
        self.will_close = self._check_close()
        self.length = None
        length = self.headers.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:
                    self.length = None
        if (
            status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED)
            or 100 <= status < 200
            or self._method == "HEAD"
        ):
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True


class _TimedConnectionMixin:
    """Times the TCP (and TLS) connect, puts the socket under the exchange's deadline, and
    refuses a peer the policy forbids before TLS or the request: the address checked is the
    one the socket connected to, after DNS."""

    block_private_addresses = False  # set per session by _pool_classes

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # type: ignore[misc]
        try:
            guard.check_peer(sock.getpeername(), self.block_private_addresses)
        except guard.ForbiddenAddress:
            sock.close()
            raise
        return sock

    def connect(self) -> None:
        started = perf_counter()
        super().connect()  # type: ignore[misc]
        _current.connect_s = perf_counter() - started
        self._watch()

    def request(self, *args, **kwargs):
        if getattr(self, "sock", None) is not None and _current.connect_s is None:
            _current.connect_s = 0.0  # a pooled connection, reused: no connect phase
        self._watch()  # a reused connection already has its socket
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def _watch(self) -> None:
        ticket = getattr(_current, "ticket", None)
        if ticket is not None:
            WATCHDOG.add_socket(ticket, getattr(self, "sock", None))


class _TimedHTTPConnection(_TimedConnectionMixin, HTTPConnection):
    pass


class _TimedHTTPSConnection(_TimedConnectionMixin, HTTPSConnection):
    pass


def _pool_classes(policy: FetchPolicy) -> dict[str, type[HTTPConnectionPool]]:
    """Pool classes whose connections and responses carry this policy's limits: urllib3 makes
    connections, and http.client responses, from classes, with no way to pass them more."""
    limits = {
        "max_header_bytes": policy.max_header_bytes,
        "block_private_addresses": policy.block_private_addresses,
    }
    response = type("_CappedResponse", (_CappedResponse,), limits)
    bases = (
        ("http", HTTPConnectionPool, _TimedHTTPConnection),
        ("https", HTTPSConnectionPool, _TimedHTTPSConnection),
    )
    pools: dict[str, type[HTTPConnectionPool]] = {}
    for scheme, pool, connection in bases:
        connection_class = type(
            connection.__name__, (connection,), {**limits, "response_class": response}
        )
        pools[scheme] = type(f"_Timed{pool.__name__}", (pool,), {"ConnectionCls": connection_class})
    return pools


class _TimedAdapter(HTTPAdapter):
    def __init__(self, policy: FetchPolicy, **kwargs) -> None:
        self._pool_classes = _pool_classes(policy)  # before: HTTPAdapter's __init__ uses it
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes


class _Session(requests.Session):
    """A session that never works out a redirect: even with allow_redirects=False, requests
    decodes the Location to prepare the next hop, and fails on bytes that are not UTF-8."""

    def get_redirect_target(self, resp):
        return None


def make_session(policy: FetchPolicy, pool_size: int = 4) -> requests.Session:
    """One session per thread (or per pool child): requests.Session is not thread-safe."""
    session = _Session()
    adapter = _TimedAdapter(
        policy, pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update(request_headers(policy))
    # No proxies or .netrc from the environment, and no cookies: results must not depend on
    # either, nor on which pool child happened to fetch a page.
    session.trust_env = False
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return session


def _cause(exc: BaseException, kind) -> BaseException | None:
    """The exception of this kind behind `exc` (urllib3 and requests wrap, and wrap again)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, kind):
            return exc
        for arg in exc.args:
            if isinstance(arg, kind):
                return arg
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _caused_by(exc: BaseException, kind) -> bool:
    return _cause(exc, kind) is not None


def _error_kind(exc: BaseException) -> ErrorKind:
    """Map requests/urllib3 exceptions onto our kinds (the border of DESIGN.md rule 8)."""
    text = str(exc)
    if _caused_by(exc, guard.ForbiddenAddress):
        return ErrorKind.FORBIDDEN_ADDRESS
    if _caused_by(exc, http.client.HTTPException) and not _caused_by(
        exc, http.client.RemoteDisconnected | http.client.IncompleteRead
    ):
        return ErrorKind.PROTOCOL  # a bad status line, a header too long or malformed
    if isinstance(exc, requests.exceptions.InvalidHeader):
        return ErrorKind.PROTOCOL
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return ErrorKind.CONNECT_TIMEOUT
    if isinstance(exc, requests.exceptions.SSLError):
        return ErrorKind.TLS
    if isinstance(exc, requests.exceptions.ConnectionError) and not isinstance(
        exc, requests.exceptions.ChunkedEncodingError
    ):
        if (
            isinstance(exc.__context__, urllib3.exceptions.ReadTimeoutError)
            or "Read timed out" in text
        ):
            return ErrorKind.READ_TIMEOUT
        if "NameResolutionError" in text or "Name or service not known" in text:
            return ErrorKind.DNS
        if "RemoteDisconnected" in text or "Connection aborted" in text:
            return ErrorKind.RESET
        return ErrorKind.CONNECT
    if isinstance(exc, requests.exceptions.ReadTimeout | urllib3.exceptions.ReadTimeoutError):
        return ErrorKind.READ_TIMEOUT
    if isinstance(exc, socket.timeout | TimeoutError):
        return ErrorKind.READ_TIMEOUT
    if isinstance(exc, requests.exceptions.ContentDecodingError | urllib3.exceptions.DecodeError):
        return ErrorKind.DECODE
    if isinstance(
        exc,
        requests.exceptions.ChunkedEncodingError
        | urllib3.exceptions.ProtocolError
        | urllib3.exceptions.IncompleteRead,
    ):
        if "reset" in text.lower() or "aborted" in text.lower():
            return ErrorKind.RESET
        return ErrorKind.PROTOCOL
    if isinstance(exc, ConnectionError):
        return ErrorKind.RESET
    return ErrorKind.OTHER


class Deadline(Exception):
    """The exchange ran past the policy's total deadline."""


# What a GET through requests may raise for the network's doing (not ours).
TRANSPORT_ERRORS = (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError)


@contextmanager
def watched(policy: FetchPolicy) -> Iterator[Ticket]:
    """This thread's exchange under the watchdog: its sockets are shut at the deadline."""
    _current.connect_s = None
    _current.ticket = ticket = WATCHDOG.watch(policy.deadline)
    try:
        yield ticket
    finally:
        WATCHDOG.done(ticket)
        _current.ticket = None


def get(session: requests.Session, url: str, policy: FetchPolicy) -> requests.Response:
    """A streamed GET that does not follow redirects, under the policy's timeouts."""
    return session.get(
        url,
        stream=True,
        allow_redirects=False,
        timeout=(policy.connect_timeout, policy.read_timeout),
    )


def read_body(
    response: requests.Response, body: Body, policy: FetchPolicy, deadline: float
) -> bytes:
    """Read the raw body chunk by chunk into a Body, which decodes it under its byte cap: each
    read waits at most read_timeout, and between reads we check the total deadline, so neither
    a trickle nor a bomb wins."""
    raw = response.raw
    while True:
        if perf_counter() > deadline:
            raise Deadline(f"body not complete after {policy.deadline:g} s")
        chunk = raw.read1(CHUNK, decode_content=False)
        if not chunk:
            return body.finish()
        body.feed(chunk)


def failure(
    exc: BaseException, ticket: Ticket, policy: FetchPolicy, url: str, answered: bool
) -> tuple[ErrorKind, str]:
    """The error kind and message of an exception from TRANSPORT_ERRORS, or of a request
    requests refused to send (UnicodeError, ValueError). `answered`: the status line was in."""
    if isinstance(exc, UnicodeError | ValueError) and not isinstance(exc, TRANSPORT_ERRORS):
        kind = ErrorKind.BAD_REQUEST
    elif ticket.expired:
        kind = ErrorKind.DEADLINE
    else:
        forbidden = _cause(exc, guard.ForbiddenAddress)
        if forbidden:
            return ErrorKind.FORBIDDEN_ADDRESS, str(forbidden)
        kind = _error_kind(exc)
    return kind, describe(kind, exc, url, policy, answered)


def fetch(session: requests.Session, task: FetchTask, policy: FetchPolicy) -> FetchResult:
    """One GET under the policy, returning a FetchResult whatever happens (bugs excepted)."""
    return _exchange(session, task, policy, keep_body=False).result()


def fetch_keeping_body(
    session: requests.Session, task: FetchTask, policy: FetchPolicy
) -> tuple[FetchResult, tuple[bytes, dict[str, str]] | None]:
    """fetch(), the page left unparsed: the result and the body with its headers (None when
    no body was read), for exchange.parse_shipped to parse elsewhere."""
    exchange = _exchange(session, task, policy, keep_body=True)
    return exchange.result(), exchange.kept


def _exchange(
    session: requests.Session, task: FetchTask, policy: FetchPolicy, *, keep_body: bool
) -> Exchange:
    worker = threading.current_thread().name
    exchange = Exchange(task, worker, parser=policy.parser, keep_body=keep_body)
    deadline = exchange.started + policy.deadline
    with watched(policy) as ticket:
        try:
            response = get(session, task.url, policy)
            with response:
                location = response.headers.get("Location")
                raw_location = location.encode("latin-1") if location is not None else None
                exchange.answered(
                    response.status_code, response.headers, _current.connect_s, raw_location
                )
                if exchange.wants_body:
                    exchange.reading()
                    encoding = response.headers.get("Content-Encoding")
                    body = read_body(
                        response, Body(encoding, policy.max_body_bytes), policy, deadline
                    )
                    if ticket.expired:  # the watchdog cut the socket: what we read is partial
                        raise Deadline(f"exchange not complete after {policy.deadline:g} s")
                    exchange.downloaded(body)
                    with _ONE_PARSE_AT_A_TIME:
                        exchange.parse_body(body, response.headers)
        except Deadline as exc:
            exchange.fail(ErrorKind.DEADLINE, str(exc))
        except LIMIT_ERRORS as exc:
            exchange.hit_limit(exc)
        except (*TRANSPORT_ERRORS, UnicodeError, ValueError) as exc:
            answered = exchange.status is not None
            exchange.fail(*failure(exc, ticket, policy, task.url, answered))
            exchange.connected(_current.connect_s)
    return exchange
