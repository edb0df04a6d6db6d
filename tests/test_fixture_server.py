"""`crawler fixtures serve` over real HTTP: generated sites, latency, hosts, robots, sitemaps,
and capacity."""

from __future__ import annotations

import asyncio
import gzip
import resource
import time
import urllib.request
import xml.etree.ElementTree as ET

import pytest

from tests.helpers import FixtureServer, cli


def get(url: str, timeout: float = 10) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def fixtures_cli(*flags: str):
    return cli("fixtures", "serve", *flags)


def test_expected_and_list_print_the_ground_truth():
    result = fixtures_cli("--pages", "1234", "--hosts", "2", "--expected")
    assert (result.returncode, result.stdout.strip()) == (0, "1234")
    listed = fixtures_cli("--pages", "25", "--hosts", "2", "--port", "8123", "--list")
    urls = listed.stdout.split()
    assert len(urls) == len(set(urls)) == 25
    assert urls[:2] == ["http://127.0.0.1:8123/", "http://127.0.0.2:8123/"]


@pytest.mark.parametrize(
    "flags",
    [
        ["--pages", "0"],
        ["--hosts", "300", "--pages", "9"],
        ["--latency-ms", "slow=5"],
        ["--robots", "sometimes"],
        ["--expected"],
    ],
)
def test_bad_flags_are_usage_errors(flags):
    result = fixtures_cli(*flags)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error:" in result.stderr


def test_same_flags_byte_identical_site_over_http():
    flags = ["--pages", "500", "--links", "12", "--seed", "3"]
    with FixtureServer(*flags) as one, FixtureServer(*flags) as two:
        for path in ("", "s/0/p5.html", "list?page=99", "s/4/p499.html"):
            a = get(one.url + path)[2].replace(str(one.port).encode(), b"PORT")
            b = get(two.url + path)[2].replace(str(two.port).encode(), b"PORT")
            assert a == b and b"<title>" in a
        assert get(one.url + "s/5/p500.html")[0] == 404


def test_latency_and_jitter_delay_the_first_byte():
    with FixtureServer(
        "--pages", "50", "--latency-ms", "100", "--latency-ms", "/list=400", "--jitter-ms", "50"
    ) as server:
        for path, low, high in (("s/0/p1.html", 0.1, 0.4), ("list?page=9", 0.4, 0.8)):
            started = time.perf_counter()
            assert get(server.url + path)[0] == 200
            assert low <= time.perf_counter() - started < high


def test_bandwidth_trickles_the_body():
    with FixtureServer("--pages", "50", "--page-kb", "16", "--bandwidth-kbps", "128") as server:
        started = time.perf_counter()
        status, _, body = get(server.url + "s/0/p3.html")
        elapsed = time.perf_counter() - started
    assert status == 200 and len(body) > 16 * 1024
    assert elapsed >= len(body) * 8 / 128_000 * 0.8  # 16 KiB at 16 kB/s: about one second


def test_several_hosts_one_port_with_cross_host_links():
    with FixtureServer("--pages", "90", "--hosts", "3") as server:
        other = server.url.replace("127.0.0.1", "127.0.0.3")
        status, _, home = get(other)
        assert status == 200 and b"<title>Page 2 of 90</title>" in home
        assert get(other + "s/0/p5.html")[0] == 200  # page 5 lives on host 5 % 3 = 2
        assert get(server.url + "s/0/p5.html")[0] == 404
        assert f"http://127.0.0.2:{server.port}/".encode() in get(server.url)[2]


@pytest.mark.parametrize(
    ("rule", "status", "needle"),
    [
        ("allow", 200, "Disallow:\n"),
        ("disallow:/s/1/", 200, "Disallow: /s/1/"),
        ("crawl-delay:2", 200, "Crawl-delay: 2"),
        ("404", 404, ""),
        ("500", 500, ""),
        ("redirect", 200, "Disallow: /moved-robots-disallow/"),
    ],
)
def test_robots_rules(rule, status, needle):
    with FixtureServer("--pages", "20", "--robots", rule) as server:
        code, _, body = get(server.url + "robots.txt")
    assert code == status and needle in body.decode()
    if status == 200:
        assert f"Sitemap: {server.url}sitemap.xml" in body.decode()


def test_robots_rule_for_one_host_only():
    with FixtureServer("--pages", "20", "--hosts", "2", "--robots", "2=500") as server:
        assert get(server.url + "robots.txt")[0] == 200
        assert get(server.url.replace(".0.1:", ".0.2:") + "robots.txt")[0] == 500


def test_sitemap_index_and_gzipped_sitemaps_list_every_page_of_the_host():
    namespace = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    with FixtureServer("--pages", "25000", "--hosts", "2") as server:
        _, _, index = get(server.url + "sitemap.xml")
        parts = [loc.text for loc in ET.fromstring(index).findall("s:sitemap/s:loc", namespace)]
        assert len(parts) == 2  # 12,500 URLs on host 1, 10,000 per sitemap
        urls = []
        for part in parts:
            status, _, body = get(part)
            assert status == 200
            urls += [
                loc.text
                for loc in ET.fromstring(gzip.decompress(body)).findall("s:url/s:loc", namespace)
            ]
    listed = fixtures_cli("--pages", "25000", "--hosts", "2", "--port", str(server.port), "--list")
    assert urls == [u for u in listed.stdout.split() if u.startswith("http://127.0.0.1:")]


def test_handwritten_site_has_a_sitemap_too(fixture_site):
    _, _, index = get(fixture_site + "sitemap.xml")
    assert b"/sitemaps/0.xml.gz" in index
    _, _, part = get(fixture_site + "sitemaps/0.xml.gz")
    assert f"{fixture_site}legacy/latin1.html".encode() in gzip.decompress(part)


CONNECTIONS = 10_000


async def _hold_connections(host: str, port: int, path: str) -> list[bytes]:
    """Open CONNECTIONS connections, all with a request in flight at once, read every answer."""
    opened = asyncio.Semaphore(500)  # pace the SYNs; every connection stays open

    async def one() -> bytes:
        async with opened:
            reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 60)
        await reader.read()
        writer.close()
        return status

    return await asyncio.gather(*(one() for _ in range(CONNECTIONS)))


@pytest.mark.serial
def test_ten_thousand_concurrent_slow_connections_are_all_answered():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard >= CONNECTIONS + 100, "raise the hard open-file limit to run this test"
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        with FixtureServer("--pages", "100", "--latency-ms", "3000") as server:
            started = time.perf_counter()
            statuses = asyncio.run(_hold_connections("127.0.0.1", server.port, "/s/0/p1.html"))
            elapsed = time.perf_counter() - started
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert statuses.count(b"HTTP/1.1 200 OK\r\n") == CONNECTIONS
    # All waited their 3 s at the same time: far less than 10,000 x 3 s, or even 2 rounds.
    assert elapsed < 3 * 2 + 10
