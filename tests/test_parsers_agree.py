"""`--parser lxml` finds what BeautifulSoup finds: the same ParsedPage (title, links with their
text and rel, base, nofollow, meta robots, canonical, charset) over the fixture corpus, the
generated site and HTML made to tell them apart. `make bench` checks the documentation sets."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import HealthCheck, given, settings

from crawler.parse import parse_page
from fixtures.generator import Generator, SiteSpec
from fixtures.handwritten import CONTENT_TYPES, SITE_DIR
from tests.html_strategies import documents

PAGE = "http://127.0.0.1:8000/docs/page.html"


def both(body: bytes, content_type: str):
    """What each parser makes of the body: the page, or the kind of error it raised."""
    outcomes = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BeautifulSoup's "looks like XML" and the like
        for parser in ("beautifulsoup", "lxml"):
            try:
                outcomes.append(parse_page(PAGE, body, {"content-type": content_type}, parser))
            except Exception as exc:  # both must raise, though not with the same class
                outcomes.append(("raised", exc))
    return outcomes


def assert_agree(body: bytes, content_type: str) -> None:
    soup, tree = both(body, content_type)
    if isinstance(soup, tuple) or isinstance(tree, tuple):
        assert isinstance(soup, tuple) and isinstance(tree, tuple), (body, soup, tree)
    else:
        assert soup == tree, body


def _fixture_pages():
    for file in sorted(SITE_DIR.rglob("*.html")):
        path = "/" + file.relative_to(SITE_DIR).as_posix()
        body = file.read_bytes().replace(b"{{ORIGIN}}", b"http://127.0.0.1:8000")
        yield pytest.param(body, CONTENT_TYPES.get(path, "text/html; charset=utf-8"), id=path)


@pytest.mark.parametrize(("body", "content_type"), list(_fixture_pages()))
def test_every_fixture_page(body, content_type):
    soup, tree = both(body, content_type)
    assert soup == tree
    assert soup.links or soup.title  # the pages have something to find


def test_generated_pages():
    generator = Generator(SiteSpec(pages=200, links=12, page_kb=16, hosts=3, fault_rate=0.2),
                          faults=["/fault/reset", "/fault/slow"])  # fmt: skip
    for n in range(200):
        body = generator.render(n, lambda host: f"http://127.0.0.{host + 1}:8000")
        soup, tree = both(body, "text/html")
        assert soup == tree and len(soup.links) >= 12, n


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", "text/html"),  # no tree at all
        (b'<html></html><a href="/after">after</a>', "text/html"),  # a second root element
        (b'<a href="/1">one</a><a href="\x8d">two</a>', "text/html; charset=windows-1252"),
        (b'<a href="/t"><template>in</template>out<!--c--><?pi?></a>', "text/html"),
        (b'<a href="/r"><ruby>k<rt>reading</rt><rp>(</rp></ruby></a>', "text/html"),
        (b"<a href=/o><template><a href=/i>inner</a></template></a>", "text/html"),
        (b"<template><a href=/kept>kept</a></template><title>t</title>", "text/html"),
        (b"<a href=/x><script>s</script><style>c</style>shown</a>", "text/html"),
        ("\ufeff<title>é</title>".encode("utf-16-le"), "text/html; charset=latin-1"),
        (b'<meta charset="\x01bad"><title>x</title>', "text/html"),
        # deeper than libxml2 builds trees: BeautifulSoup reads on from its events
        (b"<a href=/b>b</a>" + b"<font>" * 300 + b"<a href=/deep>d</a>", "text/html"),
        (b"<a href=/b>b</a>" + b"<span>" * 3000 + b"</span>" * 3000 + b"<a href=/a>", "text/html"),
    ],
)
def test_edges(body, content_type):
    assert_agree(body, content_type)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_generated_html(document):
    assert_agree(*document)
