"""URL resolution and the canonical form used for dedup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawler.urls import (
    MAX_PATH_SEGMENTS,
    MAX_URL_LENGTH,
    BadURL,
    Scope,
    canonicalize,
    has_repeated_segments,
    resolve,
    resolve_link,
    trap_reason,
)


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
        ("http://example.com/100%?q=%zz", "http://example.com/100%25?q=%25zz"),
        ("http://example.com/%%33%30", "http://example.com/%2530"),  # not a new escape %30
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
        ("#top", "http://h/a", "http://h/a#top"),
        ("  b.html  ", "http://h/", "http://h/b.html"),
        ("%7euser/%41", "http://H:80/", "http://h/%7euser/%41"),
        ("\u00a0b.html", "http://h/", "http://h/%C2%A0b.html"),  # not whitespace to WHATWG
        ("HTTP://h/x", None, "http://h/x"),
        ("mailto:someone@h", "http://h/", None),
        ("javascript:void(0)", "http://h/", None),
        ("http://[::1", "http://h/", None),
        ("b.html", "not a url", None),
        ("\ud800", "http://h/", None),
    ],
)
def test_resolve_gives_the_whatwg_href_of_http_urls(href, base, expected):
    assert resolve(href, base) == expected


@pytest.mark.parametrize(
    ("href", "base", "expected"),
    [
        ("b.html", "http://h/a/index.html", "http://h/a/b.html"),
        ("#top", "http://h/a", "http://h/a"),
        ("  b.html  ", "http://h/", "http://h/b.html"),
        ("%7euser/%41?%7e", "http://H:80/", "http://h/~user/A?~"),
        ("mailto:someone@h", "http://h/", None),
        ("http://[::1", "http://h/", None),
        ("/" + "x" * MAX_URL_LENGTH, "http://h/", None),
    ],
)
def test_resolve_link_gives_the_canonical_form(href, base, expected):
    assert resolve_link(href, base) == expected


# WHATWG conformance: web-platform-tests' urltestdata.json, shared by the team, never copied in.
URLTESTDATA = Path(__file__).resolve().parents[2] / "shared/conformance/urltestdata.json"
if not URLTESTDATA.is_file():
    raise FileNotFoundError(f"WHATWG URL test data missing: {URLTESTDATA}")
_URL_CASES = [
    (index, case)
    for index, case in enumerate(json.loads(URLTESTDATA.read_text(encoding="utf-8")))
    if isinstance(case, dict)  # strings are comments
]


def _is_http(url: str | None) -> bool:
    return url is not None and url.split(":", 1)[0] in ("http", "https")


def _cases(keep) -> list:
    return [
        pytest.param(case["input"], case["base"], case.get("href"), id=f"case{index}")
        for index, case in _URL_CASES
        if keep(case)
    ]


HTTP_BASE_HREF = _cases(lambda c: _is_http(c["base"]) and _is_http(c.get("href")))
# Valid URLs a crawler cannot fetch, e.g. `mailto:/example.com/` against an http base.
HTTP_BASE_OTHER_SCHEME = _cases(
    lambda c: _is_http(c["base"]) and "href" in c and not _is_http(c["href"])
)
HTTP_BASE_FAILURE = _cases(lambda c: _is_http(c["base"]) and c.get("failure"))
NULL_BASE_HREF = _cases(lambda c: c["base"] is None and _is_http(c.get("href")))


def test_conformance_data_is_complete():
    """The counts the conformance README states: a truncated file must not pass quietly."""
    assert len(_URL_CASES) == 891
    assert len(HTTP_BASE_HREF) + len(HTTP_BASE_OTHER_SCHEME) == 150
    assert len(HTTP_BASE_FAILURE) == 52
    assert len(NULL_BASE_HREF) == 133


@pytest.mark.parametrize(("href", "base", "expected"), HTTP_BASE_HREF)
def test_whatwg_http_base(href, base, expected):
    assert resolve(href, base) == expected


@pytest.mark.parametrize(("href", "base", "expected"), HTTP_BASE_OTHER_SCHEME)
def test_whatwg_http_base_other_scheme_is_rejected(href, base, expected):
    """WHATWG parses these (to `expected`), but a crawler cannot fetch them: None."""
    assert resolve(href, base) is None


@pytest.mark.parametrize(("href", "base", "expected"), HTTP_BASE_FAILURE)
def test_whatwg_http_base_failure(href, base, expected):
    assert resolve(href, base) is None


@pytest.mark.parametrize(("href", "base", "expected"), NULL_BASE_HREF)
def test_whatwg_absolute(href, base, expected):
    assert resolve(href, None) == expected


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


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://h/", None),
        ("http://h/a/b/c/", None),
        ("http://h/a/b/a/b/a/b/", None),
        ("http://h/2024/01/01/01/", None),
        ("http://h/a/b/a/b/a/b/a/b", "path repeats segment 'a' 4 times"),
        ("http://h/x/x/x/x/", "path repeats segment 'x' 4 times"),
        ("http://h/p/%7E/y/%7E/y/%7E/y/%7E/", "path repeats segment '%7E' 4 times"),
        ("http://h////////////", None),  # empty segments are not a repeated name
        ("http://h/" + "/".join(map(str, range(MAX_PATH_SEGMENTS))), None),
        (
            "http://h/" + "/".join(map(str, range(MAX_PATH_SEGMENTS + 1))),
            f"path deeper than {MAX_PATH_SEGMENTS} segments",
        ),
        ("http://h/a/a/a/a/a/?q=a/a/a/a#a/a/a/a", "path repeats segment 'a' 5 times"),
        ("http://h/?q=a/a/a/a/a", None),  # only the path counts
    ],
)
def test_trap_reason(url, reason):
    assert trap_reason(url) == reason


def test_repeated_segments_limit():
    assert not has_repeated_segments("http://h/x/x/x")
    assert has_repeated_segments("http://h/x/x/x/x")
    assert has_repeated_segments("http://h/x/x/x", limit=2)
    assert not has_repeated_segments("http://h/x/x/x/x", limit=4)


def test_trap_reason_of_a_bad_url_raises():
    with pytest.raises(BadURL):
        trap_reason("not a url")


@given(
    st.sampled_from(["http", "https"]),
    st.from_regex(r"[a-z0-9-]{1,12}(\.[a-z]{1,6}){0,2}", fullmatch=True),
    st.one_of(st.none(), st.integers(1, 65535)),
    st.from_regex(r"(/[a-z0-9%._~-]{0,8}){0,4}(\?[a-z=&]{0,8})?", fullmatch=True),
)
def test_property_reading_host_and_origin_from_the_text_agrees_with_the_parser(
    scheme, host, port, path
):
    import ada_url

    from crawler.urls import Scope, host_of, origin_of

    url = canonicalize(f"{scheme}://{host}{'' if port is None else f':{port}'}{path}")
    parsed = ada_url.URL(url)
    assert host_of(url) == parsed.host
    assert origin_of(url) == f"{parsed.protocol}//{parsed.host}"
    scope = Scope.for_seeds(["http://seed.test/"], [host])
    by_the_parser = (
        f"{parsed.protocol}//{parsed.host}" in scope.origins
        or parsed.hostname.lower().rstrip(".") in scope.allowed_hosts
    )
    assert (url in scope) == by_the_parser
