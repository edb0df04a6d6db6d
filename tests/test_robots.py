"""robots.txt: Google's conformance records (RFC 9309 and Google-only), then our own semantics."""

import json
import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.robots import MAX_ROBOTS_BYTES, RobotsRules, allowed, product_token

# CI checks out ../shared beside the repo. If it is missing, collection fails: never skip.
CONFORMANCE = Path(__file__).resolve().parents[2] / "shared/conformance/robots_google.json"
RECORDS = json.loads(CONFORMANCE.read_text(encoding="utf-8"))

# Google-only records we do not match, by the line of their EXPECT in robots_test.cc. strict=True,
# so a change that makes one pass is noticed.
GOOGLE_ONLY_XFAIL = {
    247: "we reduce the caller's user agent to its product token ('Foo Bar' -> 'Foo'); "
    "Google compares the caller's string whole",
    505: "Google extension: 'Allow: /d/index.html' also allows '/d/'; we match rules literally",
}

USER_AGENT = "crawler/0.1 (educational crawler; threads, processes and asyncio)"


def _cases(google_only: bool) -> list:
    cases = []
    for record in RECORDS:
        if record["google_only"] != google_only:
            continue
        reason = GOOGLE_ONLY_XFAIL.get(record["line"])
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        cases.append(pytest.param(record, id=f"{record['test']}:{record['line']}", marks=marks))
    return cases


def _check(record: dict) -> None:
    got = allowed(record["robots_txt"], record["user_agent"], record["url"])
    assert got is record["allowed"], f"line {record['line']}: {record['url'][:80]!r}"


def test_conformance_file_is_complete():
    assert len(_cases(google_only=False)) == 72
    assert len(_cases(google_only=True)) == 73
    google_only_lines = {r["line"] for r in RECORDS if r["google_only"]}
    assert set(GOOGLE_ONLY_XFAIL) <= google_only_lines


@pytest.mark.parametrize("record", _cases(google_only=False))
def test_rfc9309_conformance(record):
    _check(record)


@pytest.mark.parametrize("record", _cases(google_only=True))
def test_google_only_conformance(record):
    _check(record)


def test_robots_txt_is_always_allowed():
    rules = RobotsRules.parse("User-agent: *\nDisallow: /\n", USER_AGENT)
    assert rules.allowed("https://example.com/robots.txt")
    assert not rules.allowed("https://example.com/robots.txt.bak")
    assert not rules.allowed("https://example.com/")
    assert RobotsRules.disallow_all().allowed("https://example.com/robots.txt")


def test_allow_all_and_disallow_all():
    for url in ("https://example.com/", "https://example.com/a/b?c=d", "https://example.com"):
        assert RobotsRules.allow_all().allowed(url)
        assert not RobotsRules.disallow_all().allowed(url)


def test_crawl_delay_for_our_group():
    body = "User-agent: *\nCrawl-delay: 9\n\nUser-agent: crawler\nCrawl-delay: 2.5\nDisallow: /x\n"
    assert RobotsRules.parse(body, USER_AGENT).crawl_delay == 2.5
    assert RobotsRules.parse(body, "otherbot").crawl_delay == 9


def test_crawl_delay_falls_back_to_star_group_and_ignores_other_agents():
    body = "User-agent: craw\nCrawl-delay: 30\n\nUser-agent: *\nCrawl-delay: 1\n"
    assert RobotsRules.parse(body, USER_AGENT).crawl_delay == 1  # 'craw' is not our token


def test_crawl_delay_survives_unknown_lines_between_user_agents():
    body = "User-agent: crawler\nX-Unknown: y\nUser-agent: *\nCrawl-delay: 5\nDisallow: /p\n"
    rules = RobotsRules.parse(body, USER_AGENT)
    assert rules.crawl_delay == 5
    assert not rules.allowed("https://example.com/p")


@pytest.mark.parametrize("value", ["", "soon", "-1", "1e3", "nan", "inf", "1" * 400, "1,5"])
def test_invalid_crawl_delay_is_none(value):
    rules = RobotsRules.parse(f"User-agent: *\nCrawl-delay: {value}\n", USER_AGENT)
    assert rules.crawl_delay is None


def test_no_crawl_delay_is_none():
    assert RobotsRules.parse("User-agent: *\nDisallow: /x\n", USER_AGENT).crawl_delay is None


def test_sitemaps_are_collected_from_the_whole_file():
    body = (
        "Sitemap: https://example.com/a.xml\n"
        "User-agent: otherbot\nDisallow: /\n"
        "sitemap: https://example.com/b.xml # comment\n"
        "Sitemap: https://example.com/a.xml\n"
    )
    rules = RobotsRules.parse(body, USER_AGENT)
    assert rules.sitemaps == ("https://example.com/a.xml", "https://example.com/b.xml")
    assert RobotsRules.allow_all().sitemaps == ()


def test_body_beyond_the_limit_is_ignored():
    head = "User-agent: *\nDisallow: /early\n"
    padding = "# " + "x" * 1000 + "\n"
    body = head + padding * (MAX_ROBOTS_BYTES // len(padding) + 1) + "Disallow: /late\n"
    assert len(body.encode()) > MAX_ROBOTS_BYTES
    rules = RobotsRules.parse(body, USER_AGENT)
    assert not rules.allowed("https://example.com/early")
    assert rules.allowed("https://example.com/late")


def test_limit_is_in_utf8_bytes_and_may_split_a_character():
    # Each 'ツ' is 3 bytes, so the cut falls inside a character and 'Disallow: /late' is past it.
    body = "User-agent: *\n#" + "ツ" * (MAX_ROBOTS_BYTES // 3) + "\nDisallow: /late\n"
    assert len(body) < MAX_ROBOTS_BYTES
    assert RobotsRules.parse(body, USER_AGENT).allowed("https://example.com/late")


def test_full_user_agent_header_is_reduced_to_its_token():
    assert product_token(USER_AGENT) == "crawler"
    assert product_token("Googlebot-Image/1.0") == "Googlebot-Image"
    assert product_token("  crawler") == "crawler"
    assert product_token("") == ""
    body = "User-agent: *\nDisallow: /\n\nUser-agent: Crawler\nAllow: /\n"
    assert RobotsRules.parse(body, USER_AGENT).allowed("https://example.com/page")
    assert not RobotsRules.parse(body, "otherbot/2.0").allowed("https://example.com/page")


def test_rules_pickle_for_worker_processes():
    rules = RobotsRules.parse("User-agent: *\nDisallow: /*.pdf$\nCrawl-delay: 3\n", USER_AGENT)
    assert pickle.loads(pickle.dumps(rules)) == rules


_robots_line = st.builds(
    "{}{}{}".format,
    st.sampled_from(["User-agent", "Allow", "Disallow", "Crawl-delay", "Sitemap", "", "#"]),
    st.sampled_from([":", ": ", " ", ""]),
    st.text(alphabet=st.sampled_from("ab/*$%?#:;. \t\x00ツ\ud800Zz09"), max_size=30) | st.text(),
)
_robots_body = st.lists(_robots_line, max_size=20).map("\n".join) | st.text()


@settings(max_examples=300)
@given(robots_txt=_robots_body, user_agent=st.text(), url=st.text())
def test_parse_and_allowed_never_raise(robots_txt, user_agent, url):
    rules = RobotsRules.parse(robots_txt, user_agent)
    assert isinstance(rules.allowed(url), bool)
    assert isinstance(rules.allowed("https://example.com/" + url), bool)
