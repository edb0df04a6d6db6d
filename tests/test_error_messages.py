"""Stored error messages are sentences a user can read: a server's values as text in plain
quotes, no Python reprs or class names, the same words under both fetchers."""

from __future__ import annotations

import re

import pytest

from crawler.model import FetchPolicy
from fixtures.faults import FAULTS
from tests.helpers import FixtureServer, backend_flags, cli, query
from tests.test_fetch import CLIENTS, fetch_with, raw_server

POLICY = FetchPolicy(connect_timeout=1.0, read_timeout=1.0, deadline=2.0, max_body_bytes=100_000)

# What a user must never read in a stored message: bytes or None reprs, "SomethingError: ...",
# private class names (_TimedHTTPConnectionPool), repr'd types.
PYTHON_INTERNALS = re.compile(r"b'|b\"|None|Error:|_[A-Z]|<class|object at 0x")

EXPECTED = {
    "redirect-no-location": "302 redirect without a Location header",
    "redirect-empty-location": "302 redirect with an empty Location header",
    "redirect-javascript": "302 redirect to an unusable Location: 'javascript:alert(1)'",
    "hang-before-headers": "no answer within 1 s",
    "hang-after-headers": "the body stalled: nothing arrived for 1 s",
    "empty-reply": "the server closed the connection before answering",
    "reset": "the server reset the connection before the body was complete",
    "short-body": "the body ended before its declared end (got 1024 of 4096 bytes)",
}


@pytest.fixture(scope="module")
def fault_server():
    with FixtureServer() as server:
        yield server.url.rstrip("/")


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("fault", sorted(EXPECTED))
def test_each_fault_reads_the_same_under_both_fetchers(client, fault, fault_server):
    result = fetch_with(client, fault_server + FAULTS[fault].path, POLICY)
    assert result.error_kind == FAULTS[fault].error_kind
    assert result.error_message == EXPECTED[fault]


@pytest.mark.parametrize("client", CLIENTS)
def test_a_refused_connection_names_the_address(client):
    result = fetch_with(client, "http://127.0.0.1:9/", POLICY)
    assert (result.error_kind, result.error_message) == (
        "connect",
        "connection refused by 127.0.0.1:9",
    )


@pytest.mark.parametrize("client", CLIENTS)
def test_a_redirect_location_that_is_not_utf8_is_shown_as_text(client):
    listener, url = raw_server(
        b"HTTP/1.1 301 Moved\r\nLocation: javascript:\xe9\r\nContent-Length: 0\r\n\r\n"
    )
    try:
        result = fetch_with(client, url, POLICY)
    finally:
        listener.close()
    assert result.error_kind == "bad_redirect"
    assert result.error_message == "301 redirect to an unusable Location: 'javascript:\ufffd'"


@pytest.mark.parametrize("backend", ["threads", "asyncio"])  # requests, then aiohttp
def test_no_stored_message_carries_python_internals(backend, fault_server, httpserver, tmp_path):
    faults = [*EXPECTED, "chunked-truncated", "redirect-ftp", "bad-gzip"]
    links = [f'<a href="{fault_server}{FAULTS[f].path}">{f}</a>' for f in faults]
    links.append('<a href="http://127.0.0.1:9/refused">refused</a>')
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/").respond_with_data("".join(links), content_type="text/html")
    db_url = f"sqlite:///{tmp_path / 'messages.db'}"
    crawl = cli(
        "crawl",
        httpserver.url_for("/"),
        *backend_flags(backend, 8),
        *("--timeout", "2", "--max-attempts", "1", "--ignore-robots"),
        *("--allow-host", "127.0.0.1", "--json", "--db", db_url),
        timeout=300,
    )
    assert crawl.returncode == 0, crawl.stderr
    stored = query(db_url, "SELECT url, error_kind, error_message FROM fetches")
    messages = {url: message for url, kind, message in stored if kind is not None}
    assert len(messages) >= len(faults) + 1, stored  # every fault and the refused port failed
    for url, message in messages.items():
        assert message and not PYTHON_INTERNALS.search(message), (url, message)
    assert messages["http://127.0.0.1:9/refused"] == "connection refused by 127.0.0.1:9"
