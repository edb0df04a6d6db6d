"""robots.txt as a crawl obeys it (RFC 9309), and sitemaps, on real servers on loopback."""

from __future__ import annotations

import gzip

import pytest
from werkzeug import Response

from tests.helpers import BACKENDS, backend_flags, cli, last_json, query

FAST = ["--retry-backoff", "0.05"]


def serve_robots(httpserver, body: str | None = None, status: int = 200, handler=None) -> None:
    httpserver.clear_all_handlers()
    if handler is not None:
        httpserver.expect_request("/robots.txt").respond_with_handler(handler)
    else:
        httpserver.expect_request("/robots.txt").respond_with_data(
            body or "", status=status, content_type="text/plain"
        )


def serve_pages(httpserver, *paths: str) -> None:
    links = "".join(f'<a href="{p}">{p}</a>' for p in paths)
    httpserver.expect_request("/").respond_with_data(links, content_type="text/html")
    for path in paths:
        httpserver.expect_request(path).respond_with_data(
            f"<title>{path}</title>", content_type="text/html"
        )


def crawl(httpserver, db_url: str, *flags: str) -> dict:
    result = cli("crawl", httpserver.url_for("/"), *flags, "--json", "--db", db_url, timeout=120)
    assert result.returncode == 0, result.stderr
    return last_json(result.stdout)


def requested(httpserver) -> list[str]:
    return [request.path for request, _ in httpserver.log]


def skipped(db_url: str) -> dict[str, str]:
    rows = query(db_url, "SELECT url, skip_reason FROM frontier WHERE state = 'skipped'")
    return {url.split("/", 3)[3]: reason for url, reason in rows}


@pytest.mark.parametrize("backend", BACKENDS)
def test_disallowed_urls_are_skipped_and_robots_is_asked_once(httpserver, db_url, backend):
    serve_robots(httpserver, "User-agent: *\nDisallow: /private/\n")
    serve_pages(httpserver, "/private/a", "/public/b", "/public/c", "/private")
    summary = crawl(httpserver, db_url, *backend_flags(backend))
    asked = requested(httpserver)
    assert asked.count("/robots.txt") == 1
    assert "/private/a" not in asked
    assert sorted(p for p in asked if p != "/robots.txt") == [
        "/",
        "/private",
        "/public/b",
        "/public/c",
    ]
    assert skipped(db_url) == {"private/a": "disallowed by robots.txt"}
    assert summary["pages"] == 4 and summary["state"] == "finished"


def test_our_own_group_wins_over_the_star_group(httpserver, db_url):
    serve_robots(httpserver, "User-agent: *\nDisallow: /\n\nUser-agent: crawler\nDisallow: /x\n")
    serve_pages(httpserver, "/x", "/y")
    crawl(httpserver, db_url)
    assert "/y" in requested(httpserver) and "/x" not in requested(httpserver)


def test_a_custom_user_agent_is_matched_by_its_product_token(httpserver, db_url):
    serve_robots(httpserver, "User-agent: MyBot\nDisallow: /y\n")
    serve_pages(httpserver, "/x", "/y")
    crawl(httpserver, db_url, "--user-agent", "mybot/2.0 (+http://example.org/bot)")
    assert "/x" in requested(httpserver) and "/y" not in requested(httpserver)


@pytest.mark.parametrize("status", [404, 401, 403, 410])
def test_a_4xx_robots_allows_everything(httpserver, db_url, status):
    serve_robots(httpserver, "User-agent: *\nDisallow: /\n", status=status)
    serve_pages(httpserver, "/a")
    assert crawl(httpserver, db_url)["pages"] == 2


def test_a_5xx_robots_disallows_until_a_retry_succeeds(httpserver, db_url):
    answers = iter([Response("down", status=503), Response("down", status=500)])

    def robots(request):
        return next(answers, Response("User-agent: *\nDisallow: /b\n", content_type="text/plain"))

    serve_robots(httpserver, handler=robots)
    serve_pages(httpserver, "/a", "/b")
    summary = crawl(httpserver, db_url, *FAST, "--max-attempts", "3")
    asked = requested(httpserver)
    assert asked[:3] == ["/robots.txt"] * 3  # nothing else asked while it was failing
    assert summary["pages"] == 2 and "/b" not in asked


def test_a_robots_that_keeps_failing_skips_the_host(httpserver, db_url):
    serve_robots(httpserver, "", status=500)
    serve_pages(httpserver, "/a")
    summary = crawl(httpserver, db_url, *FAST)
    assert requested(httpserver) == ["/robots.txt"] * 3
    assert skipped(db_url) == {"": "robots.txt unavailable"}
    assert summary["pages"] == 0 and summary["state"] == "finished"


def test_robots_redirects_are_followed(httpserver, db_url):
    httpserver.clear_all_handlers()
    httpserver.expect_request("/robots.txt").respond_with_data(
        "", status=301, headers={"Location": "/real-robots.txt"}
    )
    httpserver.expect_request("/real-robots.txt").respond_with_data(
        "User-agent: *\nDisallow: /b\n", content_type="text/plain"
    )
    serve_pages(httpserver, "/a", "/b")
    crawl(httpserver, db_url)
    assert "/b" not in requested(httpserver) and "/a" in requested(httpserver)


def test_more_than_five_robots_redirects_allow_everything(httpserver, db_url):
    httpserver.clear_all_handlers()
    httpserver.expect_request("/robots.txt").respond_with_data(
        "", status=302, headers={"Location": "/r1"}
    )
    for hop in range(1, 10):
        httpserver.expect_request(f"/r{hop}").respond_with_data(
            "", status=302, headers={"Location": f"/r{hop + 1}"}
        )
    serve_pages(httpserver, "/a")
    assert crawl(httpserver, db_url)["pages"] == 2
    assert "/r6" not in requested(httpserver)  # robots.txt and five hops, then given up


def test_a_huge_robots_is_read_up_to_512_kib(httpserver, db_url):
    filler = "# padding\n" * (600 * 1024 // 10)
    serve_robots(httpserver, "User-agent: *\nDisallow: /a\n" + filler + "Disallow: /b\n")
    serve_pages(httpserver, "/a", "/b")
    crawl(httpserver, db_url)
    asked = requested(httpserver)
    assert "/a" not in asked and "/b" in asked  # the rule past 512 KiB is not read


def test_ignore_robots_is_obeyed_and_recorded(httpserver, db_url):
    serve_robots(httpserver, "User-agent: *\nDisallow: /\n")
    serve_pages(httpserver, "/a")
    assert crawl(httpserver, db_url, "--ignore-robots")["pages"] == 2
    assert "/robots.txt" not in requested(httpserver)
    settings = query(db_url, "SELECT settings FROM crawls")[0][0]
    assert '"ignore_robots": true' in settings


def sitemap_site(httpserver) -> str:
    base = httpserver.url_for("/").rstrip("/")
    serve_robots(httpserver, f"User-agent: *\nDisallow: /blocked\nSitemap: {base}/sitemap.xml\n")
    serve_pages(httpserver, "/linked")
    httpserver.expect_request("/sitemap.xml").respond_with_data(
        f"<?xml version='1.0'?><sitemapindex xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>"
        f"<sitemap><loc>{base}/pages.xml.gz</loc></sitemap>"
        f"<sitemap><loc>http://other.invalid/out.xml</loc></sitemap></sitemapindex>",
        content_type="application/xml",
    )
    urlset = (
        "<urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>"
        + "".join(
            f"<url><loc>{base}{p}</loc></url>"
            for p in ("/orphan1", "/orphan2", "/blocked", "/linked")
        )
        + "<url><loc>http://other.invalid/page</loc></url></urlset>"
    )
    httpserver.expect_request("/pages.xml.gz").respond_with_data(
        gzip.compress(urlset.encode()), content_type="application/gzip"
    )
    for path in ("/orphan1", "/orphan2"):
        httpserver.expect_request(path).respond_with_data(
            f"<title>{path}</title>", content_type="text/html"
        )
    return base


@pytest.mark.parametrize("backend", BACKENDS)
def test_sitemaps_seed_the_frontier(httpserver, db_url, backend):
    sitemap_site(httpserver)
    summary = crawl(httpserver, db_url, *backend_flags(backend), "--sitemaps")
    pages = {u.split("/", 3)[3] for (u,) in query(db_url, "SELECT url FROM pages")}
    assert pages == {"", "linked", "orphan1", "orphan2"}
    assert skipped(db_url) == {"blocked": "disallowed by robots.txt"}
    assert query(db_url, "SELECT depth FROM frontier WHERE url LIKE '%orphan1'") == [(1,)]
    assert summary["state"] == "finished"


def test_without_sitemaps_flag_sitemaps_are_not_read(httpserver, db_url):
    sitemap_site(httpserver)
    crawl(httpserver, db_url)
    assert "/sitemap.xml" not in requested(httpserver)
    assert query(db_url, "SELECT count(*) FROM pages") == [(2,)]


def test_a_sitemap_bomb_is_refused_at_the_cap(httpserver, db_url):
    base = httpserver.url_for("/").rstrip("/")
    serve_robots(httpserver, f"Sitemap: {base}/bomb.xml.gz\n")
    serve_pages(httpserver, "/a")
    bomb = gzip.compress(b"<urlset>" + b" " * (64 * 1024 * 1024) + b"</urlset>")
    httpserver.expect_request("/bomb.xml.gz").respond_with_data(
        bomb, content_type="application/gzip"
    )
    summary = crawl(httpserver, db_url, "--sitemaps")
    assert summary["pages"] == 2 and summary["state"] == "finished"


def test_ctrl_c_while_robots_is_fetched_then_resume_asks_again_at_once(httpserver, db_url):
    """The stopped run's claim on the robots.txt fetch is given back with its leases, so the
    next run does not wait for the claim to expire (minutes)."""
    import signal
    import time

    from tests.helpers import start_crawler

    def slow_robots(request):
        time.sleep(2)
        return Response("User-agent: *\nDisallow: /b\n", content_type="text/plain")

    serve_robots(httpserver, handler=slow_robots)
    serve_pages(httpserver, "/a", "/b")
    process = start_crawler("crawl", httpserver.url_for("/"), "--name", "r", "--db", db_url)
    deadline = time.monotonic() + 20
    while "/robots.txt" not in requested(httpserver) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 130
    started = time.monotonic()
    result = cli("resume", "r", "--json", "--db", db_url, timeout=60)
    assert result.returncode == 0, result.stderr
    assert last_json(result.stdout)["pages"] == 2
    assert time.monotonic() - started < 15
    assert "/b" not in requested(httpserver)


@pytest.mark.parametrize("backend", BACKENDS)
def test_with_sitemaps_a_page_budget_picks_the_same_pages_on_every_frontend(
    httpserver, db_url, backend
):
    """The sitemap's pages are in the frontier before the crawl goes past the seed, so which
    depth-1 pages fill --max-pages does not depend on when the sitemap walk ended."""
    sitemap_site(httpserver)
    crawl(httpserver, db_url, *backend_flags(backend), "--sitemaps", "--max-pages", "3")
    pages = sorted(u.split("/", 3)[3] for (u,) in query(db_url, "SELECT url FROM pages"))
    keys = {
        u.split("/", 3)[3]: k
        for u, k in query(db_url, "SELECT url, url_key FROM frontier WHERE depth = 1")
    }
    first_two = sorted(sorted(k for k in keys if k != "blocked"), key=lambda p: keys[p])[:2]
    assert pages == sorted(["", *first_two])
