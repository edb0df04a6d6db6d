"""Retries, back-off, Retry-After and the per-host circuit breaker, on all three frontends,
against real servers on loopback."""

from __future__ import annotations

import signal
import socket
import sqlite3
import time
from collections.abc import Callable

import pytest
from werkzeug import Response

from tests.helpers import BACKENDS, backend_flags, cli, last_json, query, start_crawler

FAST = ["--retry-backoff", "0.05"]


def crawl(seed: str, db_url: str, *flags: str) -> dict:
    result = cli("crawl", seed, *flags, "--json", "--db", db_url, timeout=300)
    assert result.returncode == 0, result.stderr
    return last_json(result.stdout)


def attempts(db_url: str, path: str) -> list[tuple]:
    return query(
        db_url,
        "SELECT attempt, status, error_kind FROM fetches WHERE url LIKE ? ORDER BY attempt",
        f"%{path}",
    )


def state_of(db_url: str, path: str) -> str:
    return query(db_url, "SELECT state FROM frontier WHERE url LIKE ?", f"%{path}")[0][0]


def flaky(failures: int, status: int = 503, headers: dict | Callable[[], dict] | None = None):
    """A handler failing `failures` times with `status`, then answering a page. `headers` may
    be a function, called when the answer is sent (for a date written then, as servers do)."""
    calls = {"n": 0, "at": []}

    def handler(request):
        calls["n"] += 1
        calls["at"].append(time.monotonic())
        if calls["n"] <= failures:
            sent = headers() if callable(headers) else headers or {}
            return Response("busy", status=status, headers=sent)
        return Response("<title>ok</title>", content_type="text/html")

    return handler, calls


def serve_linked(httpserver, path: str, handler) -> None:
    """A seed page linking to `path`, which `handler` answers."""
    httpserver.expect_request("/").respond_with_data(
        f'<a href="{path}">x</a>', content_type="text/html"
    )
    httpserver.expect_request(path).respond_with_handler(handler)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_503_is_tried_again_and_every_attempt_is_stored(httpserver, db_url, backend):
    handler, _ = flaky(2)
    serve_linked(httpserver, "/flaky", handler)
    summary = crawl(httpserver.url_for("/"), db_url, *backend_flags(backend), *FAST)
    assert attempts(db_url, "/flaky") == [(1, 503, None), (2, 503, None), (3, 200, None)]
    assert state_of(db_url, "/flaky") == "done"
    assert summary["pages"] == 2


@pytest.mark.parametrize("status", [500, 502, 408, 429])
def test_each_transient_status_is_retried(httpserver, db_url, status):
    handler, _ = flaky(1, status)
    httpserver.expect_request("/").respond_with_handler(handler)
    crawl(httpserver.url_for("/"), db_url, *FAST)
    assert [row[1] for row in attempts(db_url, "/")] == [status, 200]


@pytest.mark.parametrize("status", [404, 403, 410, 400])
def test_a_client_error_is_not_retried(httpserver, db_url, status):
    httpserver.expect_request("/").respond_with_data("no", status=status)
    crawl(httpserver.url_for("/"), db_url, *FAST)
    assert [row[1] for row in attempts(db_url, "/")] == [status]
    assert state_of(db_url, "/") == "done"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_url_that_keeps_failing_is_marked_failed(httpserver, db_url, backend):
    handler, calls = flaky(100)
    serve_linked(httpserver, "/down", handler)
    crawl(httpserver.url_for("/"), db_url, *backend_flags(backend), *FAST, "--max-attempts", "4")
    assert [row[0] for row in attempts(db_url, "/down")] == [1, 2, 3, 4]
    assert calls["n"] == 4
    assert state_of(db_url, "/down") == "failed"


def test_back_off_grows_between_attempts(httpserver, db_url):
    handler, calls = flaky(3)
    httpserver.expect_request("/").respond_with_handler(handler)
    crawl(httpserver.url_for("/"), db_url, "--retry-backoff", "0.4", "--max-attempts", "4")
    gaps = [b - a for a, b in zip(calls["at"], calls["at"][1:], strict=False)]
    # 0.4, 0.8, 1.6 s, each with jitter between half and all of it
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4 and gaps[2] >= 0.8
    assert sum(gaps) < 2.8 + 2.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_retry_after_seconds_is_honoured(httpserver, db_url, backend):
    handler, calls = flaky(1, 429, {"Retry-After": "2"})
    httpserver.expect_request("/").respond_with_handler(handler)
    crawl(httpserver.url_for("/"), db_url, *backend_flags(backend), *FAST)
    assert calls["n"] == 2
    assert calls["at"][1] - calls["at"][0] >= 2.0 - 0.05


def test_retry_after_as_an_http_date_is_honoured(httpserver, db_url):
    from email.utils import formatdate

    handler, calls = flaky(
        1, 503, lambda: {"Retry-After": formatdate(time.time() + 3, usegmt=True)}
    )
    httpserver.expect_request("/").respond_with_handler(handler)
    crawl(httpserver.url_for("/"), db_url, *FAST)
    assert calls["n"] == 2
    assert calls["at"][1] - calls["at"][0] >= 1.9  # an HTTP date has whole seconds


def test_retry_after_has_a_ceiling(httpserver, db_url):
    handler, calls = flaky(1, 503, {"Retry-After": "86400"})
    httpserver.expect_request("/").respond_with_handler(handler)
    started = time.monotonic()
    crawl(httpserver.url_for("/"), db_url, *FAST, "--max-retry-after", "1")
    assert calls["n"] == 2 and time.monotonic() - started < 30


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_dead_host_opens_the_breaker_and_its_urls_are_skipped(httpserver, db_url, backend):
    with socket.socket() as spare:
        spare.bind(("127.0.0.2", 0))
        dead_port = spare.getsockname()[1]  # closed again: connections are refused
    links = "".join(f'<a href="http://127.0.0.2:{dead_port}/{n}">{n}</a>' for n in range(200))
    httpserver.expect_request("/").respond_with_data(links, content_type="text/html")
    summary = crawl(
        httpserver.url_for("/"),
        db_url,
        *backend_flags(backend, 4),
        *FAST,
        "--allow-host",
        "127.0.0.2",
        "--breaker-threshold",
        "3",
        "--breaker-cooldown",
        "0.2",
        "--ignore-robots",
    )
    dead = query(
        db_url, "SELECT count(*) FROM fetches WHERE url LIKE ?", f"http://127.0.0.2:{dead_port}/%"
    )[0][0]
    skipped = query(
        db_url,
        "SELECT count(*), min(skip_reason) FROM frontier WHERE state = 'skipped'",
    )[0]
    assert dead < 100  # not 200 URLs x 3 attempts: the breaker stopped asking
    assert skipped[0] > 100 and skipped[1].startswith("host failing")
    assert summary["state"] == "finished"


@pytest.mark.serial
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_url_waiting_out_a_long_back_off_does_not_hold_back_its_host(httpserver, db_url, backend):
    """/slow answers 500 with Retry-After: 60, so it waits a minute for its retry; the host's
    other URLs, two and three levels deeper than /slow, are all stored long before that."""
    chain = {"/": ["/slow", "/a"], "/a": ["/a/b"], "/a/b": ["/a/b/c"], "/a/b/c": ["/a/b/c/d"]}
    for path, links in chain.items():
        body = "".join(f'<a href="{link}">{link}</a>' for link in links)
        httpserver.expect_request(path).respond_with_data(body, content_type="text/html")
    httpserver.expect_request("/a/b/c/d").respond_with_data(
        "<title>d</title>", content_type="text/html"
    )
    httpserver.expect_request("/slow").respond_with_data(
        "busy", status=500, headers={"Retry-After": "60"}
    )
    started = time.monotonic()
    run = start_crawler("crawl", httpserver.url_for("/"), *backend_flags(backend), "--db", db_url)
    try:
        deadline = started + 30
        while not _stored(db_url, "/a/b/c/d"):
            assert time.monotonic() < deadline, "the deeper levels waited for /slow"
            time.sleep(0.05)
        waited = time.monotonic() - started
        assert state_of(db_url, "/slow") == "retry"
        depths = dict(query(db_url, "SELECT url, depth FROM frontier"))
    finally:
        run.send_signal(signal.SIGINT)
        run.wait(timeout=30)
    assert waited < 30  # long before /slow's minute is up
    assert depths[httpserver.url_for("/slow")] == 1
    assert depths[httpserver.url_for("/a/b/c")] == 3 and depths[httpserver.url_for("/a/b/c/d")] == 4


def _stored(db_url: str, path: str) -> bool:
    try:
        return bool(query(db_url, "SELECT 1 FROM pages WHERE url LIKE ?", f"%{path}"))
    except sqlite3.OperationalError:  # the schema is not there yet
        return False
