"""What a parser found on a page, before any URL is resolved, and the one function that turns
it into the ParsedPage the crawler keeps. Each parser only finds; the rules live here once."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from crawler.model import Link, ParsedPage
from crawler.urls import resolve, resolve_link

_SPACE = re.compile(r"\s+")
_TOKENS = re.compile(r"\S+")  # how BeautifulSoup splits a multi-valued attribute such as rel


def collapse(text: str) -> str:
    """Runs of whitespace as one space, ends stripped: how a title or anchor text is kept."""
    return _SPACE.sub(" ", text).strip()


def rel_tokens(rel: str | list[str] | None) -> list[str]:
    if rel is None:
        return []
    if isinstance(rel, str):
        rel = _TOKENS.findall(rel)
    return [token.lower() for token in rel]


@dataclass(slots=True)
class Anchor:
    """An `<a href>` or `<area href>` as found: its text (an area's alt), its rel tokens."""

    href: str
    text: str
    rel: list[str]


@dataclass(slots=True)
class Findings:
    """The elements the crawler reads, in document order, with text already collapsed."""

    charset: str | None
    title: str | None = None  # the first <title>'s text; None without one
    base_href: str | None = None  # the first <base href>
    robots: list[str] = field(default_factory=list)  # each <meta name=robots>'s content
    canonical_href: str | None = None  # the first <link rel=canonical href>
    anchors: list[Anchor] = field(default_factory=list)


def build(url: str, body: bytes, found: Findings) -> ParsedPage:
    """Links resolved against `<base href>` (or the page URL), with `rel=nofollow` and
    `<meta name=robots content=nofollow>` marked so the frontier skips them."""
    base = url
    if found.base_href is not None:
        base = resolve(found.base_href, url) or url
    meta_nofollow = any(
        {d.strip().lower() for d in content.split(",")} & {"nofollow", "none"}
        for content in found.robots
    )
    canonical = None
    if found.canonical_href is not None:
        canonical = resolve_link(found.canonical_href, base)
    links = []
    for anchor in found.anchors:
        target = resolve_link(anchor.href, base)
        if target is None:
            continue
        links.append(
            Link(
                url=target,
                anchor_text=anchor.text[:500],
                rel=" ".join(anchor.rel),
                nofollow=meta_nofollow or "nofollow" in anchor.rel,
            )
        )
    return ParsedPage(
        title=found.title[:1000] or None if found.title is not None else None,
        canonical=canonical,
        charset=found.charset,
        content_hash=hashlib.sha256(body).hexdigest(),
        meta_nofollow=meta_nofollow,
        links=tuple(links),
    )
