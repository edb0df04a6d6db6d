"""The three frontends on generated sites: each stores exactly what `--expected` says, and
all three store the same pages, statuses, titles and link graph."""

from __future__ import annotations

import pytest

from tests.helpers import BACKENDS, FixtureServer, backend_flags, cli, last_json, query

pytestmark = pytest.mark.serial  # timing is measured: no other test runs beside it

SITE = ["--pages", "5000", "--links", "10", "--page-kb", "4"]


def expected(*flags: str) -> int:
    result = cli("fixtures", "serve", *flags, "--expected")
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


@pytest.fixture(scope="module")
def generated_crawls(tmp_path_factory):
    """The 5,000-page site crawled once with each frontend (one server, so URLs match)."""
    folder = tmp_path_factory.mktemp("generated")
    crawls = {}
    with FixtureServer(*SITE) as server:
        for backend in BACKENDS:
            db_url = f"sqlite:///{folder / backend}.db"
            result = cli(
                "crawl",
                server.url,
                *backend_flags(backend, 32),
                "--json",
                "--db",
                db_url,
                timeout=600,
            )
            assert result.returncode == 0, result.stderr
            crawls[backend] = (db_url, last_json(result.stdout))
    return crawls


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_5000_page_site_stores_exactly_the_expected_pages(generated_crawls, backend):
    db_url, summary = generated_crawls[backend]
    assert summary["pages"] == expected(*SITE) == 5000
    assert summary["errors"] == 0
    assert query(db_url, "SELECT count(DISTINCT url) FROM pages") == [(5000,)]
    assert query(db_url, "SELECT count(*) FROM fetches") == [(5000,)]


PAGES = "SELECT url, title, link_count, content_hash FROM pages ORDER BY url"
STATUSES = "SELECT url, status, error_kind FROM fetches ORDER BY url"
LINKS = """SELECT p.url, l.position, l.url, l.nofollow, l.followed
           FROM links l JOIN pages p ON p.id = l.page_id ORDER BY p.url, l.position"""
DEPTHS = "SELECT url, depth FROM frontier ORDER BY url"


@pytest.mark.parametrize(
    "sql", [PAGES, STATUSES, LINKS, DEPTHS], ids=["pages", "statuses", "links", "depths"]
)
def test_the_three_frontends_store_the_same_site(generated_crawls, sql):
    stored = {backend: query(db_url, sql) for backend, (db_url, _) in generated_crawls.items()}
    assert stored["threads"]
    assert stored["threads"] == stored["processes"] == stored["asyncio"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_crawl_across_three_hosts(db_url, backend):
    flags = ["--pages", "600", "--hosts", "3", "--page-kb", "2"]
    with FixtureServer(*flags) as server:
        allow = ["--allow-host", "127.0.0.2", "--allow-host", "127.0.0.3"]
        result = cli(
            "crawl",
            server.url,
            *backend_flags(backend),
            *allow,
            "--json",
            "--db",
            db_url,
            timeout=300,
        )
    assert result.returncode == 0, result.stderr
    assert last_json(result.stdout)["pages"] == expected(*flags)
    hosts = query(db_url, "SELECT host, count(*) FROM frontier GROUP BY host ORDER BY host")
    assert [count for _, count in hosts] == [200, 200, 200]


def test_without_allow_host_the_other_hosts_are_out_of_scope(db_url):
    with FixtureServer("--pages", "600", "--hosts", "3", "--page-kb", "2") as server:
        result = cli("crawl", server.url, "--json", "--db", db_url, timeout=300)
    assert result.returncode == 0, result.stderr
    assert query(db_url, "SELECT DISTINCT host FROM frontier") == [
        (server.url.removeprefix("http://").strip("/"),)
    ]
    assert query(db_url, "SELECT count(*) FROM links WHERE url LIKE 'http://127.0.0.2:%'")[0][0] > 0


def most_at_once(db_url: str) -> int:
    """The most fetches in flight at one moment, from the stored start and duration."""
    events = []
    for started, total in query(db_url, "SELECT started_at, total_s FROM fetches"):
        events += [(started, 1), (started + total, -1)]
    now = peak = 0
    for _, change in sorted(events):
        now += change
        peak = max(peak, now)
    return peak


def test_asyncio_holds_5000_connections_to_a_latency_bound_site(db_url):
    flags = ["--pages", "10000", "--links", "12", "--page-kb", "1", "--latency-ms", "5000"]
    with FixtureServer(*flags) as server:
        result = cli(
            "crawl",
            server.url,
            "--backend",
            "asyncio",
            "--concurrency",
            "5000",
            "--json",
            "--db",
            db_url,
            timeout=600,
        )
    assert result.returncode == 0, result.stderr
    summary = last_json(result.stdout)
    assert (summary["pages"], summary["skipped"]) == (expected(*flags), 0)
    assert most_at_once(db_url) >= 4500
    # With 5,000 sockets and the server on two busy cores, a burst of connects can outlast
    # the 5 s connect timeout; those are retried, and nothing else may go wrong.
    kinds = query(db_url, "SELECT DISTINCT error_kind FROM fetches WHERE error_kind IS NOT NULL")
    assert set(kinds) <= {("connect_timeout",)}
