"""Limits, redirects and scope, through the command line against real local servers."""

from __future__ import annotations

import pytest

from tests.helpers import TreeSite, cli, last_json, query


def test_max_pages_holds(db_url):
    with TreeSite(pages=100) as site:
        result = cli(
            "crawl", site.url, "--max-pages", "10", "--concurrency", "8", "--json", "--db", db_url
        )
        assert result.returncode == 0, result.stderr
        assert last_json(result.stdout)["pages"] == 10
        assert len(site.hits) == 10
        resumed = cli("resume", last_json(result.stdout)["name"], "--db", db_url, "--json")
        assert last_json(resumed.stdout)["pages"] == 10 and len(site.hits) == 10


def test_max_depth_holds(db_url):
    with TreeSite(pages=100) as site:
        result = cli("crawl", site.url, "--max-depth", "2", "--json", "--db", db_url)
        assert result.returncode == 0, result.stderr
        assert last_json(result.stdout)["pages"] == 1 + 2 + 4
        assert query(db_url, "SELECT max(depth) FROM frontier")[0][0] == 2


def test_redirect_hop_limit(httpserver, db_url):
    for hop in range(10):
        httpserver.expect_request(f"/hop{hop}").respond_with_data(
            "", status=302, headers={"Location": f"/hop{hop + 1}"}
        )
    result = cli("crawl", httpserver.url_for("/hop0"), "--json", "--db", db_url)
    assert result.returncode == 0, result.stderr
    rows = query(db_url, "SELECT url, error_kind FROM fetches ORDER BY id")
    assert len(rows) == 6  # the seed and 5 hops
    assert rows[-1][1] == "too_many_redirects"


@pytest.mark.parametrize("allow", [False, True])
def test_other_hosts_are_out_of_scope_unless_allowed(httpserver, db_url, allow):
    other = httpserver.url_for("/other").replace("127.0.0.1", "localhost")
    httpserver.expect_request("/").respond_with_data(
        f'<a href="{other}">other host</a>', content_type="text/html"
    )
    httpserver.expect_request("/other").respond_with_data(
        "<title>o</title>", content_type="text/html"
    )
    extra = ["--allow-host", "LOCALHOST"] if allow else []
    result = cli("crawl", httpserver.url_for("/"), *extra, "--json", "--db", db_url)
    assert result.returncode == 0, result.stderr
    fetched = {url for (url,) in query(db_url, "SELECT url FROM fetches")}
    assert (other in fetched) is allow
    assert query(db_url, "SELECT url, followed FROM links") == [(other, int(allow))]
