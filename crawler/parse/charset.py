"""Which charset a page is read in: the byte-order mark, then the header, then `<meta>`, then
detection. Both parsers take their candidates from here, so they read a page alike."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator

from bs4.dammit import EncodingDetector

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

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


def declared_encoding(body: bytes, content_type: str | None) -> str | None:
    """Byte-order mark first (it beats the header, as in browsers), then the header charset,
    then `<meta charset>`. With none, the page's encoding is detected."""
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return encoding
    return header_charset(content_type) or meta_charset(body)


def unusable_declarations(body: bytes) -> list[str]:
    """The charset BeautifulSoup's own prescan finds, if no codec has that name. It would hand
    the raw label to lxml, which raises ValueError (not LookupError, so no fallback) on a NUL
    or control character in it."""
    label = EncodingDetector.find_declared_encoding(body, is_html=True)
    if label is None or (label.isprintable() and _codec(label) is not None):
        return []
    return [label]


def candidates(body: bytes, content_type: str | None) -> tuple[bytes, Iterator[str]]:
    """The body without its byte-order mark, and the encodings to try in turn, lazily (the
    detector runs only if every declared one fails). The same order BeautifulSoup tries them
    in when it hands the bytes to lxml."""
    declared = declared_encoding(body, content_type)
    detector = EncodingDetector(
        body,
        known_definite_encodings=[declared] if declared else [],
        is_html=True,
        # even with a declared charset: if it fails, the detector's own scan comes next
        exclude_encodings=unusable_declarations(body),
    )
    return detector.markup, detector.encodings
