"""parse_page: title, links in order, base href, nofollow, charsets."""

from __future__ import annotations

import pytest

from crawler.parse import parse_page

HTML = {"content-type": "text/html"}


def test_links_resolved_against_base_href_in_document_order():
    body = b"""<html><head><title> My   page </title><base href="/docs/"></head>
    <body><a href="a.html#x">A</a> <a href="/b.html">B</a>
    <map><area href="c.html" alt="C"></map><a href="mailto:x@y">mail</a><a>no href</a></body>"""
    page = parse_page("http://h/other/page.html", body, HTML)
    assert page.title == "My page"
    assert [link.url for link in page.links] == [
        "http://h/docs/a.html",
        "http://h/b.html",
        "http://h/docs/c.html",
    ]
    assert [link.anchor_text for link in page.links] == ["A", "B", "C"]


def test_rel_nofollow_and_meta_robots_nofollow():
    page = parse_page("http://h/", b'<a rel="nofollow ugc" href="/n">n</a><a href="/y">y</a>', HTML)
    assert [(link.url, link.nofollow) for link in page.links] == [
        ("http://h/n", True),
        ("http://h/y", False),
    ]
    meta = b'<meta name="ROBOTS" content="noindex, nofollow"><a href="/y">y</a>'
    page = parse_page("http://h/", meta, HTML)
    assert page.meta_nofollow and page.links[0].nofollow


def test_canonical_link():
    page = parse_page("http://h/a?x=1", b'<link rel="canonical" href="/a">', HTML)
    assert page.canonical == "http://h/a"


def test_charset_from_header():
    body = "<title>Café crème</title>".encode("iso-8859-1")
    page = parse_page("http://h/", body, {"content-type": "text/html; charset=ISO-8859-1"})
    assert page.title == "Café crème"


def test_charset_from_meta():
    body = '<meta charset="windows-1252"><title>€ “quoted”</title>'.encode("cp1252")
    assert parse_page("http://h/", body, HTML).title == "€ “quoted”"


def test_bom_beats_a_wrong_header():
    body = "\ufeff<title>é</title>".encode()
    assert (
        parse_page("http://h/", body, {"content-type": "text/html; charset=latin-1"}).title == "é"
    )


def test_garbage_does_not_raise():
    for body in (b"", b"\x00\xff\xfe<<<a href=", b"<a href='\x80\x81'>", bytes(range(256)) * 10):
        parse_page("http://h/", body, HTML)


def test_iso_8859_1_is_read_as_windows_1252_as_browsers_do():
    body = "<title>“quoted” Café</title>".encode("cp1252")
    page = parse_page("http://h/", body, {"content-type": "text/html; charset=ISO-8859-1"})
    assert page.title == "“quoted” Café"


def test_meta_claiming_utf16_on_an_ascii_page_is_read_as_utf8():
    body = b'<meta charset="utf-16"><title>T</title><a href="/x">x</a>'
    page = parse_page("http://h/", body, HTML)
    assert page.title == "T" and [link.url for link in page.links] == ["http://h/x"]


def test_http_equiv_content_type_meta():
    body = (
        '<meta http-equiv="Content-Type" content="text/html; charset=koi8-r"><title>Привет</title>'
    )
    assert parse_page("http://h/", body.encode("koi8-r"), HTML).title == "Привет"


@pytest.mark.filterwarnings("ignore::bs4.XMLParsedAsHTMLWarning")  # the <?xml case
def test_charset_labels_with_nul_or_control_characters_do_not_raise():
    """Found by tests/test_properties.py: codecs.lookup raises ValueError on a NUL, and
    BeautifulSoup's own prescan handed lxml a label it rejects with ValueError."""
    body = b"<title>T</title><a href=/x>x</a>"
    for content_type in ("text/html; charset=\x00", "text/html; charset=utf-8\x00"):
        assert parse_page("http://h/", body, {"content-type": content_type}).title == "T"
    for declaration in (b'<meta charset="\x00">', b'<?xml version="1.0" encoding="utf\x01-8"?>'):
        page = parse_page("http://h/", declaration + body, HTML)
        assert page.title == "T" and [link.url for link in page.links] == ["http://h/x"]


def test_links_are_resolved_as_browsers_do_then_canonicalised():
    body = "<base href='/d/#frag'><a href='\u00a0x'>x</a><a href='%7e/y#z'>y</a>".encode()
    page = parse_page("http://h/", body, HTML)
    assert [link.url for link in page.links] == ["http://h/d/%C2%A0x", "http://h/d/~/y"]


def test_a_bad_label_behind_a_failing_declared_charset_does_not_crash():
    """Found by hypothesis: the declared charset (base64, a codec but no text encoding) fails,
    BeautifulSoup falls back to its own prescan, which finds a control character."""
    page = parse_page("http://h/", b'<meta charset="\x1f"><a><meta charset="base64">', {})
    assert page.links == ()


def test_a_codec_that_is_no_text_encoding_is_not_a_charset():
    page = parse_page("http://h/", b'<meta charset="base64"><title>caf\xc3\xa9</title>', {})
    assert page.charset != "base64_codec" and page.title == "café"
