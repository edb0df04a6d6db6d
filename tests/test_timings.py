"""Timings are disjoint phases that add up to the total, with the same meaning under both
fetchers, through real servers on loopback and through `crawl` then `export`."""

from __future__ import annotations

import json
import time

import pytest
from werkzeug import Response

from crawler.fetch import aio, sync
from crawler.model import FetchPolicy, FetchResult, FetchTask
from tests.helpers import BACKENDS, TreeSite, backend_flags, cli
from tests.test_fetch import CLIENTS, fetch_with

POLICY = FetchPolicy(connect_timeout=2.0, read_timeout=2.0, deadline=4.0, max_body_bytes=100_000)
SLACK_S = 0.001  # the sum of the phases and the total may differ by this much


def phases(result: FetchResult) -> list[float | None]:
    t = result.timings
    return [t.connect, t.first_byte, t.download, t.parse]


def assert_adds_up(result: FetchResult) -> None:
    present = [p for p in phases(result) if p is not None]
    assert all(p >= 0 for p in present), result.timings
    assert result.timings.total >= 0
    assert sum(present) == pytest.approx(result.timings.total, abs=SLACK_S), result.timings


def task(url: str) -> FetchTask:
    return FetchTask(1, url, 0, "token", 1, 0, time.time())


@pytest.mark.parametrize("client", CLIENTS)
def test_a_page_has_four_phases_that_add_up_to_the_total(client, httpserver):
    httpserver.expect_request("/").respond_with_data(
        '<title>T</title><a href="/x">x</a>', content_type="text/html"
    )
    result = fetch_with(client, httpserver.url_for("/"), POLICY)
    assert (result.status, result.error_kind) == (200, None)
    assert all(p is not None for p in phases(result)), result.timings
    assert result.timings.connect > 0
    assert_adds_up(result)


@pytest.mark.parametrize("client", CLIENTS)
def test_a_server_that_waits_shows_in_first_byte_not_in_connect(client, httpserver):
    def slow(_request):
        time.sleep(0.3)
        return Response("<title>late</title>", content_type="text/html")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    result = fetch_with(client, httpserver.url_for("/slow"), POLICY)
    assert result.status == 200
    t = result.timings
    assert t.first_byte >= 0.25, t
    assert t.connect < 0.1, t
    assert t.total >= 0.3
    assert_adds_up(result)


@pytest.mark.parametrize("client", CLIENTS)
def test_a_reused_connection_has_no_connect_phase(client):
    with TreeSite(pages=3) as site:  # HTTP/1.1 with keep-alive: the pool reuses the socket
        urls = [site.url, f"{site.url}p/1.html"]
        if client == "requests":
            session = sync.make_session(POLICY)
            results = [sync.fetch(session, task(url), POLICY) for url in urls]
            session.close()
        else:
            import asyncio

            async def both() -> list[FetchResult]:
                async with aio.make_session(POLICY, 1) as session:
                    return [await aio.fetch(session, task(url), POLICY, "test") for url in urls]

            results = asyncio.run(both())
    first, second = results
    assert first.timings.connect > 0 and second.timings.connect == 0
    for result in results:
        assert result.status == 200
        assert_adds_up(result)


@pytest.mark.parametrize("client", CLIENTS)
def test_a_body_over_the_cap_ends_the_download_phase_where_it_stopped(client, httpserver):
    httpserver.expect_request("/big").respond_with_data(
        "<p>" + "x" * 200_000, content_type="text/html"
    )
    result = fetch_with(client, httpserver.url_for("/big"), POLICY)
    assert result.error_kind == "too_large"
    assert result.timings.download is not None and result.timings.parse is None
    assert_adds_up(result)


@pytest.mark.parametrize("client", CLIENTS)
def test_a_refused_connection_has_no_phases_only_a_total(client):
    started = time.perf_counter()
    result = fetch_with(client, "http://127.0.0.1:9/", POLICY)
    elapsed = time.perf_counter() - started
    assert result.error_kind == "connect"
    assert phases(result) == [None, None, None, None]
    assert 0 <= result.timings.total <= elapsed


@pytest.mark.parametrize("client", CLIENTS)
def test_a_silent_server_keeps_its_connect_time_and_the_time_until_the_timeout(client, httpserver):
    def silent(_request):
        time.sleep(1.5)
        return Response("late", content_type="text/html")

    httpserver.expect_request("/silent").respond_with_handler(silent)
    policy = FetchPolicy(connect_timeout=1.0, read_timeout=0.5, deadline=2.0)
    result = fetch_with(client, httpserver.url_for("/silent"), policy)
    assert result.error_kind == "read_timeout"
    t = result.timings
    assert t.connect is not None and t.connect >= 0
    assert (t.first_byte, t.download, t.parse) == (None, None, None)
    assert t.total >= 0.45


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_exported_row_adds_up_to_its_total(backend, tmp_path):
    db_url = f"sqlite:///{tmp_path / 'timings.db'}"
    with TreeSite(pages=15, delay=0.02) as site:
        crawl = cli(
            "crawl", site.url, *backend_flags(backend, 4), "--name", "t", "--json", "--db", db_url
        )
        assert crawl.returncode == 0, crawl.stderr
    exported = cli("export", "t", "--db", db_url)
    assert exported.returncode == 0, exported.stderr
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    assert len(records) == 15
    for r in records:
        present = [r[f] for f in ("connect_ms", "first_byte_ms", "download_ms", "parse_ms")]
        assert all(ms is None or ms >= 0 for ms in present), r
        # export rounds each field to a microsecond: far inside the 1 ms allowed
        assert sum(ms or 0 for ms in present) == pytest.approx(r["total_ms"], abs=1.0), r
        assert r["first_byte_ms"] >= 20, r  # the site's 20 ms wait is in first_byte
