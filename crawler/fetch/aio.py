"""Fetching with aiohttp, for the asyncio frontend: the same policy as fetch/sync.py.

No redirects are followed, the raw body is read in chunks into fetch/body.py (which decodes it
under the byte cap), the whole exchange is bounded by `asyncio.timeout(deadline)`, and
aiohttp's trace hooks time the connect and the first byte. The session's connector carries
the cap on the response head (fetch/head.py) and the address guard (fetch/guard.py). Library
exceptions become our error kinds here and nowhere else.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from time import perf_counter
from types import SimpleNamespace

import aiohttp
from aiohttp.client_proto import ResponseHandler
from yarl import URL

from crawler.fetch import guard
from crawler.fetch.body import Body
from crawler.fetch.errors import ErrorKind
from crawler.fetch.exchange import LIMIT_ERRORS, Exchange
from crawler.fetch.head import HeadCounter, HeadersTooLarge
from crawler.fetch.headers import request_headers
from crawler.fetch.messages import describe
from crawler.model import FetchPolicy, FetchResult, FetchTask

CHUNK = 64 * 1024


class _HeadCappedProtocol(ResponseHandler):
    """aiohttp's connection protocol, counting each response head against the cap as its
    bytes arrive, before aiohttp's parser holds them (aiohttp's own limits are per line and
    per field count; fetch/head.py has the one rule both fetchers share)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_header_bytes: int) -> None:
        super().__init__(loop)
        self._max_header_bytes = max_header_bytes
        self._head: HeadCounter | None = None
        self._refused = False

    def set_response_params(self, **kwargs) -> None:
        self._head = HeadCounter(self._max_header_bytes)  # a request goes out: a head is next
        super().set_response_params(**kwargs)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._head is not None:
            try:
                self._head.feed(data)
            except HeadersTooLarge as exc:
                self._refused = True
                if self.transport is not None:
                    self.transport.close()
                self.set_exception(exc)
                return
        super().data_received(data)


def _guarded_socket(addr_info) -> socket.socket:
    """aiohttp's socket factory, given each address it is about to connect to (after DNS):
    a forbidden one is refused before its first packet."""
    family, type_, proto, _, sockaddr = addr_info
    guard.check_peer(sockaddr, True)
    return socket.socket(family=family, type=type_, proto=proto)


class _Connector(aiohttp.TCPConnector):
    """A TCPConnector whose connections use _HeadCappedProtocol and, when the policy says so,
    the address guard. (aiohttp takes the protocol class from `_factory`; it has no public
    setting for it.)"""

    def __init__(self, policy: FetchPolicy, **kwargs) -> None:
        if policy.block_private_addresses:
            kwargs["socket_factory"] = _guarded_socket
        super().__init__(**kwargs)
        self._factory = functools.partial(
            _HeadCappedProtocol, loop=self._loop, max_header_bytes=policy.max_header_bytes
        )


def _trace() -> aiohttp.TraceConfig:
    """Connect time per request, from aiohttp's hooks (0 when a pooled connection is reused,
    absent until a connection is made)."""

    async def connect_start(_session, context: SimpleNamespace, _params) -> None:
        context.trace_request_ctx["connect_started"] = perf_counter()

    async def connect_end(_session, context: SimpleNamespace, _params) -> None:
        timing = context.trace_request_ctx
        timing["connect"] = perf_counter() - timing.pop("connect_started", perf_counter())

    async def reused(_session, context: SimpleNamespace, _params) -> None:
        context.trace_request_ctx["connect"] = 0.0

    trace = aiohttp.TraceConfig()
    trace.on_connection_reuseconn.append(reused)
    trace.on_connection_create_start.append(connect_start)
    trace.on_connection_create_end.append(connect_end)
    return trace


def make_session(policy: FetchPolicy, concurrency: int) -> aiohttp.ClientSession:
    """One session for the whole crawl, its connection pool sized to the concurrency. No
    cookies and no proxies from the environment: results must not depend on either.

    aiohttp's own limits on a head are set where they can never bind before ours does (a line
    or a field no longer than the whole head, as many fields as fit in it), and it does not
    decode the body: fetch/body.py does, for both fetchers."""
    connector = _Connector(policy, limit=concurrency, limit_per_host=0, ttl_dns_cache=300)
    cap = policy.max_header_bytes
    return aiohttp.ClientSession(
        connector=connector,
        headers=request_headers(policy),
        timeout=aiohttp.ClientTimeout(
            total=None, connect=policy.connect_timeout, sock_read=policy.read_timeout
        ),
        cookie_jar=aiohttp.DummyCookieJar(),
        trace_configs=[_trace()],
        trust_env=False,
        auto_decompress=False,
        max_line_size=cap,
        max_field_size=cap,
        max_headers=cap // 3 + 1,  # the shortest header line, "a:" and a LF, is 3 bytes
    )


def _error_kind(exc: BaseException) -> ErrorKind:
    """Map aiohttp's exceptions onto our kinds (the border of DESIGN.md rule 8)."""
    if _forbidden(exc) is not None:
        return ErrorKind.FORBIDDEN_ADDRESS
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return ErrorKind.DNS
    if isinstance(exc, aiohttp.ClientConnectorSSLError | aiohttp.ClientSSLError):
        return ErrorKind.TLS
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ErrorKind.CONNECT_TIMEOUT
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ErrorKind.CONNECT
    if isinstance(exc, aiohttp.SocketTimeoutError | aiohttp.ServerTimeoutError):
        return ErrorKind.READ_TIMEOUT
    if isinstance(exc, aiohttp.ClientPayloadError):
        text = str(exc).lower()
        if "decompress" in text or "decod" in text:
            return ErrorKind.DECODE
        if "reset" in text:
            return ErrorKind.RESET
        return ErrorKind.PROTOCOL
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientConnectionResetError):
        return ErrorKind.RESET
    if isinstance(exc, aiohttp.ClientResponseError):
        return ErrorKind.PROTOCOL
    if isinstance(exc, aiohttp.ClientOSError | ConnectionError):
        return ErrorKind.RESET
    return ErrorKind.OTHER


def _forbidden(exc: BaseException) -> str | None:
    """The guard's message when it refused the connection. One forbidden address comes back
    as itself; several addresses that all failed come back merged into one OSError by
    aiohappyeyeballs, so the guard's words are looked for in the text too."""
    if not isinstance(exc, aiohttp.ClientConnectorError):
        return None
    if isinstance(exc.os_error, guard.ForbiddenAddress) or guard.ForbiddenAddress.MARK in str(
        exc.os_error
    ):
        return str(exc.os_error)
    return None


def fail(
    exchange: Exchange,
    kind: ErrorKind,
    exc: BaseException,
    policy: FetchPolicy,
    message: str | None = None,
) -> None:
    """End the exchange with `kind`, worded by fetch/messages.py unless `message` is given."""
    answered = exchange.status is not None
    exchange.fail(kind, message or describe(kind, exc, exchange.task.url, policy, answered))


async def _read_body(response: aiohttp.ClientResponse, policy: FetchPolicy) -> bytes:
    body = Body(response.headers.get("Content-Encoding"), policy.max_body_bytes)
    async for chunk in response.content.iter_chunked(CHUNK):
        body.feed(chunk)
    return body.finish()


async def fetch(
    session: aiohttp.ClientSession, task: FetchTask, policy: FetchPolicy, worker: str
) -> FetchResult:
    """One GET under the policy, returning a FetchResult whatever happens (bugs excepted)."""
    exchange = Exchange(task, worker, parser=policy.parser)
    timing: dict[str, float] = {}
    body, headers = None, None
    try:
        async with asyncio.timeout(policy.deadline):
            async with session.get(
                URL(task.url, encoded=True),  # already canonical: send it as it is
                allow_redirects=False,
                trace_request_ctx=timing,
            ) as response:
                location = next(
                    (v for k, v in response.raw_headers if k.lower() == b"location"), None
                )
                exchange.answered(
                    response.status, response.headers, timing.get("connect", 0.0), location
                )
                if exchange.wants_body:
                    exchange.reading()
                    body = await _read_body(response, policy)
                    exchange.downloaded(body)
                    headers = response.headers
    except LIMIT_ERRORS as exc:
        exchange.hit_limit(exc)
    except aiohttp.ClientError as exc:  # first: aiohttp's own timeouts are TimeoutErrors too
        fail(exchange, _error_kind(exc), exc, policy, _forbidden(exc))
    except TimeoutError as exc:  # asyncio.timeout: the whole exchange ran past the deadline
        fail(exchange, ErrorKind.DEADLINE, exc, policy)
    except OSError as exc:
        fail(exchange, _error_kind(exc), exc, policy)
    except (UnicodeError, ValueError) as exc:  # e.g. a header value aiohttp refuses to send
        fail(exchange, ErrorKind.BAD_REQUEST, exc, policy)
    if exchange.error_kind is not None:
        exchange.connected(timing.get("connect"))
    if body is not None:
        exchange.parse_body(body, headers)  # on the loop, as asyncio code does, but off the clock
    return exchange.result()
