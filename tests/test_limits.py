"""Limits, redirects and scope, through the command line against real local servers."""

from __future__ import annotations

import time

import pytest
from werkzeug import Response

from tests.helpers import BACKENDS, TreeSite, backend_flags, cli, last_json, query


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_pages_holds(db_url, backend):
    with TreeSite(pages=100) as site:
        result = cli(
            "crawl",
            site.url,
            "--max-pages",
            "10",
            *backend_flags(backend),
            "--json",
            "--db",
            db_url,
        )
        assert result.returncode == 0, result.stderr
        assert last_json(result.stdout)["pages"] == 10
        assert len(site.hits) == 10
        resumed = cli("resume", last_json(result.stdout)["name"], "--db", db_url, "--json")
        assert last_json(resumed.stdout)["pages"] == 10 and len(site.hits) == 10


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_depth_holds(db_url, backend):
    with TreeSite(pages=100) as site:
        result = cli(
            "crawl", site.url, *backend_flags(backend), "--max-depth", "2", "--json", "--db", db_url
        )
        assert result.returncode == 0, result.stderr
        assert last_json(result.stdout)["pages"] == 1 + 2 + 4
        assert query(db_url, "SELECT max(depth) FROM frontier")[0][0] == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_redirect_hop_limit(httpserver, db_url, backend):
    for hop in range(10):
        httpserver.expect_request(f"/hop{hop}").respond_with_data(
            "", status=302, headers={"Location": f"/hop{hop + 1}"}
        )
    result = cli(
        "crawl", httpserver.url_for("/hop0"), *backend_flags(backend), "--json", "--db", db_url
    )
    assert result.returncode == 0, result.stderr
    rows = query(db_url, "SELECT url, error_kind FROM fetches ORDER BY id")
    assert len(rows) == 6  # the seed and 5 hops
    assert rows[-1][1] == "too_many_redirects"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("allow", [False, True])
def test_other_hosts_are_out_of_scope_unless_allowed(httpserver, db_url, allow, backend):
    other = httpserver.url_for("/other").replace("127.0.0.1", "localhost")
    httpserver.expect_request("/").respond_with_data(
        f'<a href="{other}">other host</a>', content_type="text/html"
    )
    httpserver.expect_request("/other").respond_with_data(
        "<title>o</title>", content_type="text/html"
    )
    extra = ["--allow-host", "LOCALHOST"] if allow else []
    result = cli(
        "crawl", httpserver.url_for("/"), *extra, *backend_flags(backend), "--json", "--db", db_url
    )
    assert result.returncode == 0, result.stderr
    fetched = {url for (url,) in query(db_url, "SELECT url FROM fetches")}
    assert (other in fetched) is allow
    assert query(db_url, "SELECT url, followed FROM links") == [(other, int(allow))]


@pytest.mark.parametrize(
    ("backend", "concurrency"), [("threads", 1), *((backend, 16) for backend in BACKENDS)]
)
def test_max_depth_gives_the_same_pages_whatever_the_timing(
    httpserver, db_url, backend, concurrency
):
    """`/a` is slow, so `/x` is first reached through `/b` -> `/c` at depth 3; its true depth is
    2 (through `/a`), so `/y` at depth 3 is within --max-depth 3."""
    site = {"/": ["/a", "/b"], "/a": ["/x"], "/b": ["/c"], "/c": ["/x"], "/x": ["/y"], "/y": []}

    def page(path):
        def handler(_request):
            if path == "/a":
                time.sleep(0.5)
            links = "".join(f'<a href="{target}">{target}</a>' for target in site[path])
            return Response(f"<title>{path}</title>{links}", content_type="text/html")

        return handler

    for path in site:
        httpserver.expect_request(path).respond_with_handler(page(path))
    result = cli(
        "crawl",
        httpserver.url_for("/"),
        "--max-depth",
        "2",
        *backend_flags(backend, concurrency),
        "--json",
        "--db",
        db_url,
    )
    assert result.returncode == 0, result.stderr
    stored = {url.rsplit("/", 1)[1] for (url,) in query(db_url, "SELECT url FROM pages")}
    assert stored == {"", "a", "b", "c", "x"}
    depths = dict(query(db_url, "SELECT url, depth FROM frontier"))
    assert depths[httpserver.url_for("/x")] == 2


def test_max_pages_picks_the_same_pages_whatever_the_frontend_or_concurrency(tmp_path):
    runs = [("threads", 1), ("threads", 8), ("threads", 32), ("processes", 4), ("asyncio", 32)]
    picked = {}
    with TreeSite(pages=200, fanout=3) as site:
        for backend, concurrency in runs:
            db = f"sqlite:///{tmp_path / backend}-{concurrency}.db"
            result = cli(
                "crawl",
                site.url,
                "--max-pages",
                "50",
                *backend_flags(backend, concurrency),
                "--json",
                "--db",
                db,
            )
            assert result.returncode == 0, result.stderr
            picked[backend, concurrency] = sorted(
                url for (url,) in query(db, "SELECT url FROM pages")
            )
    assert len(picked["threads", 1]) == 50
    assert all(pages == picked["threads", 1] for pages in picked.values())
