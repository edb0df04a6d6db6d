"""Per-host politeness, measured by a server that records what each host received: requests
in flight at once and the gaps between them, on all three frontends."""

from __future__ import annotations

import pytest

from tests.counting_site import CountingSite
from tests.helpers import BACKENDS, backend_flags, cli, last_json

pytestmark = pytest.mark.serial  # timing is measured: no other test runs beside it

SLACK = 0.02  # the two clocks are one monotonic clock, but the server stamps after reading


def crawl(site: CountingSite, db_url: str, *flags: str, concurrency: int = 16) -> dict:
    result = cli("crawl", *site.urls, *flags, "--json", "--db", db_url, timeout=300)
    assert result.returncode == 0, result.stderr
    return last_json(result.stdout)


@pytest.mark.parametrize("backend", BACKENDS)
def test_per_host_concurrency_caps_each_host_not_the_crawl(db_url, backend):
    with CountingSite(hosts=3, pages=24, delay=0.1) as site:
        summary = crawl(site, db_url, *backend_flags(backend, 16), "--per-host-concurrency", "2")
    assert summary["pages"] == 3 * 25
    assert [site.most_in_flight(h) for h in range(3)] == [2, 2, 2]


@pytest.mark.parametrize("backend", BACKENDS)
def test_per_host_delay_spaces_requests_to_a_host(db_url, backend):
    with CountingSite(hosts=2, pages=6, delay=0.0) as site:
        summary = crawl(site, db_url, *backend_flags(backend, 8), "--per-host-delay", "0.25")
    assert summary["pages"] == 2 * 7
    for host in range(2):
        assert site.most_in_flight(host) == 1
        assert site.smallest_gap(host) >= 0.25 - SLACK


def test_crawl_delay_in_robots_raises_the_delay(db_url):
    robots = {0: "User-agent: *\nCrawl-delay: 0.3\n"}
    with CountingSite(hosts=2, pages=5, delay=0.0, robots=robots) as site:
        crawl(site, db_url, "--concurrency", "8")
    assert site.smallest_gap(0) >= 0.3 - SLACK
    assert site.smallest_gap(1) < 0.3  # the other host has no Crawl-delay


def test_loopback_hosts_are_not_capped_by_default(db_url):
    with CountingSite(hosts=1, pages=40, delay=0.3) as site:
        crawl(site, db_url, "--concurrency", "20")
    assert site.most_in_flight(0) > 8  # the network default would have held it at 8


def test_an_explicit_cap_applies_on_loopback_too(db_url):
    with CountingSite(hosts=1, pages=20, delay=0.1) as site:
        crawl(site, db_url, "--concurrency", "20", "--per-host-concurrency", "3")
    assert site.most_in_flight(0) == 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_slow_host_does_not_hold_up_the_others(db_url, backend):
    """One request at a time to a host answering in 0.5 s; the fast host is done long before."""
    with CountingSite(hosts=2, pages=12, delays={0: 0.5, 1: 0.02}) as site:
        crawl(site, db_url, *backend_flags(backend, 8), "--per-host-concurrency", "1")
    slow, fast = site.of_host(0), site.of_host(1)
    assert len(fast) == len(slow) == 13
    assert fast[-1][1] < slow[0][0] + 3  # 13 fast pages in well under the slow host's 6.5 s
    assert slow[-1][1] - slow[0][0] > 5.5
