"""The requests fetcher against a real local server: redirects, caps, timeouts, errors."""

from __future__ import annotations

import time

import pytest
from werkzeug import Response

from crawler.fetch.sync import fetch, make_session
from crawler.model import FetchPolicy, FetchTask

POLICY = FetchPolicy(connect_timeout=1.0, read_timeout=1.0, deadline=2.0, max_body_bytes=100_000)


def task(url: str) -> FetchTask:
    return FetchTask(1, url, 0, "token", 1, 0, time.time())


@pytest.fixture
def get():
    session = make_session(POLICY)
    yield lambda url, policy=POLICY: fetch(session, task(url), policy)
    session.close()


def test_html_page_is_parsed_and_timed(httpserver, get):
    httpserver.expect_request("/").respond_with_data(
        '<title>T</title><a href="/x">x</a>', content_type="text/html"
    )
    result = get(httpserver.url_for("/"))
    assert (result.status, result.error_kind, result.page.title) == (200, None, "T")
    assert result.page.links[0].url == httpserver.url_for("/x")
    t = result.timings
    assert t.connect > 0 and t.first_byte > 0 and t.download >= 0 and t.parse > 0
    assert t.total >= t.first_byte


def test_redirect_is_not_followed_but_resolved(httpserver, get):
    httpserver.expect_request("/old").respond_with_data(
        "", status=301, headers={"Location": "../new#frag"}
    )
    result = get(httpserver.url_for("/old"))
    assert result.status == 301
    assert result.location == httpserver.url_for("/new")
    assert result.page is None and result.error_kind is None


def test_redirect_to_a_non_http_scheme_is_a_bad_redirect(httpserver, get):
    httpserver.expect_request("/r").respond_with_data(
        "", status=302, headers={"Location": "ftp://example.com/"}
    )
    result = get(httpserver.url_for("/r"))
    assert (result.status, result.error_kind, result.location) == (302, "bad_redirect", None)


def test_body_over_the_cap_is_an_error(httpserver, get):
    httpserver.expect_request("/big").respond_with_data(
        "<p>" + "x" * 200_000, content_type="text/html"
    )
    result = get(httpserver.url_for("/big"))
    assert result.error_kind == "too_large"
    assert result.page is None


def test_non_html_body_is_not_downloaded(httpserver, get):
    httpserver.expect_request("/f.pdf").respond_with_data(
        b"%PDF" * 1000, content_type="application/pdf"
    )
    result = get(httpserver.url_for("/f.pdf"))
    assert (result.status, result.body_bytes, result.page) == (200, 0, None)


def test_error_status_is_data(httpserver, get):
    httpserver.expect_request("/gone").respond_with_data(
        "<p>no", status=404, content_type="text/html"
    )
    result = get(httpserver.url_for("/gone"))
    assert (result.status, result.error_kind, result.page) == (404, None, None)
    assert result.is_error


def test_server_that_does_not_answer_times_out(httpserver, get):
    def slow(_request):
        time.sleep(2.5)
        return Response("late", content_type="text/html")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    started = time.perf_counter()
    result = get(httpserver.url_for("/slow"))
    assert result.error_kind == "read_timeout"
    assert time.perf_counter() - started < 2.0


def test_trickling_body_hits_the_total_deadline(httpserver, get):
    def trickle(_request):
        def body():
            yield b"<html>"
            for _ in range(40):
                time.sleep(0.1)
                yield b"x"

        return Response(body(), content_type="text/html")

    httpserver.expect_request("/trickle").respond_with_handler(trickle)
    started = time.perf_counter()
    result = get(httpserver.url_for("/trickle"))
    elapsed = time.perf_counter() - started
    assert result.error_kind == "deadline"
    assert elapsed < POLICY.deadline + POLICY.read_timeout


def test_refused_connection():
    session = make_session(POLICY)
    result = fetch(session, task("http://127.0.0.1:9/"), POLICY)
    assert (result.status, result.error_kind) == (None, "connect")


def test_headers_trickled_slower_than_the_deadline_are_cut_off():
    """A server sending one header byte every 0.4 s never trips the 1 s read timeout; the
    total deadline still ends the exchange."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        for byte in b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Slow: " + b"a" * 100:
            if stop.is_set():
                break
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.4)
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    session = make_session(POLICY)
    started = time.perf_counter()
    result = fetch(session, task(f"http://127.0.0.1:{listener.getsockname()[1]}/"), POLICY)
    elapsed = time.perf_counter() - started
    stop.set()
    listener.close()
    assert result.error_kind == "deadline", result
    assert elapsed < POLICY.deadline + 0.5


def test_a_header_value_requests_cannot_send_is_an_error_row(httpserver):
    policy = FetchPolicy(user_agent="crawler \u20ac")
    httpserver.expect_request("/").respond_with_data("ok")
    result = fetch(make_session(policy), task(httpserver.url_for("/")), policy)
    assert result.error_kind == "bad_request"


def fetch_with(client: str, url: str, policy: FetchPolicy = POLICY):
    """One fetch with the requests fetcher or the aiohttp one, for parity tests."""
    if client == "requests":
        return fetch(make_session(policy), task(url), policy)
    import asyncio

    from crawler.fetch import aio

    async def one():
        async with aio.make_session(policy, 4) as session:
            return await aio.fetch(session, task(url), policy, "test")

    return asyncio.run(one())


def raw_server(response: bytes, hold: float = 0.0):
    """A server that answers every connection with these exact bytes (then holds it open)."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.sendall(response)
            time.sleep(hold)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener, f"http://127.0.0.1:{listener.getsockname()[1]}/x"


CLIENTS = ["requests", "aiohttp"]


@pytest.mark.parametrize("client", CLIENTS)
def test_both_fetchers_call_a_silent_server_a_read_timeout(client):
    listener, url = raw_server(b"", hold=3)
    try:
        assert fetch_with(client, url).error_kind == "read_timeout"
    finally:
        listener.close()


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    ("location", "expected"),
    [(b"/caf\xc3\xa9", "/caf%C3%A9"), (b"/caf\xe9", "/caf%E9")],
    ids=["utf-8", "latin-1"],
)
def test_both_fetchers_read_a_non_ascii_location_alike(client, location, expected):
    response = b"HTTP/1.1 301 Moved\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n"
    listener, url = raw_server(response)
    try:
        result = fetch_with(client, url)
    finally:
        listener.close()
    assert (result.status, result.error_kind) == (301, None)
    assert result.location == url.rsplit("/", 1)[0] + expected


@pytest.mark.parametrize("client", CLIENTS)
def test_both_fetchers_call_a_bad_status_line_a_protocol_error(client):
    listener, url = raw_server(b"HTTP/1.1 abc nonsense\r\n\r\n")
    try:
        assert fetch_with(client, url).error_kind == "protocol"
    finally:
        listener.close()
