"""The default parser: BeautifulSoup over lxml, building only the tags the crawler reads."""

from __future__ import annotations

import warnings

from bs4 import BeautifulSoup, SoupStrainer, XMLParsedAsHTMLWarning

from crawler.parse.charset import declared_encoding, unusable_declarations
from crawler.parse.findings import Anchor, Findings, collapse, rel_tokens

# Only the tags we read are built into the tree; the rest of the page is skipped by the parser.
_WANTED = SoupStrainer(["a", "area", "base", "title", "meta", "link"])


def find(body: bytes, content_type: str | None) -> Findings:
    with warnings.catch_warnings():
        # XHTML (the PostgreSQL manual is) served as text/html is read as HTML, as browsers do
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        soup = BeautifulSoup(
            body,
            "lxml",
            parse_only=_WANTED,
            from_encoding=declared_encoding(body, content_type),
            # even with a declared charset: if it fails, BeautifulSoup falls back to its scan
            exclude_encodings=unusable_declarations(body),
        )
    found = Findings(charset=soup.original_encoding)
    base_tag = soup.find("base", href=True)
    if base_tag is not None:
        found.base_href = base_tag["href"]
    for meta in soup.find_all("meta", attrs={"name": True, "content": True}):
        if meta["name"].strip().lower() == "robots":
            found.robots.append(meta["content"])
    for tag in soup.find_all("link", href=True):
        if "canonical" in rel_tokens(tag.get("rel")):
            found.canonical_href = tag["href"]
            break
    for tag in soup.find_all(["a", "area"], href=True):
        text = collapse(tag.get_text(" ")) if tag.name == "a" else tag.get("alt") or ""
        found.anchors.append(Anchor(tag["href"], text, rel_tokens(tag.get("rel"))))
    title_tag = soup.find("title")
    if title_tag is not None:
        found.title = collapse(title_tag.get_text(" "))
    return found
