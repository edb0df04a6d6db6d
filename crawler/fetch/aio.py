"""Fetching with aiohttp, for the asyncio frontend: the same policy as fetch/sync.py.

No redirects are followed, the body is read in chunks under a byte cap, the whole exchange is
bounded by `asyncio.timeout(deadline)`, and aiohttp's trace hooks time the connect and the
first byte. Library exceptions become our error kinds here and nowhere else.
"""

from __future__ import annotations

import asyncio
import time
from time import perf_counter
from types import SimpleNamespace

import aiohttp
from yarl import URL

from crawler.fetch.errors import ErrorKind
from crawler.fetch.headers import request_headers
from crawler.model import FetchPolicy, FetchResult, FetchTask, Timings
from crawler.parse import is_html, parse_page
from crawler.urls import resolve

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
    started_at = time.time()
    t0 = perf_counter()
    timing: dict[str, float] = {}
    status = content_type = location = None
    first_byte_s = download_s = parse_s = None
    body_bytes = 0
    page = None
    error_kind: ErrorKind | None = None
    error_message: str | None = None
    try:
        async with asyncio.timeout(policy.deadline):
            async with session.get(
                URL(task.url, encoded=True),  # already canonical: send it as it is
                allow_redirects=False,
                trace_request_ctx=timing,
            ) as response:
                first_byte_s = perf_counter() - t0
                status = response.status
                content_type = response.headers.get("Content-Type")
                if 300 <= status < 400:
                    raw_location = response.headers.get("Location")
                    location = resolve(raw_location, task.url) if raw_location else None
                    if location is None:
                        error_kind = ErrorKind.BAD_REDIRECT
                        error_message = f"{status} with Location {raw_location!r}"
                elif is_html(content_type):
                    download_start = perf_counter()
                    body = await _read_body(response, policy)
                    download_s = perf_counter() - download_start
                    body_bytes = len(body)
                    if status == 200:
                        parse_start = perf_counter()
                        page = parse_page(task.url, body, response.headers)
                        parse_s = perf_counter() - parse_start
    except TimeoutError:
        error_kind = ErrorKind.DEADLINE
        error_message = f"exchange not complete after {policy.deadline:g} s"
    except _TooLarge as exc:
        error_kind, error_message = ErrorKind.TOO_LARGE, str(exc)
    except (aiohttp.ClientError, OSError) as exc:
        error_kind, error_message = _error_kind(exc), f"{type(exc).__name__}: {exc}"[:1000]
    except (UnicodeError, ValueError) as exc:  # e.g. a header value aiohttp refuses to send
        error_kind, error_message = ErrorKind.BAD_REQUEST, f"{type(exc).__name__}: {exc}"[:1000]
    if error_kind is not None and error_kind != ErrorKind.BAD_REDIRECT:
        page = None
    return FetchResult(
        task=task,
        worker=worker,
        started_at=started_at,
        status=status,
        content_type=content_type,
        body_bytes=body_bytes,
        location=location,
        error_kind=error_kind.value if error_kind else None,
        error_message=error_message,
        page=page,
        timings=Timings(
            queue_wait=max(0.0, started_at - task.leased_at),
            connect=timing.get("connect", 0.0) if first_byte_s is not None else None,
            first_byte=first_byte_s,
            download=download_s,
            parse=parse_s,
            total=perf_counter() - t0,
        ),
    )
