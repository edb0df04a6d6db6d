"""The threads frontend on generated sites: it stores exactly what `--expected` says."""

from __future__ import annotations

from tests.helpers import FixtureServer, cli, last_json, query


def expected(*flags: str) -> int:
    result = cli("fixtures", "serve", *flags, "--expected")
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


def test_threads_crawl_a_5000_page_site_and_store_exactly_the_expected_pages(db_url):
    flags = ["--pages", "5000", "--links", "10", "--page-kb", "4"]
    with FixtureServer(*flags) as server:
        result = cli(
            "crawl", server.url, "--concurrency", "32", "--json", "--db", db_url, timeout=300
        )
    assert result.returncode == 0, result.stderr
    summary = last_json(result.stdout)
    assert summary["pages"] == expected(*flags) == 5000
    assert summary["errors"] == 0
    assert query(db_url, "SELECT count(DISTINCT url) FROM pages") == [(5000,)]


def test_crawl_across_three_hosts(db_url):
    flags = ["--pages", "600", "--hosts", "3", "--page-kb", "2"]
    with FixtureServer(*flags) as server:
        allow = ["--allow-host", "127.0.0.2", "--allow-host", "127.0.0.3"]
        result = cli("crawl", server.url, *allow, "--json", "--db", db_url, timeout=300)
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
