"""Properties over generated input: the canonical form is a fixed point, and neither URL
resolution nor page parsing raises on anything a server or a page can send."""

from __future__ import annotations

import codecs

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crawler.parse import parse_page
from crawler.urls import BadURL, canonicalize, resolve, resolve_link

# Generated pages often open with `<?xml`; BeautifulSoup's advice to use an XML parser is noise.
pytestmark = pytest.mark.filterwarnings("ignore::bs4.XMLParsedAsHTMLWarning")

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any code point, lone surrogates included: a Python str can hold them though no URL can.
any_text = st.text(st.characters(exclude_categories=()), max_size=80)

_ESCAPE = st.builds(
    lambda byte, upper: f"%{byte:02X}" if upper else f"%{byte:02x}",
    st.integers(0, 255),
    st.booleans(),
)
# Bits of a URL that parsers treat specially, and text from all over Unicode.
_PIECE = st.one_of(
    _ESCAPE,
    st.sampled_from(["%", "%2", "%zz", ".", "..", "%2e", "%2E%2e", "/", "\\", " ", "\t", "\n"]),
    st.sampled_from(["?", "#", "&", "=", "@", ":", ";", "[", "]", "'", '"', "<", ">", "`", "{"]),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=6),
    st.text("abcxyzABC019-._~", min_size=1, max_size=6),
)
_parts = st.lists(_PIECE, max_size=8).map("".join)

_label = st.one_of(
    st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8),
    st.sampled_from(["xn--bcher-kva", "xn--", "EXAMPLE", "bücher", "ß", "0x7f", "123", "％４１"]),
)
_host = st.one_of(
    st.lists(_label, min_size=1, max_size=4).map(".".join),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda ip: f"[{ip}]"),
    st.integers(0, 2**32 - 1).map(str),
)
_port = st.one_of(st.just(""), st.integers(0, 70000).map(lambda p: f":{p}"), st.just(":"))
_userinfo = st.one_of(st.just(""), st.tuples(_parts, _parts).map(lambda t: f"{t[0]}:{t[1]}@"))
_path = st.lists(
    st.one_of(_parts, st.sampled_from(["", ".", "..", "%2e", "%2E%2E", ".%2e"])), max_size=8
).map(lambda segments: "/" + "/".join(segments))

http_urls = st.builds(
    lambda scheme, slashes, userinfo, host, port, path, query, fragment: (
        f"{scheme}:{slashes}{userinfo}{host}{port}{path}{query}{fragment}"
    ),
    st.sampled_from(["http", "https", "HTTP", "hTTpS"]),
    st.sampled_from(["//", "//", "//", "\\\\", "/", ""]),
    _userinfo,
    _host,
    _port,
    _path,
    st.one_of(st.just(""), _parts.map(lambda q: "?" + q)),
    st.one_of(st.just(""), _parts.map(lambda f: "#" + f)),
)
hrefs = st.one_of(any_text, _parts, _path, http_urls)


@SETTINGS
@given(http_urls)
def test_canonicalize_is_idempotent_and_raises_only_badurl(url):
    try:
        canonical = canonicalize(url)
    except BadURL:
        return
    assert canonicalize(canonical) == canonical


@SETTINGS
@given(hrefs, st.one_of(http_urls, any_text, st.none()))
def test_resolve_never_raises_and_gives_a_parsed_href(href, base):
    resolved = resolve(href, base)
    if resolved is not None:
        assert resolved.startswith(("http://", "https://"))
        assert resolve(resolved, None) == resolved  # a WHATWG href parses to itself


@SETTINGS
@given(hrefs, st.one_of(http_urls, any_text))
def test_resolve_link_never_raises_and_gives_a_canonical_url(href, base):
    link = resolve_link(href, base)
    if link is not None:
        assert canonicalize(link) == link


# ----- parse_page -----

# Real labels, Python codecs that are no text encoding, and labels no codec has.
_LABELS = [
    *["utf-8", "UTF8", "utf-16", "utf-16le", "utf-16be", "utf-32", "utf-7", "latin1"],
    *["iso-8859-1", "ISO-8859-15", "windows-1252", "cp1251", "koi8-r", "shift_jis", "euc-jp"],
    *["gb2312", "gbk", "big5", "iso-2022-jp", "ascii", "x-user-defined", "replacement"],
    *["base64", "rot13", "hex", "zlib", "bz2", "uu", "quopri", "idna", "punycode", "undefined"],
    *["unicode_escape", "raw_unicode_escape", "mbcs", "bogus", "", "utf-8\x00", "\x00"],
    *["utf\x01-8", " utf-8 ", '"utf-8"', "'latin1'", "utf-8;x", "é"],
]
charset_labels = st.one_of(st.sampled_from(_LABELS), any_text)
_codecs_to_write = st.sampled_from(
    ["utf-8", "utf-16-le", "utf-16-be", "cp1252", "latin-1", "koi8-r", "shift_jis", "gb18030"]
)
_BOMS = [b"", codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE]
_TAGS = [
    *["a", "area", "base", "link", "meta", "title", "div", "script", "style", "html", "head"],
    *["body", "svg", "math", "template", "noscript", "textarea", "table", "br", "A", "TITLE"],
]
_ATTRS = ["href", "rel", "name", "content", "charset", "http-equiv", "alt", "HREF", "x"]
_attr_values = st.one_of(
    hrefs,
    charset_labels,
    st.sampled_from(["nofollow", "canonical", "robots", "none, nofollow", "Content-Type"]),
    st.sampled_from(["text/html; charset=koi8-r", "text/html; charset=\x00"]),
)
_attribute = st.builds(
    lambda name, value, quote: f" {name}={quote}{value}{quote}",
    st.sampled_from(_ATTRS),
    _attr_values,
    st.sampled_from(['"', "'", ""]),
) | st.sampled_from([" href", " rel=nofollow", " /", " ="])
_element = st.one_of(
    st.builds(
        lambda tag, attrs, text, close: f"<{tag}{''.join(attrs)}>{text}" + (f"</{tag}>" * close),
        st.sampled_from(_TAGS),
        st.lists(_attribute, max_size=4),
        any_text,
        st.booleans(),
    ),
    charset_labels.map(lambda label: f'<meta charset="{label}">'),
    charset_labels.map(lambda label: f'<?xml version="1.0" encoding="{label}"?>'),
    st.sampled_from(["<!--", "-->", "<!DOCTYPE html>", "<![CDATA[", "]]>", "&amp;", "&#0;"]),
    st.sampled_from(["&#x110000;", "&#xD800;", "<", ">", "</", "\x00", "\r\n"]),
    any_text,
)


@st.composite
def html_bodies(draw) -> bytes:
    text = "".join(draw(st.lists(_element, max_size=12)))
    codec = draw(_codecs_to_write)
    # Lone surrogates go through as UTF-8/16 bytes that no decoder accepts.
    encoded = text.encode(codec, errors="surrogatepass" if codec.startswith("utf") else "replace")
    noise = draw(st.binary(max_size=16))
    return draw(st.sampled_from(_BOMS)) + encoded + noise


content_types = st.one_of(
    st.none(),
    st.sampled_from(["text/html", "application/xhtml+xml", "text/plain", ""]),
    charset_labels.map(lambda label: f"text/html; charset={label}"),
    charset_labels.map(lambda label: f'text/html;charset="{label}"; charset=utf-8'),
    any_text,
)


def _headers(content_type: str | None) -> dict[str, str]:
    return {} if content_type is None else {"content-type": content_type}


@SETTINGS
@given(st.binary(max_size=2000), content_types)
def test_parse_page_never_raises_on_bytes(body, content_type):
    parse_page("http://h/dir/page.html", body, _headers(content_type))


@settings(SETTINGS, max_examples=600)
@given(html_bodies(), content_types, st.one_of(http_urls, st.just("http://h/")))
def test_parse_page_never_raises_on_html(body, content_type, url):
    page = parse_page(url, body, _headers(content_type))
    for link in page.links:
        assert canonicalize(link.url) == link.url
