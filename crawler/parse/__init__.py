"""Turning an HTML body into what the crawler keeps: title, canonical link, and links.

Two parsers find the same things: BeautifulSoup (the default, `soup`) and lxml.html directly
(`tree`, several times faster). Each only finds; `findings.build` resolves and decides, so
both give the same ParsedPage, as a test over the fixture corpus and generated HTML shows.
Neither raises on a body: bad markup and undecodable bytes give a page with what could be
read (a body no encoding can read raises, and the fetch row says so).
"""

from __future__ import annotations

from collections.abc import Mapping

from crawler.model import PARSERS, ParsedPage
from crawler.parse import soup, tree
from crawler.parse.findings import build

_FINDERS = dict(zip(PARSERS, (soup.find, tree.find), strict=True))
__all__ = ["PARSERS", "is_html", "media_type", "parse_page"]
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


def media_type(content_type: str | None) -> str:
    """`text/html; charset=x` → `text/html`."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_html(content_type: str | None) -> bool:
    return media_type(content_type) in HTML_TYPES


def parse_page(
    url: str, body: bytes, headers: Mapping[str, str], parser: str = PARSERS[0]
) -> ParsedPage:
    """Links in document order, resolved against `<base href>` (or the page URL), with
    `rel=nofollow` and `<meta name=robots content=nofollow>` marked so the frontier skips them."""
    content_type = headers.get("content-type") or headers.get("Content-Type")
    return build(url, body, _FINDERS[parser](body, content_type))
