"""The hostile-server suite: every fault and trap in the fixture catalogue, linked from one
page beside good pages, crawled by each frontend. The crawl ends within a bound set by the
timeouts, each fault is stored with its error kind, every good page is stored, and memory
stays bounded (a 100 MiB body and four compression bombs among the faults)."""

from __future__ import annotations

import time

import pytest

from fixtures.faults import FAULTS
from tests.helpers import BACKENDS, FixtureServer, backend_flags, cli, last_json, query

pytestmark = pytest.mark.serial  # timing is measured: no other test runs beside it

GOOD_PAGES = 20
TIMEOUT_S = 3  # connect, read and whole-exchange deadline
FLAGS = [
    *("--timeout", str(TIMEOUT_S)),
    *("--retry-backoff", "0.05"),
    *("--max-retry-after", "1"),
    *("--max-pages-per-host", "150"),  # the calendar and session traps never end by themselves
    *("--max-body-bytes", "1000000"),  # as in Scrapy's bomb tests
]
# Three attempts of the slowest fault (a trickle cut at the deadline), plus the back-offs
# and pool start-up, with room for a loaded machine.
BOUND_S = 3 * TIMEOUT_S + 60
MAX_RSS_KB = 600 * 1024  # parent and pool children together


@pytest.fixture(scope="module")
def fault_server():
    with FixtureServer() as server:
        yield server.url.rstrip("/")


@pytest.fixture(scope="module", params=BACKENDS)
def hostile_crawl(request, fault_server, make_httpserver, tmp_path_factory):
    backend = request.param
    server = make_httpserver
    server.clear()
    server.expect_request("/robots.txt").respond_with_data("", status=404)
    links = [f'<a href="{fault_server}{fault.path}">{kind}</a>' for kind, fault in FAULTS.items()]
    links += [f'<a href="/good/{n}">good {n}</a>' for n in range(GOOD_PAGES)]
    server.expect_request("/").respond_with_data("".join(links), content_type="text/html")
    for n in range(GOOD_PAGES):
        server.expect_request(f"/good/{n}").respond_with_data(
            f"<title>good {n}</title>", content_type="text/html"
        )
    db_url = f"sqlite:///{tmp_path_factory.mktemp('hostile') / backend}.db"
    started = time.monotonic()
    result = cli(
        "crawl",
        server.url_for("/"),
        *backend_flags(backend),
        *FLAGS,
        "--allow-host",
        "127.0.0.1",
        "--json",
        "--db",
        db_url,
        timeout=600,
    )
    elapsed = time.monotonic() - started
    server.clear()
    assert result.returncode == 0, result.stderr
    return db_url, last_json(result.stdout), elapsed, fault_server


def test_the_crawl_ends_within_the_bound(hostile_crawl):
    _, summary, elapsed, _ = hostile_crawl
    assert summary["state"] == "finished"
    assert elapsed < BOUND_S


def test_every_good_page_is_stored(hostile_crawl):
    db_url, *_ = hostile_crawl
    titles = query(db_url, "SELECT title FROM pages WHERE url LIKE '%/good/%' ORDER BY title")
    assert len(titles) == GOOD_PAGES


@pytest.mark.parametrize("kind", [k for k, f in FAULTS.items() if f.error_kind is not None])
def test_each_fault_is_stored_with_its_error_kind(hostile_crawl, kind):
    db_url, _, _, origin = hostile_crawl
    fault = FAULTS[kind]
    if kind == "redirect-chain-long":  # the error is on the hop past the limit
        rows = query(
            db_url,
            "SELECT error_kind FROM fetches WHERE url LIKE ?",
            f"{origin}/fault/redirect-chain/%",
        )
    else:
        rows = query(db_url, "SELECT error_kind FROM fetches WHERE url = ?", origin + fault.path)
    assert rows, f"{fault.path} was never fetched"
    assert fault.error_kind in {kind for (kind,) in rows}
    assert {kind for (kind,) in rows} <= {fault.error_kind, None}


@pytest.mark.parametrize(
    "kind", [k for k, f in FAULTS.items() if f.error_kind is None and not k.startswith("trap")]
)
def test_each_answering_fault_is_stored_as_a_response(hostile_crawl, kind):
    db_url, _, _, origin = hostile_crawl
    rows = query(
        db_url, "SELECT status, error_kind FROM fetches WHERE url = ?", origin + FAULTS[kind].path
    )
    assert rows and all(status is not None and error is None for status, error in rows)


def test_traps_are_cut_off(hostile_crawl):
    db_url, _, _, origin = hostile_crawl
    trapped = query(db_url, "SELECT count(*) FROM frontier WHERE url LIKE ?", f"{origin}/trap/%")
    fetched = query(db_url, "SELECT count(*) FROM fetches WHERE url LIKE ?", f"{origin}/trap/%")
    assert fetched[0][0] <= 150 and trapped[0][0] > 0
    repeated = query(
        db_url,
        "SELECT count(*) FROM frontier WHERE url LIKE ?",
        f"{origin}/trap/deeper/a/a/a/a/a/%",
    )
    assert repeated == [(0,)]  # a path repeating a segment is not followed


def test_memory_stays_bounded(hostile_crawl):
    db_url, *_ = hostile_crawl
    (peak,) = query(db_url, "SELECT peak_rss_kb FROM runs")[0]
    assert peak < MAX_RSS_KB


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
def test_compression_bombs_stop_before_1_1_mb_are_decoded(hostile_crawl, encoding):
    db_url, _, _, origin = hostile_crawl
    rows = query(
        db_url,
        "SELECT error_kind, body_bytes FROM fetches WHERE url = ?",
        f"{origin}/fault/bomb/{encoding}",
    )
    assert rows and all(kind == "too_large" for kind, _ in rows)
    assert all(1_000_000 < decoded < 1_100_000 for _, decoded in rows)
