"""URL resolution and the canonical form used for dedup."""

from __future__ import annotations

import pytest

from crawler.urls import BadURL, Scope, canonicalize, resolve


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("HTTP://Example.COM/", "http://example.com/"),
        ("http://example.com", "http://example.com/"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:8080/a", "http://example.com:8080/a"),
        ("http://example.com/a#frag", "http://example.com/a"),
        ("http://example.com/%7euser/%41", "http://example.com/~user/A"),
        ("http://example.com/a%2fb%3f", "http://example.com/a%2Fb%3F"),
        ("http://example.com/a/./b/../c", "http://example.com/a/c"),
        ("http://example.com/?b=2&a=1", "http://example.com/?b=2&a=1"),
        ("http://example.com/a b", "http://example.com/a%20b"),
    ],
)
def test_canonical_form(url, canonical):
    assert canonicalize(url) == canonical
    assert canonicalize(canonical) == canonical  # idempotent


@pytest.mark.parametrize("url", ["ftp://example.com/", "mailto:a@b.c", "not a url", "http://"])
def test_uncrawlable_urls_are_rejected(url):
    with pytest.raises(BadURL):
        canonicalize(url)


@pytest.mark.parametrize(
    ("href", "base", "expected"),
    [
        ("b.html", "http://h/a/index.html", "http://h/a/b.html"),
        ("../b.html", "http://h/a/c/index.html", "http://h/a/b.html"),
        ("/b.html", "http://h/a/index.html", "http://h/b.html"),
        ("//other/x", "https://h/", "https://other/x"),
        ("?q=1", "http://h/a/b?x=2", "http://h/a/b?q=1"),
        ("#top", "http://h/a", "http://h/a"),
        ("  b.html  ", "http://h/", "http://h/b.html"),
        ("mailto:someone@h", "http://h/", None),
        ("javascript:void(0)", "http://h/", None),
        ("http://[::1", "http://h/", None),
    ],
)
def test_resolve(href, base, expected):
    assert resolve(href, base) == expected


def test_scope_is_seed_origins_plus_allowed_hosts():
    scope = Scope.for_seeds(["http://127.0.0.1:8000/"], ["docs.example"])
    assert "http://127.0.0.1:8000/any/page" in scope
    assert "https://127.0.0.1:8000/" not in scope
    assert "http://127.0.0.1:8001/" not in scope
    assert "http://127.0.0.2:8000/" not in scope
    assert "https://docs.example:8443/x" in scope


@pytest.mark.parametrize(
    ("text", "host"),
    [
        ("Docs.Example.ORG", "docs.example.org"),
        ("bücher.de.", "xn--bcher-kva.de"),
        (" 127.0.0.2 ", "127.0.0.2"),
    ],
)
def test_allowed_hosts_are_normalised_like_urls(text, host):
    from crawler.urls import normalize_host

    assert normalize_host(text) == host
    assert f"https://{host}/x" in Scope.for_seeds(["http://a.test/"], [text])


@pytest.mark.parametrize("text", ["http://a.test", "a.test:8080", "a.test/path", "", "a b"])
def test_allowed_host_must_be_a_bare_host(text):
    from crawler.urls import normalize_host

    with pytest.raises(BadURL):
        normalize_host(text)
