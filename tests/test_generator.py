"""The site generator: deterministic, every page reachable, many spellings of one URL."""

from __future__ import annotations

from collections import deque

import pytest

from crawler.parse import parse_page
from fixtures.generator import (
    Generator,
    SiteSpec,
    expected_pages,
    host_address,
    host_of_page,
    iter_urls,
    link_targets,
    page_of_path,
    path_of,
    reachable,
)


def origin_of(port: int):
    return lambda host: f"http://{host_address(host)}:{port}"


@pytest.mark.parametrize(
    "spec",
    [SiteSpec(pages=10), SiteSpec(pages=5000, links=1), SiteSpec(pages=20_000, links=25, hosts=3)],
)
def test_every_page_is_reachable_and_expected_agrees(spec):
    assert reachable(spec) == expected_pages(spec) == spec.pages


def test_same_flags_same_bytes_other_seed_other_bytes():
    one, two = Generator(SiteSpec(seed=7)), Generator(SiteSpec(seed=7))
    other = Generator(SiteSpec(seed=8))
    for n in (0, 1, 9, 123, 999):
        assert one.render(n, origin_of(80)) == two.render(n, origin_of(80))
        assert one.render(n, origin_of(80)) != other.render(n, origin_of(80))


@pytest.mark.parametrize("kb", [2, 8, 64])
def test_page_size_follows_page_kb(kb):
    body = Generator(SiteSpec(page_kb=kb)).render(42, origin_of(80))
    assert kb * 1024 <= len(body) < kb * 1024 + 2000


def test_paths_round_trip_on_their_own_host():
    spec = SiteSpec(pages=3000, hosts=3)
    for n in range(0, 3000, 7):
        path, _, query = path_of(spec, n).partition("?")
        assert page_of_path(spec, host_of_page(spec, n), path, query) == n
        if path != "/":  # every host has a home page; other pages live on one host
            assert page_of_path(spec, (host_of_page(spec, n) + 1) % 3, path, query) is None
    assert page_of_path(spec, 0, "/s/0/p5.htm", "") is None
    assert page_of_path(spec, 0, "/s/9/p5.html", "") is None
    assert page_of_path(spec, 0, "/s/30/p3000.html", "") is None


def test_parsed_links_are_the_generated_ones_once_canonicalised():
    """The many spellings (relative, ../, %70, fragments, HTTP://) all resolve to the page
    the generator meant; a link inside <script> is not a link."""
    spec = SiteSpec(pages=2000, links=30, hosts=2)
    generator = Generator(spec)
    urls = list(iter_urls(spec, 8000))
    for n in (0, 1, 57, 1234, 1999):
        url = urls[n]
        page = parse_page(url, generator.render(n, origin_of(8000)), {"content-type": "text/html"})
        found = [link.url for link in page.links]
        home = f"http://{host_address(0)}:8000/"
        assert found[0] == home  # the navigation
        assert found[1:] == [urls[m] for m in link_targets(spec, n)]
        assert not any("not-a-link" in u for u in found)


def test_a_crawl_by_links_alone_finds_every_page():
    """Breadth-first over the parsed links of the rendered pages, as a crawler would."""
    spec = SiteSpec(pages=400, links=5, hosts=2)
    generator = Generator(spec)
    urls = list(iter_urls(spec, 8000))
    index = {url: n for n, url in enumerate(urls)}
    seen, queue = {urls[0]}, deque([urls[0]])
    while queue:
        url = queue.popleft()
        body = generator.render(index[url], origin_of(8000))
        for link in parse_page(url, body, {"content-type": "text/html"}).links:
            if link.url not in seen:
                assert link.url in index, link.url
                seen.add(link.url)
                queue.append(link.url)
    assert len(seen) == expected_pages(spec)


def test_fault_links_are_mixed_in_at_the_fault_rate():
    faults = ["/fault/status/404", "/fault/status/500"]
    generator = Generator(SiteSpec(pages=2000, fault_rate=0.1), faults)
    with_fault = sum(b"/fault/status/" in generator.render(n, origin_of(80)) for n in range(2000))
    assert 150 <= with_fault <= 250
    assert not any(
        b"/fault/" in Generator(SiteSpec(pages=50), faults).render(n, origin_of(80))
        for n in range(50)
    )
