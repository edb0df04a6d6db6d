"""The fast parser (`--parser lxml`): lxml.html's tree, walked for the tags the crawler reads.

It finds what the BeautifulSoup path finds, rule for rule: the same encodings tried in the
same order with the same libxml2 parser, text joined the way `get_text(" ")` joins it, and the
strings BeautifulSoup files apart (inside script, style, template, rt or rp below a tag it
keeps) left out as it leaves them out. The tree is built in C and never becomes Python
objects except for the few elements read, which is where the speed comes from. Where
libxml2's tree builder stops short of its own events (nesting deeper than it builds, a
conversion error), the page is BeautifulSoup's to read.
"""

from __future__ import annotations

from lxml import etree

from crawler.parse import soup
from crawler.parse.charset import candidates
from crawler.parse.findings import Anchor, Findings, collapse, rel_tokens

_WANTED = ("a", "area", "base", "title", "meta", "link")  # what the BeautifulSoup path keeps
# Tags whose strings BeautifulSoup gives their own class, which get_text() leaves out.
_APART = ("script", "style", "template", "rt", "rp")
_APART_SET = frozenset(_APART)
_WANTED_SET = frozenset(_WANTED)
_DEEPEST = 250  # libxml2 builds trees 256 elements deep at most (without XML_PARSE_HUGE)


class Unreadable(ValueError):
    """No candidate encoding let libxml2 read the page."""


def find(body: bytes, content_type: str | None) -> Findings:
    markup, encodings = candidates(body, content_type)
    rejected = []
    for encoding in encodings:
        try:
            root = _tree(markup, encoding)
        except (UnicodeDecodeError, LookupError, etree.ParserError) as exc:
            rejected.append(f"{encoding}: {exc}")
            continue
        except etree.XMLSyntaxError:  # a conversion error halfway: see _cut_short
            return soup.find(body, content_type)
        if root is not None and _cut_short(root):
            return soup.find(body, content_type)
        return _found(root, encoding)
    raise Unreadable("no encoding could read the page (" + "; ".join(rejected) + ")")


def _tree(markup: bytes, encoding: str):
    """The page's root element, or None for an empty page. Fed whole, then closed, as
    BeautifulSoup feeds lxml."""
    parser = etree.HTMLParser(recover=True, encoding=encoding)  # may not know the name
    parser.feed(markup)
    return parser.close()


def _cut_short(root) -> bool:
    """Whether libxml2 stopped building the tree at its depth limit (hundreds of unclosed
    <font> or <span> tags): it stops silently there, while BeautifulSoup, fed the parser's
    events instead, reads on. Parsing halts with every element open, so the chain of last
    children is then that deep; a page that deep is rare, and BeautifulSoup reads it the same.
    A conversion error (an undefined windows-1252 byte) is handed over the same way."""
    depth, element = 0, root
    while len(element):
        element = element[-1]
        depth += 1
    return depth >= _DEEPEST


def _found(root, encoding: str) -> Findings:
    found = Findings(charset=encoding)
    if root is None:  # an empty page
        return found
    for element in _wanted(root):
        tag, attrib = element.tag, element.attrib
        if tag == "a" or tag == "area":
            href = attrib.get("href")
            if href is not None:
                text = _text(element) if tag == "a" else attrib.get("alt") or ""
                found.anchors.append(Anchor(href, text, rel_tokens(attrib.get("rel"))))
        elif tag == "title":
            if found.title is None:
                found.title = _text(element)
        elif tag == "base":
            if found.base_href is None and "href" in attrib:
                found.base_href = attrib["href"]
        elif tag == "meta":
            name, content = attrib.get("name"), attrib.get("content")
            if name is not None and content is not None and name.strip().lower() == "robots":
                found.robots.append(content)
        elif (  # a <link>
            found.canonical_href is None
            and "href" in attrib
            and "canonical" in rel_tokens(attrib.get("rel"))
        ):
            found.canonical_href = attrib["href"]
    return found


def _wanted(root):
    """The tags BeautifulSoup keeps, in document order. Markup after `</html>` makes libxml2
    start a second root element beside the first: its tags count too."""
    for top in (root, *root.itersiblings()):
        if isinstance(top.tag, str):  # not a comment or processing instruction
            yield from top.iter(_WANTED)


def _text(element) -> str:
    """get_text(" ") collapsed, as the BeautifulSoup path reads it. Fast path: no tag that
    files strings apart in or above the element; lxml's itertext skips comments, as it does."""
    if _apart_above(element):
        return ""
    if next(element.iter(_APART), None) is None:
        return collapse(" ".join(element.itertext()))
    pieces: list[str] = []
    _strings(element, pieces)
    return collapse(" ".join(pieces))


def _apart_above(element) -> bool:
    """Whether a script/style/template/rt/rp lies between the element and the outermost tag
    BeautifulSoup keeps above it: strings there are filed apart. Above the kept tags nothing
    is built, so nothing there counts."""
    if next(element.iterancestors(_WANTED), None) is None:
        return False
    apart = False
    for ancestor in element.iterancestors():
        if ancestor.tag in _WANTED_SET:
            if apart:
                return True
        elif ancestor.tag in _APART_SET:
            apart = True
    return False


def _strings(element, pieces: list[str]) -> None:
    """The element's own strings, skipping what lies in a tag that files strings apart."""
    if element.text:
        pieces.append(element.text)
    for child in element:
        if isinstance(child.tag, str) and child.tag not in _APART_SET:
            _strings(child, pieces)
        if child.tail:  # a comment's or apart tag's tail is the parent's string
            pieces.append(child.tail)
