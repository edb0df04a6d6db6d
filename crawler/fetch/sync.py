"""Fetching with requests, for the threads and processes frontends.

The client never follows redirects (the frontier decides), streams the body under a byte cap
and a total deadline, and we time the connect, first byte, download and parse phases ourselves.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import socket
import threading
from time import perf_counter

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from crawler.fetch.errors import ErrorKind
from crawler.fetch.exchange import Exchange
from crawler.fetch.headers import request_headers
from crawler.fetch.watchdog import WATCHDOG
from crawler.model import FetchPolicy, FetchResult, FetchTask

CHUNK = 64 * 1024


# The current thread's exchange (one per thread at a time): its connect time (0 when a pooled
# connection is reused) and its watchdog ticket.
_current = threading.local()


class _TimedConnectionMixin:
    """Times the TCP (and TLS) connect, and puts the socket under the exchange's deadline."""

    def connect(self) -> None:
        started = perf_counter()
        super().connect()  # type: ignore[misc]
        _current.connect_s = perf_counter() - started
        self._watch()

    def request(self, *args, **kwargs):
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


class _TimedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _TimedHTTPConnection


class _TimedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TimedHTTPSConnection


class _TimedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _TimedHTTPPool, "https": _TimedHTTPSPool}


class _Session(requests.Session):
    """A session that never works out a redirect: even with allow_redirects=False, requests
    decodes the Location to prepare the next hop, and fails on bytes that are not UTF-8."""

    def get_redirect_target(self, resp):
        return None


def make_session(policy: FetchPolicy, pool_size: int = 4) -> requests.Session:
    """One session per thread (or per pool child): requests.Session is not thread-safe."""
    session = _Session()
    adapter = _TimedAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update(request_headers(policy))
    # No proxies or .netrc from the environment, and no cookies: results must not depend on
    # either, nor on which pool child happened to fetch a page.
    session.trust_env = False
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return session


def _caused_by(exc: BaseException, kind) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, kind) or any(isinstance(arg, kind) for arg in exc.args):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _error_kind(exc: BaseException) -> ErrorKind:
    """Map requests/urllib3 exceptions onto our kinds (the border of DESIGN.md rule 8)."""
    text = str(exc)
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


class _Deadline(Exception):
    pass


class _TooLarge(Exception):
    pass


def _read_body(response: requests.Response, policy: FetchPolicy, deadline: float) -> bytes:
    """Read the decoded body chunk by chunk: each read waits at most read_timeout, and between
    reads we check the total deadline and the byte cap, so neither a trickle nor a bomb wins."""
    chunks: list[bytes] = []
    size = 0
    raw = response.raw
    while True:
        if perf_counter() > deadline:
            raise _Deadline(f"body not complete after {policy.deadline:g} s")
        chunk = raw.read1(CHUNK, decode_content=True)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > policy.max_body_bytes:
            raise _TooLarge(f"body larger than {policy.max_body_bytes} bytes")
        chunks.append(chunk)


def fetch(session: requests.Session, task: FetchTask, policy: FetchPolicy) -> FetchResult:
    """One GET under the policy, returning a FetchResult whatever happens (bugs excepted)."""
    exchange = Exchange(task, threading.current_thread().name)
    deadline = exchange.started + policy.deadline
    _current.connect_s = 0.0
    _current.ticket = ticket = WATCHDOG.watch(policy.deadline)
    try:
        response = session.get(
            task.url,
            stream=True,
            allow_redirects=False,
            timeout=(policy.connect_timeout, policy.read_timeout),
        )
        with response:
            location = response.headers.get("Location")
            raw_location = location.encode("latin-1") if location is not None else None
            exchange.answered(
                response.status_code, response.headers, _current.connect_s, raw_location
            )
            if exchange.wants_body:
                download_started = perf_counter()
                body = _read_body(response, policy, deadline)
                if ticket.expired:  # the watchdog cut the socket: what we read is partial
                    raise _Deadline(f"exchange not complete after {policy.deadline:g} s")
                exchange.downloaded(body, perf_counter() - download_started)
                exchange.parse_body(body, response.headers)
    except _Deadline as exc:
        exchange.fail(ErrorKind.DEADLINE, str(exc))
    except _TooLarge as exc:
        exchange.fail(ErrorKind.TOO_LARGE, str(exc))
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        if ticket.expired:
            exchange.fail(ErrorKind.DEADLINE, f"exchange not complete after {policy.deadline:g} s")
        else:
            exchange.fail(_error_kind(exc), f"{type(exc).__name__}: {exc}")
    except (UnicodeError, ValueError) as exc:  # e.g. a header value requests refuses to send
        exchange.fail(ErrorKind.BAD_REQUEST, f"{type(exc).__name__}: {exc}")
    finally:
        WATCHDOG.done(ticket)
        _current.ticket = None
    return exchange.result()
