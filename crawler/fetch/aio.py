"""Fetching with aiohttp, for the asyncio frontend: the same policy as fetch/sync.py.

No redirects are followed, the body is read in chunks under a byte cap, the whole exchange is
bounded by `asyncio.timeout(deadline)`, and aiohttp's trace hooks time the connect and the
first byte. Library exceptions become our error kinds here and nowhere else.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from types import SimpleNamespace

import aiohttp
from yarl import URL

from crawler.fetch.errors import ErrorKind
from crawler.fetch.exchange import Exchange
from crawler.fetch.headers import request_headers
from crawler.model import FetchPolicy, FetchResult, FetchTask

CHUNK = 64 * 1024


class _TooLarge(Exception):
    pass


def _trace() -> aiohttp.TraceConfig:
    """Connect time per request, from aiohttp's hooks (0 when a pooled connection is reused)."""

    async def connect_start(_session, context: SimpleNamespace, _params) -> None:
        context.trace_request_ctx["connect_started"] = perf_counter()

    async def connect_end(_session, context: SimpleNamespace, _params) -> None:
        timing = context.trace_request_ctx
        timing["connect"] = perf_counter() - timing.pop("connect_started", perf_counter())

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_start.append(connect_start)
    trace.on_connection_create_end.append(connect_end)
    return trace


def make_session(policy: FetchPolicy, concurrency: int) -> aiohttp.ClientSession:
    """One session for the whole crawl, its connection pool sized to the concurrency. No
    cookies and no proxies from the environment: results must not depend on either."""
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0, ttl_dns_cache=300)
    return aiohttp.ClientSession(
        connector=connector,
        headers=request_headers(policy),
        timeout=aiohttp.ClientTimeout(
            total=None, connect=policy.connect_timeout, sock_read=policy.read_timeout
        ),
        cookie_jar=aiohttp.DummyCookieJar(),
        trace_configs=[_trace()],
        trust_env=False,
        auto_decompress=True,
    )


def _error_kind(exc: BaseException) -> ErrorKind:
    """Map aiohttp's exceptions onto our kinds (the border of DESIGN.md rule 8)."""
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


async def _read_body(response: aiohttp.ClientResponse, policy: FetchPolicy) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(CHUNK):
        size += len(chunk)
        if size > policy.max_body_bytes:
            raise _TooLarge(f"body larger than {policy.max_body_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def fetch(
    session: aiohttp.ClientSession, task: FetchTask, policy: FetchPolicy, worker: str
) -> FetchResult:
    """One GET under the policy, returning a FetchResult whatever happens (bugs excepted)."""
    exchange = Exchange(task, worker)
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
                    download_started = perf_counter()
                    body = await _read_body(response, policy)
                    exchange.downloaded(body, perf_counter() - download_started)
                    headers = response.headers
    except _TooLarge as exc:
        exchange.fail(ErrorKind.TOO_LARGE, str(exc))
    except aiohttp.ClientError as exc:  # first: aiohttp's own timeouts are TimeoutErrors too
        exchange.fail(_error_kind(exc), f"{type(exc).__name__}: {exc}")
    except TimeoutError:  # asyncio.timeout: the whole exchange ran past the deadline
        exchange.fail(ErrorKind.DEADLINE, f"exchange not complete after {policy.deadline:g} s")
    except OSError as exc:
        exchange.fail(_error_kind(exc), f"{type(exc).__name__}: {exc}")
    except (UnicodeError, ValueError) as exc:  # e.g. a header value aiohttp refuses to send
        exchange.fail(ErrorKind.BAD_REQUEST, f"{type(exc).__name__}: {exc}")
    if body is not None:
        exchange.parse_body(body, headers)  # on the loop, as asyncio code does, but off the clock
    return exchange.result()
