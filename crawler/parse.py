"""Turning an HTML body into what the crawler keeps: title, canonical link, and links.

The only module that imports BeautifulSoup. It never raises on a body: bad markup and
undecodable bytes give a page with what could be read.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from collections.abc import Mapping

from bs4 import BeautifulSoup, SoupStrainer
from bs4.dammit import EncodingDetector

from crawler.model import Link, ParsedPage
from crawler.urls import resolve, resolve_link

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})

# Only the tags we read are built into the tree; the rest of the page is skipped by the parser.
_WANTED = SoupStrainer(["a", "area", "base", "title", "meta", "link"])
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_SPACE = re.compile(r"\s+")


def media_type(content_type: str | None) -> str:
    """`text/html; charset=x` → `text/html`."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_html(content_type: str | None) -> bool:
    return media_type(content_type) in HTML_TYPES


# Labels that browsers (the WHATWG Encoding Standard) decode with another codec than the one
# Python gives that name: a page labelled ISO-8859-1 is really read as windows-1252.
_WHATWG_CODECS = {
    "ascii": "cp1252",
    "iso8859-1": "cp1252",
    "iso8859-9": "cp1254",
    "iso8859-11": "cp874",
    "tis-620": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
}
_META_CHARSET = re.compile(rb"<meta[^>]*?charset\s*=\s*[\"']?\s*([-\w.:]+)", re.IGNORECASE)


def _codec(label: str) -> str | None:
    """The Python codec a browser would use for a charset label; None if unknown."""
    try:
        info = codecs.lookup(label.strip().strip("\"'").lower())
    except (LookupError, ValueError):  # ValueError: a NUL in the label
        return None
    if not getattr(info, "_is_text_encoding", True):  # base64, zlib, rot13: not charsets
        return None
    return _WHATWG_CODECS.get(info.name, info.name)


def header_charset(content_type: str | None) -> str | None:
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return _codec(value)
    return None


def meta_charset(body: bytes) -> str | None:
    """The charset a `<meta>` in the first 1024 bytes declares (the HTML prescan). A page
    that can say so in ASCII is not UTF-16 or UTF-32, whatever it claims: read it as UTF-8."""
    match = _META_CHARSET.search(body[:1024])
    if not match:
        return None
    codec = _codec(match.group(1).decode("ascii", "replace"))
    if codec and codec.startswith(("utf-16", "utf-32")):
        return "utf-8"
    return codec


def _declared_encoding(body: bytes, content_type: str | None) -> str | None:
    """Byte-order mark first (it beats the header, as in browsers), then the header charset,
    then `<meta charset>`. With none, BeautifulSoup detects the encoding."""
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return encoding
    return header_charset(content_type) or meta_charset(body)


def _unusable_declarations(body: bytes) -> list[str]:
    """The charset BeautifulSoup's own prescan finds, if no codec has that name. It hands the
    raw label to lxml, which raises ValueError (not LookupError, so no fallback) on a NUL or
    control character in it."""
    label = EncodingDetector.find_declared_encoding(body, is_html=True)
    if label is None or (label.isprintable() and _codec(label) is not None):
        return []
    return [label]


def _text(node) -> str:
    return _SPACE.sub(" ", node.get_text(" ")).strip()


def _rel_tokens(tag) -> list[str]:
    rel = tag.get("rel") or []
    if isinstance(rel, str):
        rel = rel.split()
    return [token.lower() for token in rel]


def parse_page(url: str, body: bytes, headers: Mapping[str, str]) -> ParsedPage:
    """Links in document order, resolved against `<base href>` (or the page URL), with
    `rel=nofollow` and `<meta name=robots content=nofollow>` marked so the frontier skips them."""
    content_type = headers.get("content-type") or headers.get("Content-Type")
    declared = _declared_encoding(body, content_type)
    soup = BeautifulSoup(
        body,
        "lxml",
        parse_only=_WANTED,
        from_encoding=declared,
        # even with a declared charset: if it fails, BeautifulSoup falls back to its own scan
        exclude_encodings=_unusable_declarations(body),
    )
    base = url
    base_tag = soup.find("base", href=True)
    if base_tag is not None:
        base = resolve(base_tag["href"], url) or url

    meta_nofollow = False
    for meta in soup.find_all("meta", attrs={"name": True, "content": True}):
        if meta["name"].strip().lower() in ("robots",):
            directives = {d.strip().lower() for d in meta["content"].split(",")}
            meta_nofollow = meta_nofollow or bool(directives & {"nofollow", "none"})

    canonical = None
    for tag in soup.find_all("link", href=True):
        if "canonical" in _rel_tokens(tag):
            canonical = resolve_link(tag["href"], base)
            break

    links = []
    for tag in soup.find_all(["a", "area"], href=True):
        target = resolve_link(tag["href"], base)
        if target is None:
            continue
        rel = _rel_tokens(tag)
        links.append(
            Link(
                url=target,
                anchor_text=_text(tag)[:500] if tag.name == "a" else (tag.get("alt") or "")[:500],
                rel=" ".join(rel),
                nofollow=meta_nofollow or "nofollow" in rel,
            )
        )

    title_tag = soup.find("title")
    title = _text(title_tag)[:1000] if title_tag is not None else None
    return ParsedPage(
        title=title or None,
        canonical=canonical,
        charset=soup.original_encoding,
        content_hash=hashlib.sha256(body).hexdigest(),
        meta_nofollow=meta_nofollow,
        links=tuple(links),
    )
