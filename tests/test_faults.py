"""The fault catalogue (fixtures/faults.py) does what FAULTS and the README say, seen from a
plain client: http.client where HTTP framing holds, raw sockets where it must not."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import gzip
import http.client
import itertools
import logging
import re
import socket
import threading
import time
import tracemalloc
import typing
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from crawler.fetch.errors import ErrorKind
from fixtures.faults import (
    BOMB_FILES,
    DEEP_NESTING,
    DEFAULT_BOMB_DIR,
    FAULTS,
    HUGE_BODY_BYTES,
    SCHEME_REDIRECTS,
    TRUNCATED_GZIP,
    ErrorKindName,
    Fault,
    add_fault_routes,
)

ROOT = Path(__file__).resolve().parents[1]
BOMBS = ROOT.parent / "shared/conformance/compression"
CAP = 5 * 1024 * 1024  # the crawler's default body cap (FetchPolicy.max_body_bytes)

EXPECTED_STATUS: dict[str, int] = {
    "status-404": 404,
    "status-410": 410,
    "status-500": 500,
    "503-burst": 503,
    "429-seconds": 429,
    "429-date": 429,
    "redirect-chain": 302,
    "redirect-chain-long": 302,
    "redirect-loop": 302,
    "redirect-other-host": 301,
    "redirect-ftp": 302,
    "redirect-mailto": 302,
    "redirect-javascript": 302,
    "redirect-file": 302,
    "redirect-no-location": 302,
    "redirect-empty-location": 302,
    "gzip-truncated-crc-error": 200,
    "gzip-truncated-unexpected-eof": 200,
    "charset-header-lies": 200,
    "charset-missing": 200,
    "charset-bogus": 200,
    "type-pdf": 200,
    "type-json": 200,
    "type-png": 200,
    "type-octet-stream": 200,
    "type-html-as-text": 200,
    "html-unclosed": 200,
    "html-deep": 200,
    "html-nul": 200,
    "trap-calendar": 200,
    "trap-deeper": 200,
    "trap-session": 200,
}
"""Hand-written: the status of the first answer for every fault that answers at all."""


# --- a server in a background thread ------------------------------------------------------


@dataclass
class Server:
    port: int
    access: list[tuple[str, int]] = field(default_factory=list)
    problems: list[logging.LogRecord] = field(default_factory=list)

    def connection(self, timeout: float = 5) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(self, path: str, timeout: float = 5) -> tuple[http.client.HTTPResponse, bytes]:
        """One complete exchange; raises if the body does not arrive whole within timeout."""
        conn = self.connection(timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response, response.read()
        finally:
            conn.close()

    def send(self, path: str, timeout: float, *, close: bool = False) -> socket.socket:
        """A raw GET; ``close`` asks for ``Connection: close`` so a normal answer ends in EOF."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        extra = "Connection: close\r\n" if close else ""
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n{extra}\r\n"
        sock.sendall(request.encode())
        return sock


class _Problems(logging.Handler):
    def __init__(self, sink: list[logging.LogRecord]) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record)


@contextlib.contextmanager
def serve(**options: typing.Any) -> Iterator[Server]:
    """Run add_fault_routes on a free port, in a thread with its own loop; record the access
    log (path, status) and any warning or error aiohttp or asyncio logs."""
    access: list[tuple[str, int]] = []

    class Recorder(AbstractAccessLogger):
        def log(self, request: web.BaseRequest, response: web.StreamResponse, t: float) -> None:
            access.append((request.path_qs, response.status))

    app = web.Application()
    add_fault_routes(app, **options)
    runner = web.AppRunner(app, access_log_class=Recorder)

    async def start() -> int:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return int(runner.addresses[0][1])

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="faults-server", daemon=True)
    thread.start()
    server = Server(asyncio.run_coroutine_threadsafe(start(), loop).result(10), access)
    handler = _Problems(server.problems)
    loggers = [logging.getLogger("aiohttp"), logging.getLogger("asyncio")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield server
    finally:
        try:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
            for logger in loggers:
                logger.removeHandler(handler)


@pytest.fixture
def server() -> Iterator[Server]:
    """A fresh server per test, so counters (the 503 burst) start at zero."""
    with serve() as running:
        yield running
    assert not running.problems, [r.getMessage() for r in running.problems]


# --- raw-socket helpers --------------------------------------------------------------------


def read_raw(
    sock: socket.socket, limit: int = 1 << 20, until: bytes | None = None
) -> tuple[bytes, str]:
    """Read until EOF, reset, a quiet socket, ``limit`` bytes or ``until``; say which."""
    data = b""
    with sock:
        while len(data) < limit:
            if until is not None and until in data:
                return data, "until"
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return data, "reset"
            except TimeoutError:
                return data, "timeout"
            if not chunk:
                return data, "eof"
            data += chunk
    return data, "limit"


def split_head(data: bytes) -> tuple[str, dict[str, str], bytes]:
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, f"no complete header block in {data[:200]!r}"
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status_line, headers, body


class LinkParser(HTMLParser):
    """The stdlib parser as a stand-in for a crawler's: collects <a href> values."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links += [value for name, value in attrs if name == "href" and value]


def links_of(body: bytes, encoding: str = "utf-8") -> list[str]:
    parser = LinkParser()
    parser.feed(body.decode(encoding, "replace"))
    parser.close()
    return parser.links


def title_of(body: bytes) -> str | None:
    found = re.findall(rb"<title>(.*?)</title>", body, re.S)
    assert len(found) <= 1, found
    return found[0].decode("latin-1") if found else None


# --- the table itself -----------------------------------------------------------------------


def test_fault_table_is_consistent() -> None:
    allowed = set(typing.get_args(ErrorKindName))
    assert allowed <= {kind.value for kind in ErrorKind}, "a kind the crawler does not know"
    assert len({f.path for f in FAULTS.values()}) == len(FAULTS)
    for key, fault in FAULTS.items():
        assert isinstance(fault, Fault) and key == fault.kind
        assert fault.error_kind is None or fault.error_kind in allowed
        assert fault.path.startswith(("/fault/", "/trap/"))
        assert fault.what and fault.crawler_should
        if fault.path.startswith("/trap/"):
            assert not fault.mixable and fault.error_kind is None
        if fault.error_kind == "deadline":  # fails only at the 30 s deadline
            assert not fault.mixable
    with pytest.raises(AttributeError):
        FAULTS["reset"].mixable = False  # type: ignore[misc]
    answering = {k for k, f in FAULTS.items() if f.error_kind in (None, "bad_redirect")}
    answering.add("redirect-chain-long")
    assert set(EXPECTED_STATUS) == answering


def test_readme_lists_every_fault_with_its_error_kind() -> None:
    text = (ROOT / "fixtures/README.md").read_text(encoding="utf-8")
    section = text.split("## Faults and traps", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| `/")]
    assert len(rows) == len(FAULTS)
    for fault in FAULTS.values():
        row = next((r for r in rows if r.startswith(f"| `{fault.path}` |")), None)
        assert row is not None, f"{fault.path} is not in the README"
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        expected = f"`{fault.error_kind}`" if fault.error_kind else "–"
        assert cells[-2:] == [expected, "yes" if fault.mixable else "no"], (fault.path, cells)


# --- every entry answers as documented ------------------------------------------------------


def _decoded_size(body: bytes, encoding: str) -> int | None:
    """Decode up to just past the cap; None when the stdlib has no decoder (br, zstd)."""
    wbits = {"gzip": 31, "deflate": 15}.get(encoding)
    if wbits is None:
        return None
    return len(zlib.decompressobj(wbits).decompress(body, CAP + 1))


@pytest.mark.parametrize("fault", FAULTS.values(), ids=list(FAULTS))
def test_fault_answers_as_documented(server: Server, fault: Fault) -> None:
    kind = fault.error_kind
    if kind in (None, "bad_redirect"):
        response, body = server.get(fault.path)  # whole, within 5 s
        assert response.status == EXPECTED_STATUS[fault.kind]
        length = response.getheader("Content-Length")
        assert length is not None and int(length) == len(body)
        if kind == "bad_redirect":
            location = response.getheader("Location")
            assert not location or urlsplit(location).scheme not in ("http", "https")
    elif kind == "too_many_redirects":
        path, hops = fault.path, 0
        while True:
            response, _ = server.get(path)
            if response.status not in (301, 302, 303, 307, 308):
                break
            path, hops = response.getheader("Location", ""), hops + 1
        assert hops > 5 and response.status == 200
    elif kind == "read_timeout":
        data, ended = read_raw(server.send(fault.path, timeout=1))
        assert ended == "timeout"
        if data:
            _, headers, body = split_head(data)
            assert int(headers["content-length"]) > len(body)
    elif kind == "deadline":
        sock = server.send(fault.path, timeout=2)
        arrivals: list[float] = []
        with sock:
            while len(arrivals) < 4:
                assert sock.recv(4096), "the trickle ended"
                arrivals.append(time.perf_counter())
        # headers, then body bytes at least 0.4 s apart: a read timeout never fires
        assert min(b - a for a, b in itertools.pairwise(arrivals[1:])) > 0.4
    elif kind == "too_large":
        conn = server.connection()
        with contextlib.closing(conn):
            conn.request("GET", fault.path)
            response = conn.getresponse()
            assert response.status == 200
            assert response.getheader("Content-Type", "").startswith("text/html")
            encoding = response.getheader("Content-Encoding")
            body = response.read(CAP + 1)  # raw bytes: http.client does not decode
            if encoding is None:
                assert len(body) > CAP
            else:
                assert encoding == fault.path.rsplit("/", 1)[1]
                assert body == (BOMBS / BOMB_FILES[encoding]).read_bytes()
                size = _decoded_size(body, encoding)
                assert size is None or size > CAP
    elif kind == "reset":
        data, ended = read_raw(server.send(fault.path, timeout=5))
        assert ended in ("reset", "eof")  # empty-reply is a clean close with nothing sent
        assert ended == "reset" or data == b""
    elif kind == "protocol":
        with pytest.raises(http.client.IncompleteRead):
            server.get(fault.path)
    elif kind == "decode":
        response, body = server.get(fault.path)
        assert response.getheader("Content-Encoding") == "gzip"
        with pytest.raises(gzip.BadGzipFile):
            gzip.decompress(body)
    else:
        pytest.fail(f"no check for error kind {kind!r}")


# --- status codes ----------------------------------------------------------------------------


@pytest.mark.parametrize("code", [200, 404, 410, 500, 503])
def test_status_pages(server: Server, code: int) -> None:
    response, body = server.get(f"/fault/status/{code}")
    assert response.status == code
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert title_of(body) == f"Fault: status {code}"


def test_status_edge_cases(server: Server) -> None:
    response, body = server.get("/fault/status/204")
    assert (response.status, body) == (204, b"")
    for path in ("/fault/status/100", "/fault/status/600", "/fault/status/2000"):
        assert server.get(path)[0].status == 404, path


def test_503_burst_counts_per_url(server: Server) -> None:
    statuses = [server.get("/fault/503-burst/2/k")[0].status for _ in range(4)]
    assert statuses == [503, 503, 200, 200]
    assert server.get("/fault/503-burst/2/other")[0].status == 503  # its own count
    assert server.get("/fault/503-burst/1/k")[0].status == 503  # another n, another URL
    response, body = server.get("/fault/503-burst/0/zero")
    assert response.status == 200 and b'href="/fault/status/200"' in body


def test_429_retry_after_in_seconds(server: Server) -> None:
    assert server.get("/fault/429/seconds")[0].getheader("Retry-After") == "5"
    assert server.get("/fault/429/seconds?after=17")[0].getheader("Retry-After") == "17"
    assert server.get("/fault/429/seconds?after=-1")[0].status == 400


def test_429_retry_after_as_a_date(server: Server) -> None:
    before = time.time()
    value = server.get("/fault/429/date")[0].getheader("Retry-After", "")
    assert value.endswith(" GMT")
    when = email.utils.parsedate_to_datetime(value).timestamp()
    assert before + 3 <= when <= time.time() + 6


# --- redirects -------------------------------------------------------------------------------


def test_redirect_chain_ends_on_a_page(server: Server) -> None:
    path, seen = "/fault/redirect-chain/3", []
    for _ in range(10):
        response, body = server.get(path)
        seen.append((path, response.status))
        if response.status != 302:
            break
        path = response.getheader("Location", "")
    assert seen == [(f"/fault/redirect-chain/{n}", 302 if n else 200) for n in (3, 2, 1, 0)]
    assert title_of(body) == "Fault: end of the redirect chain"
    assert server.get("/fault/redirect-chain/1001")[0].status == 404


def test_redirect_loop(server: Server) -> None:
    a, _ = server.get("/fault/redirect-loop/a")
    b, _ = server.get(a.getheader("Location", ""))
    assert (a.getheader("Location"), b.getheader("Location")) == (
        "/fault/redirect-loop/b",
        "/fault/redirect-loop/a",
    )
    assert server.get("/fault/redirect-loop/c")[0].status == 404


def test_redirect_to_the_configured_other_host() -> None:
    with serve(other_host="http://elsewhere.test:8080/") as running:
        response, _ = running.get("/fault/redirect-other-host")
    assert response.status == 301
    assert response.getheader("Location") == "http://elsewhere.test:8080/page.html"


def test_default_other_host(server: Server) -> None:
    location = server.get("/fault/redirect-other-host")[0].getheader("Location")
    assert location == "http://other.invalid/page.html"


@pytest.mark.parametrize("scheme", sorted(SCHEME_REDIRECTS))
def test_redirects_to_other_schemes(server: Server, scheme: str) -> None:
    response, _ = server.get(f"/fault/redirect-scheme/{scheme}")
    assert response.status == 302
    location = response.getheader("Location", "")
    assert location == SCHEME_REDIRECTS[scheme] and location.startswith(f"{scheme}:")


def test_redirects_without_a_target(server: Server) -> None:
    missing, _ = server.get("/fault/redirect-no-location")
    assert missing.status == 302 and missing.getheader("Location") is None
    empty, _ = server.get("/fault/redirect-empty-location")
    assert empty.status == 302 and empty.getheader("Location") == ""


# --- connection level ------------------------------------------------------------------------


def _wait_for_access(server: Server, path: str, seconds: float = 2) -> int:
    """The status aiohttp logged once the handler for ``path`` finished."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for logged, status in server.access:
            if logged == path:
                return status
        time.sleep(0.02)
    raise AssertionError(f"the handler for {path} never finished")


def test_hang_before_headers_says_nothing_until_the_client_leaves(server: Server) -> None:
    data, ended = read_raw(server.send("/fault/hang/before-headers", timeout=1))
    assert (data, ended) == (b"", "timeout")
    # read_raw closed the socket: the handler notices and ends, answering nothing.
    assert _wait_for_access(server, "/fault/hang/before-headers") == 444


def test_hang_after_headers_sends_headers_then_nothing(server: Server) -> None:
    data, ended = read_raw(server.send("/fault/hang/after-headers", timeout=1))
    assert ended == "timeout"
    status_line, headers, body = split_head(data)
    assert status_line == "HTTP/1.1 200 OK"
    assert headers["content-length"] == "4096" and body == b""
    _wait_for_access(server, "/fault/hang/after-headers")


def test_trickle_sends_one_byte_per_interval(server: Server) -> None:
    conn = server.connection(timeout=1)
    with contextlib.closing(conn):
        conn.request("GET", "/fault/trickle?ms=50")
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("Content-Length") is None
        start = time.perf_counter()
        body = b"".join(response.read(1) for _ in range(12))
        elapsed = time.perf_counter() - start
    assert body == b"<!DOCTYPE ht"
    assert 0.45 <= elapsed < 3, elapsed  # 11 intervals of 50 ms after the first byte
    assert server.get("/fault/trickle?ms=0")[0].status == 400


def test_empty_reply_closes_without_a_byte(server: Server) -> None:
    assert read_raw(server.send("/fault/empty-reply", timeout=2)) == (b"", "eof")
    with pytest.raises(http.client.RemoteDisconnected):
        server.get("/fault/empty-reply")


def test_reset_is_a_tcp_reset_mid_body(server: Server) -> None:
    sock = server.send("/fault/reset", timeout=5)
    data = b""
    with sock, pytest.raises(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    status_line, headers, body = split_head(data)
    assert status_line == "HTTP/1.1 200 OK"
    assert headers["content-length"] == "4096" and len(body) == 1024
    assert title_of(body) == "Fault: reset mid-body"


def test_short_body_is_a_clean_close_before_content_length(server: Server) -> None:
    data, ended = read_raw(server.send("/fault/short-body", timeout=5))
    assert ended == "eof"  # FIN, not RST
    _, headers, body = split_head(data)
    assert headers["content-length"] == "4096" and len(body) == 1024


def test_chunked_body_is_truncated(server: Server) -> None:
    data, ended = read_raw(server.send("/fault/chunked-truncated", timeout=5))
    assert ended == "eof"
    _, headers, body = split_head(data)
    assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
    size_line, _, chunk = body.partition(b"\r\n")
    assert int(size_line, 16) == 4096 and len(chunk) == 1024
    assert not body.endswith(b"0\r\n\r\n")


def test_huge_body_is_100_mib_streamed_not_held(server: Server) -> None:
    conn = server.connection(timeout=10)
    tracemalloc.start()
    try:
        with contextlib.closing(conn):
            conn.request("GET", "/fault/huge")
            response = conn.getresponse()
            assert response.getheader("Content-Length") is None
            first = response.read(1 << 16)
            size, last = len(first), b""
            while chunk := response.read(1 << 20):
                size, last = size + len(chunk), chunk
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert size == HUGE_BODY_BYTES
    assert first.startswith(b"<!DOCTYPE html>") and title_of(first) == "Fault: huge body (100 MiB)"
    assert last.endswith(b"</body>\n</html>\n")
    assert peak < 16 * 1024 * 1024, f"peak {peak:,} B: the body was held in memory"


def test_huge_body_client_leaving_early_is_quiet(server: Server) -> None:
    _, ended = read_raw(server.send("/fault/huge", timeout=5), limit=1 << 20)
    assert ended == "limit"
    _wait_for_access(server, "/fault/huge")  # the handler ended; the fixture checks the logs


def test_shutdown_does_not_wait_for_endless_handlers() -> None:
    endless = ["/fault/hang/before-headers", "/fault/hang/after-headers", "/fault/trickle?ms=50"]
    with serve() as running:
        socks = [running.send(path, timeout=5) for path in endless]
        time.sleep(0.3)  # let every handler start
        start = time.perf_counter()
    assert time.perf_counter() - start < 3
    first, ended = read_raw(socks[0])
    assert (first, ended) == (b"", "eof")  # closed, not answered
    for sock in socks[1:]:
        assert read_raw(sock)[1] in ("eof", "reset")
    assert not running.problems


def test_raw_faults_log_nothing_and_leave_the_server_working(server: Server) -> None:
    for path in ["/fault/reset", "/fault/short-body", "/fault/chunked-truncated"] * 2:
        read_raw(server.send(path, timeout=5))
    read_raw(server.send("/fault/empty-reply", timeout=5))
    conn = server.connection()
    with contextlib.closing(conn):  # the same connection keeps working after a normal answer
        for _ in range(2):
            conn.request("GET", "/fault/status/200")
            assert conn.getresponse().read().startswith(b"<!DOCTYPE html>")
    assert {status for path, status in server.access if path != "/fault/status/200"} == {444}


# --- compression -----------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", sorted(BOMB_FILES))
def test_bombs_are_the_conformance_files(server: Server, encoding: str) -> None:
    response, body = server.get(f"/fault/bomb/{encoding}")
    assert response.status == 200
    assert response.getheader("Content-Encoding") == encoding
    assert response.getheader("Content-Type") == "text/html"
    assert body == (BOMBS / BOMB_FILES[encoding]).read_bytes()
    if encoding in ("gzip", "deflate"):
        decoder = zlib.decompressobj(31 if encoding == "gzip" else 15)
        head = decoder.decompress(body, 1_000_000)
        assert head.startswith(b"This is a compression bomb.") and decoder.unconsumed_tail


@pytest.mark.parametrize("name", sorted(TRUNCATED_GZIP))
def test_truncated_gzip(server: Server, name: str) -> None:
    file, content_type = TRUNCATED_GZIP[name]
    response, body = server.get(f"/fault/gzip-truncated/{name}")
    assert response.getheader("Content-Encoding") == "gzip"
    assert response.getheader("Content-Type") == content_type
    assert body == (BOMBS / file).read_bytes()
    decoder = zlib.decompressobj(31)
    partial = decoder.decompress(body) + decoder.flush()
    assert not decoder.eof  # the stream is cut short
    if name == "crc-error":
        assert partial.endswith(b"</html")
    else:
        expected = (BOMBS / "unexpected-eof-output.txt").read_text(encoding="utf-8")
        assert partial.decode("cp1252") == expected


def test_default_bomb_dir_is_the_shared_conformance_folder() -> None:
    assert BOMBS.resolve() == DEFAULT_BOMB_DIR.resolve()  # ../shared may be a symbolic link


def test_missing_bomb_file_is_a_404_naming_it(tmp_path: Path) -> None:
    (tmp_path / "bomb-br.bin").write_bytes(b"not really brotli")
    with serve(bomb_dir=tmp_path) as running:
        response, body = running.get("/fault/bomb/gzip")
        assert response.status == 404 and b"bomb-gzip.bin" in body
        response, body = running.get("/fault/gzip-truncated/crc-error")
        assert response.status == 404 and b"truncated-crc-error.gz" in body
        assert running.get("/fault/bomb/br")[1] == b"not really brotli"


def test_bad_gzip_is_plain_html_labelled_gzip(server: Server) -> None:
    response, body = server.get("/fault/bad-gzip")
    assert response.getheader("Content-Encoding") == "gzip"
    assert body.startswith(b"<!DOCTYPE html>")


# --- charsets, types, malformed HTML --------------------------------------------------------


def test_charset_header_lies(server: Server) -> None:
    response, body = server.get("/fault/charset/header-lies")
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    assert "<title>Fault: charset lie, Café crème</title>" in body.decode("latin-1")
    assert b"<meta" not in body


def test_charset_missing(server: Server) -> None:
    response, body = server.get("/fault/charset/missing")
    assert response.getheader("Content-Type") == "text/html"
    assert b"<meta" not in body and b"charset=" not in body.lower()
    assert not body.isascii()
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    assert "“Café” – 5 €" in body.decode("cp1252")


def test_charset_bogus(server: Server) -> None:
    response, body = server.get("/fault/charset/bogus")
    charset = response.getheader("Content-Type", "").split("charset=")[1]
    with pytest.raises(LookupError):
        "".encode(charset)
    assert "naïve" in body.decode("utf-8") and b"<meta" not in body


@pytest.mark.parametrize(
    ("name", "content_type", "magic"),
    [
        ("pdf", "application/pdf", b"%PDF-1."),
        ("json", "application/json", b"{"),
        ("png", "image/png", b"\x89PNG\r\n\x1a\n"),
        ("octet-stream", "application/octet-stream", b"\x00\x01\x02"),
        ("html-as-text", "text/plain; charset=utf-8", b"<!DOCTYPE html>"),
    ],
)
def test_non_html_types(server: Server, name: str, content_type: str, magic: bytes) -> None:
    response, body = server.get(f"/fault/type/{name}")
    assert response.status == 200 and response.getheader("Content-Type") == content_type
    assert body.startswith(magic) and len(body) < 1024
    if name == "pdf":
        assert body.rstrip().endswith(b"%%EOF") and b"startxref" in body
    if name == "png":
        assert zlib.crc32(body[12:29]) == int.from_bytes(body[29:33], "big")  # IHDR CRC


@pytest.mark.parametrize(
    ("name", "links"),
    [
        ("unclosed", ["/fault/status/200", "/fault/status/404", "/fault/html/deep"]),
        ("deep", ["/fault/status/200", "/fault/status/404", "/fault/html/nul"]),
        ("nul", ["/fault/status/200", "/fault/status/404"]),
    ],
)
def test_malformed_html_still_has_links(server: Server, name: str, links: list[str]) -> None:
    response, body = server.get(f"/fault/html/{name}")
    assert response.getheader("Content-Type", "").startswith("text/html")
    found = links_of(body)
    assert all(link in found for link in links), found
    if name == "deep":
        assert body.count(b"<div>") == DEEP_NESTING == body.count(b"</div>")
    if name == "nul":
        assert body.count(b"\x00") >= 4
    if name == "unclosed":
        assert body.count(b"<a ") > body.count(b"</a>") and b"</html>" not in body


# --- spider traps ----------------------------------------------------------------------------


def test_calendar_trap_goes_on_forever(server: Server) -> None:
    for path, expected in [
        ("/trap/calendar/2024/12", ["/trap/calendar/2024/11", "/trap/calendar/2025/1"]),
        ("/trap/calendar/2024/1", ["/trap/calendar/2023/12", "/trap/calendar/2024/2"]),
        ("/trap/calendar/999999/12", ["/trap/calendar/999999/11", "/trap/calendar/1000000/1"]),
        ("/trap/calendar/1/1", ["/trap/calendar/1/2"]),
    ]:
        response, body = server.get(path)
        assert response.status == 200 and links_of(body) == expected, path
    for path in ("/trap/calendar/2024/01", "/trap/calendar/2024/13", "/trap/calendar/0/5"):
        assert server.get(path)[0].status == 404, path


def test_deeper_trap_links_one_level_down(server: Server) -> None:
    path = "/trap/deeper/"
    for level in range(6):
        response, body = server.get(path)
        assert response.status == 200 and title_of(body) == f"Trap: deeper, level {level}"
        (link,) = links_of(body)
        path = urljoin(path, link)
    assert path == "/trap/deeper/" + "a/" * 6
    assert server.get("/trap/deeper/b/")[0].status == 404


def test_session_trap_hands_out_fresh_ids(server: Server) -> None:
    path, seen = "/trap/session/0123456789abcdef/", set()
    for _ in range(4):
        _, body = server.get(path)
        (link,) = links_of(body)
        assert re.fullmatch(r"/trap/session/[0-9a-f]{16}/", link) and link not in seen
        seen.add(path)
        path = link
    _, again = server.get("/trap/session/0123456789abcdef/")
    assert links_of(again)[0] not in seen


# --- titles ----------------------------------------------------------------------------------


def _trickled(server: Server, path: str) -> bytes:
    """Read a trickle (one byte per chunk) up to its title."""
    conn = server.connection(timeout=2)
    with contextlib.closing(conn):
        conn.request("GET", path)
        response, body = conn.getresponse(), b""
        while b"</title>" not in body and len(body) < 200:
            body += response.read(1)
    return body


def test_every_generated_page_has_its_own_title(server: Server) -> None:
    paths = [f.path for f in FAULTS.values() if f.error_kind not in ("read_timeout", "deadline")]
    paths += ["/fault/status/200", "/fault/trickle?ms=1", "/fault/redirect-loop/b"]
    paths += [f"/fault/redirect-chain/{n}" for n in (0, 1, 2)]
    paths += ["/fault/503-burst/1/t", "/fault/503-burst/1/t"]  # 503 then 200: two pages
    paths += ["/trap/calendar/2024/2", "/trap/deeper/", "/trap/session/fedcba9876543210/"]
    titles: dict[str, str] = {}
    for number, path in enumerate(paths):
        if path.startswith("/fault/trickle"):  # one byte per chunk: read it decoded
            headers, body = {"content-type": "text/html"}, _trickled(server, path)
        else:
            sock = server.send(path, timeout=2, close=True)
            data, _ = read_raw(sock, limit=1 << 17, until=b"</title>")
            if not data:  # the empty reply
                continue
            _, headers, body = split_head(data)
        html = headers.get("content-type", "").startswith("text/html")
        if not html or "content-encoding" in headers:
            continue
        title = title_of(body)
        assert title, f"{path} has no <title>"
        titles[f"{number} {path}"] = title
    assert len(titles) >= 35
    assert len(set(titles.values())) == len(titles), sorted(titles.values())
