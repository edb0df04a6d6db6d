"""The fetch policy's limits, held alike by both fetchers (requests and aiohttp) against real
loopback servers: the cap on the response head, decoded-size caps on compression bombs,
redirect targets, non-HTML bodies left unread, Retry-After, and the private-address guard."""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import socket
import threading
import time
import tracemalloc
from pathlib import Path

import brotli
import pytest

from crawler.fetch import aio, sync
from crawler.fetch.guard import address_allowed, is_public_address
from crawler.fetch.headers import ACCEPT_ENCODING, retry_after
from crawler.model import FetchPolicy, FetchResult, FetchTask

try:
    from compression import zstd
except ImportError:
    from backports import zstd

CLIENTS = ["requests", "aiohttp"]
COMPRESSION = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "compression"
POLICY = FetchPolicy(connect_timeout=2.0, read_timeout=2.0, deadline=5.0)


def task(url: str) -> FetchTask:
    return FetchTask(1, url, 0, "token", 1, 0, time.time())


def fetch_with(client: str, url: str, policy: FetchPolicy = POLICY) -> FetchResult:
    """One fetch by the requests fetcher or the aiohttp one, each with a session made from
    the same policy."""
    if client == "requests":
        session = sync.make_session(policy)
        try:
            return sync.fetch(session, task(url), policy)
        finally:
            session.close()

    async def one() -> FetchResult:
        async with aio.make_session(policy, 4) as session:
            return await aio.fetch(session, task(url), policy, "test")

    return asyncio.run(one())


class RawServer:
    """A loopback server that answers each connection with `answer(conn)` after reading the
    request, and records what it saw: for malformed or endless responses no framework sends."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.connections = 0
        self.received = b""
        self.outcome: dict[str, object] = {}
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/x"
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(5)
                try:
                    self.received += conn.recv(65536)
                    self.answer(conn, self.outcome)
                except OSError:
                    pass

    def __enter__(self) -> RawServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.listener.close()


def answer_with(data: bytes, hold: float = 0.0):
    def answer(conn: socket.socket, _outcome: dict) -> None:
        conn.sendall(data)
        time.sleep(hold)

    return answer


# --- 1. the cap on the response head -------------------------------------------------------------


def head(status: bytes, fields: list[bytes]) -> bytes:
    return status + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"


@pytest.mark.parametrize("client", CLIENTS)
def test_two_hundred_small_headers_are_fine(client):
    """http.client alone allows 100 header lines, aiohttp 128: our rule is the total only."""
    fields = [b"Content-Type: text/html", b"Content-Length: 2"]
    fields += [b"X-Header-%d: value" % i for i in range(200)]
    with RawServer(answer_with(head(b"HTTP/1.1 200 OK", fields) + b"ok")) as server:
        result = fetch_with(client, server.url)
    assert (result.status, result.error_kind, result.body_bytes) == (200, None, 2)


@pytest.mark.parametrize("client", CLIENTS)
def test_one_long_header_line_under_the_cap_is_fine(client):
    """aiohttp alone refuses a field over 8 KiB: our rule is the total only."""
    fields = [b"Content-Type: text/html", b"Content-Length: 2", b"X-Long: " + b"v" * 20_000]
    with RawServer(answer_with(head(b"HTTP/1.1 200 OK", fields) + b"ok")) as server:
        result = fetch_with(client, server.url)
    assert (result.status, result.error_kind) == (200, None)


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("extra", [0, 1], ids=["at-the-cap", "one-byte-over"])
def test_the_cap_counts_the_whole_head_to_the_byte(client, extra):
    """Status line, header lines and the blank line, CRLFs included: the same count on both."""
    cap = 1000
    fields = [b"Content-Type: text/html", b"Content-Length: 2", b"X-Pad: "]
    size = len(head(b"HTTP/1.1 200 OK", fields))
    fields[-1] += b"p" * (cap - size + extra)
    data = head(b"HTTP/1.1 200 OK", fields)
    assert len(data) == cap + extra
    policy = FetchPolicy(connect_timeout=2.0, read_timeout=2.0, deadline=5.0, max_header_bytes=cap)
    with RawServer(answer_with(data + b"ok")) as server:
        result = fetch_with(client, server.url, policy)
    if extra:
        assert (result.status, result.error_kind) == (None, "protocol")
        assert result.error_message == f"headers larger than {cap} bytes"
    else:
        assert (result.status, result.error_kind) == (200, None)


LARGE_HEADS = {
    "many-fields": [b"X-Field-%d: %s" % (i, b"v" * 1000) for i in range(80)],
    "one-long-line": [b"X-Long: " + b"v" * 70_000],
    "very-many-tiny-fields": [b"a%d:" % i for i in range(20_000)],
}


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("fields", LARGE_HEADS.values(), ids=list(LARGE_HEADS))
def test_a_head_past_the_cap_is_a_protocol_error(client, fields):
    data = head(b"HTTP/1.1 200 OK", [b"Content-Type: text/html", *fields])
    assert len(data) > POLICY.max_header_bytes
    with RawServer(answer_with(data + b"<p>")) as server:
        result = fetch_with(client, server.url)
    assert (result.status, result.error_kind) == (None, "protocol")
    assert result.error_message == "headers larger than 65536 bytes"


@pytest.mark.parametrize("client", CLIENTS)
def test_a_head_that_never_ends_fails_at_the_cap_not_the_deadline(client):
    """Header lines keep coming, fast, and the blank line never does: both fetchers give up
    once the bytes pass the cap, long before the read timeout or the deadline."""

    def endless(conn: socket.socket, _outcome: dict) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n")
        for i in range(10_000):
            conn.sendall(b"X-More-%d: %s\r\n" % (i, b"v" * 100))
        time.sleep(10)

    policy = FetchPolicy(connect_timeout=2.0, read_timeout=8.0, deadline=10.0)
    with RawServer(endless) as server:
        started = time.perf_counter()
        result = fetch_with(client, server.url, policy)
        elapsed = time.perf_counter() - started
    assert (result.error_kind, result.error_message) == (
        "protocol",
        "headers larger than 65536 bytes",
    )
    assert elapsed < 2.0


# --- 2. compression bombs and broken gzip --------------------------------------------------------

BOMB_CAP = 1_000_000
ENCODINGS = ["gzip", "deflate", "br", "zstd"]


@pytest.mark.parametrize("client", CLIENTS)
def test_both_fetchers_ask_for_the_codings_they_decode(client, httpserver):
    httpserver.expect_request("/").respond_with_data("<p>hi", content_type="text/html")
    fetch_with(client, httpserver.url_for("/"))
    (request, _), *_ = httpserver.log
    assert request.headers["Accept-Encoding"] == ACCEPT_ENCODING == "gzip, deflate, br, zstd"


def compress(encoding: str, data: bytes) -> bytes:
    import zlib

    return {
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "br": brotli.compress,
        "zstd": zstd.compress,
    }[encoding](data)


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_compressed_page_is_decoded(client, encoding, httpserver):
    page = b"<title>Squeezed</title>" + b"<p>words " * 10_000
    httpserver.expect_request("/").respond_with_data(
        compress(encoding, page), content_type="text/html", headers={"Content-Encoding": encoding}
    )
    result = fetch_with(client, httpserver.url_for("/"))
    assert (result.status, result.error_kind, result.body_bytes) == (200, None, len(page))
    assert result.page.title == "Squeezed"


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_compression_bomb_stops_just_past_the_cap(client, encoding):
    """The 11.5 MB bombs of the conformance folder: decoded a bounded step at a time, the
    fetch stops once the decoded size passes the cap. body_bytes is how much was decoded at
    the abort, and tracemalloc shows nothing near the whole 11.5 MB was ever held. (Served
    raw: tracemalloc sees every thread, and werkzeug's allocates 10 MB per request.)"""
    bomb = (COMPRESSION / f"bomb-{encoding}.bin").read_bytes()
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: %s\r\n"
        b"Content-Length: %d\r\n\r\n" % (encoding.encode(), len(bomb))
    ) + bomb
    policy = FetchPolicy(
        connect_timeout=2.0, read_timeout=2.0, deadline=5.0, max_body_bytes=BOMB_CAP
    )
    with RawServer(answer_with(response)) as server:
        fetch_with(client, server.url, policy)  # imports and first-use caches out of the measure
        tracemalloc.start()
        try:
            result = fetch_with(client, server.url, policy)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert (result.status, result.error_kind, result.page) == (200, "too_large", None)
    assert result.error_message == f"body larger than {BOMB_CAP} bytes"
    assert BOMB_CAP < result.body_bytes < 1_100_000
    assert peak < 3_000_000, f"{peak:,} bytes held at the peak"


TRUNCATED = {"truncated-crc-error.gz": 25_542, "unexpected-eof.gz": 8_576}


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("name", TRUNCATED)
def test_a_gzip_stream_cut_short_keeps_the_partial_body(client, name, httpserver):
    """What we do: the HTTP body arrived whole, only its gzip stream ends early, so the page
    is what decoded (as Scrapy and browsers do), with no error; not a DECODE error."""
    httpserver.expect_request("/t").respond_with_data(
        (COMPRESSION / name).read_bytes(),
        content_type="text/html",
        headers={"Content-Encoding": "gzip"},
    )
    result = fetch_with(client, httpserver.url_for("/t"))
    assert (result.status, result.error_kind, result.body_bytes) == (200, None, TRUNCATED[name])
    assert result.page is not None


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_bytes_that_are_not_the_declared_coding_are_a_decode_error(client, encoding, httpserver):
    httpserver.expect_request("/bad").respond_with_data(
        b"<html><title>plain</title></html>" * 10,
        content_type="text/html",
        headers={"Content-Encoding": encoding},
    )
    result = fetch_with(client, httpserver.url_for("/bad"))
    assert (result.status, result.error_kind, result.page) == (200, "decode", None)
    assert result.error_message.startswith(f"not valid {encoding}: ")


# --- 3. redirect targets -------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    "location",
    ["ftp://example.com/f", "javascript:alert(1)", "data:text/html,<p>x", "file:///etc/passwd"],
    ids=["ftp", "javascript", "data", "file"],
)
def test_a_redirect_to_a_scheme_we_do_not_fetch_is_a_bad_redirect(client, location, httpserver):
    httpserver.expect_request("/r").respond_with_data(
        "", status=302, headers={"Location": location}
    )
    result = fetch_with(client, httpserver.url_for("/r"))
    assert (result.status, result.error_kind, result.location) == (302, "bad_redirect", None)


# --- 4. non-HTML bodies are not read -------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_a_large_non_html_body_is_left_unread_and_the_connection_closed(client):
    """50 MB of application/octet-stream: the fetch ends at the headers; the connection is
    closed under the server (its writes fail) rather than drained to the end."""
    size = 50 * 1024 * 1024
    block = b"\0" * 65536

    def stream(conn: socket.socket, outcome: dict) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % size
        )
        sent = 0
        try:
            while sent < size:
                sent += conn.send(block[: size - sent])
        except OSError as exc:
            outcome["error"] = exc
        outcome["sent"] = sent

    with RawServer(stream) as server:
        started = time.perf_counter()
        result = fetch_with(client, server.url)
        elapsed = time.perf_counter() - started
        deadline = time.monotonic() + 5
        while "sent" not in server.outcome and time.monotonic() < deadline:
            time.sleep(0.01)
    assert (result.status, result.error_kind, result.page) == (200, None, None)
    assert result.body_bytes == 0
    assert elapsed < 1.0
    assert isinstance(server.outcome.get("error"), ConnectionError), server.outcome
    assert server.outcome["sent"] < size / 2


# --- 5. Retry-After ------------------------------------------------------------------------------

NOW = 1_445_412_480.0  # Wed, 21 Oct 2015 07:28:00 GMT


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("Wed, 21 Oct 2015 07:30:00 GMT", 120.0),  # IMF-fixdate
        ("Wednesday, 21-Oct-15 07:29:00 GMT", 60.0),  # RFC 850, obsolete but allowed
        ("Wed Oct 21 07:29:00 2015", 60.0),  # asctime, likewise
        ("Wed, 21 Oct 2015 07:20:00 GMT", 0.0),  # in the past: no wait, not a negative one
        ("Wed, 21 Oct 2015 08:29:00 +0100", 60.0),  # not GMT as it should be, but clear
        ("86400000", 86_400_000.0),  # no ceiling here: the frontier has one
        (None, None),
        ("", None),
        ("-1", None),
        ("1.5", None),
        ("soon", None),
        ("Wed, 32 Oct 2015 07:29:00 GMT", None),
    ],
)
def test_retry_after_values(value, seconds):
    assert retry_after(value, NOW) == seconds


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [(429, "120", 120.0), (503, "date+30", 30.0), (503, "tomorrow", None), (200, None, None)],
)
def test_both_fetchers_report_retry_after(client, status, header, expected, httpserver):
    if header == "date+30":
        header = email.utils.formatdate(time.time() + 30, usegmt=True)
    headers = {"Retry-After": header} if header else {}
    httpserver.expect_request("/").respond_with_data(
        "<p>wait", status=status, content_type="text/html", headers=headers
    )
    result = fetch_with(client, httpserver.url_for("/"))
    assert result.status == status
    if expected is None:
        assert result.retry_after is None
    else:
        assert result.retry_after == pytest.approx(expected, abs=1.5)


# --- 6. the private-address guard ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("1.1.1.1", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),  # IPv4-mapped: judged as the IPv4 address
        ("10.0.0.1", False),
        ("10.255.255.255", False),
        ("172.16.0.1", False),
        ("172.31.255.254", False),
        ("172.32.0.1", True),  # just past 172.16/12
        ("192.168.1.1", False),
        ("127.0.0.1", False),
        ("127.45.6.7", False),
        ("::1", False),
        ("fe80::1", False),
        ("fe80::1%eth0", False),
        ("169.254.169.254", False),  # the cloud metadata service
        ("169.254.1.1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.1.2.3", False),
        ("::ffff:169.254.169.254", False),
        ("2002:7f00:1::", False),  # 6to4 around 127.0.0.1
        ("64:ff9b::a00:1", False),  # NAT64 around 10.0.0.1
        ("fc00::1", False),
        ("fd12:3456::1", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("100.127.255.254", False),
        ("0.0.0.0", False),
        ("::", False),
        ("224.0.0.1", False),
        ("ff02::1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("192.0.2.10", False),  # documentation
        ("2001:db8::1", False),
        ("not an address", False),
    ],
)
def test_is_public_address(address, public):
    assert is_public_address(address) is public


def test_address_allowed_only_checks_when_asked():
    assert address_allowed("127.0.0.1", block_private_addresses=False)
    assert not address_allowed("127.0.0.1", block_private_addresses=True)
    assert address_allowed("8.8.8.8", block_private_addresses=True)


GUARDED = FetchPolicy(
    connect_timeout=2.0, read_timeout=2.0, deadline=5.0, block_private_addresses=True
)


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_the_guard_refuses_a_loopback_peer_before_the_request(client, host, httpserver):
    """The name is resolved first and the address connected to is what is judged: localhost
    is refused as 127.0.0.1 is. The server never sees a request."""
    httpserver.expect_request("/").respond_with_data("<p>private", content_type="text/html")
    url = httpserver.url_for("/").replace("localhost", host)
    result = fetch_with(client, url, GUARDED)
    assert (result.status, result.error_kind) == (None, "forbidden_address")
    assert result.error_message.startswith("forbidden address ")
    assert "127.0.0.1" in result.error_message or "::1" in result.error_message
    assert httpserver.log == []


@pytest.mark.parametrize("client", CLIENTS)
def test_the_guard_sends_not_a_byte_to_a_refused_peer(client):
    with RawServer(answer_with(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")) as server:
        result = fetch_with(client, server.url, GUARDED)
        time.sleep(0.2)  # a connection the fetcher made (and closed) is accepted by now
    assert result.error_kind == "forbidden_address"
    assert result.error_message == "forbidden address 127.0.0.1: not a public address"
    assert server.received == b""


@pytest.mark.parametrize("client", CLIENTS)
def test_without_the_guard_a_loopback_peer_is_fetched(client, httpserver):
    httpserver.expect_request("/").respond_with_data(
        "<title>local</title>", content_type="text/html"
    )
    result = fetch_with(client, httpserver.url_for("/"))
    assert (result.status, result.error_kind, result.page.title) == (200, None, "local")
