"""Crawl settings are defined once (crawler/settings.py): the command line, the Python API and
the settings stored with a crawl all go through that one definition."""

from __future__ import annotations

import re
from dataclasses import fields

import pytest

import crawler
from crawler.settings import CrawlSettings, RunSettings, options
from tests.helpers import cli


def test_every_setting_is_an_option_with_help_and_its_default():
    shown = cli("crawl", "--help").stdout
    flat = re.sub(r"\s+", " ", shown)
    for name, _default, option in options(CrawlSettings):
        flag = option.flag(name).removesuffix("s") if option.repeat else option.flag(name)
        assert flag in shown, flag
        if option.parse is not None:  # on/off flags have no default to show
            assert re.search(re.escape(option.help[:30]) + r".*?\(default: ", flat), flag
    for name, _default, option in options(RunSettings):
        assert option.flag(name) in shown


def test_crawler_help_describes_the_product_and_its_commands():
    shown = cli("--help").stdout
    assert "A web crawler built three ways" in shown
    for command in ("crawl", "resume", "export", "crawls", "db", "fixtures"):
        assert re.search(rf"^\s+{command}\s", shown, re.MULTILINE), command
    assert "Exit codes" in shown


@pytest.mark.parametrize(
    ("values", "flag"),
    [
        ({"max_pages": 0}, "--max-pages"),
        ({"timeout": 0.0}, "--timeout"),
        ({"timeout": float("nan")}, "--timeout"),
        ({"per_host_delay": 4000.0}, "--per-host-delay"),
        ({"max_body_bytes": 10}, "--max-body-bytes"),
        ({"breaker_threshold": -1}, "--breaker-threshold"),
        ({"allow_hosts": ("not a host!",)}, "--allow-host"),
        ({"user_agent": "two\nlines"}, "--user-agent"),
    ],
)
def test_the_api_refuses_what_the_command_line_refuses(values, flag, tmp_path):
    with pytest.raises(crawler.UsageError, match=flag):
        crawler.crawl(["http://127.0.0.1:1/"], db=f"sqlite:///{tmp_path / 'x.db'}", **values)
    assert not (tmp_path / "x.db").exists()  # refused before anything is stored


def test_an_unknown_setting_is_named():
    with pytest.raises(crawler.UsageError, match="unknown crawl setting 'max_page'"):
        CrawlSettings.checked(max_page=3)


def test_settings_stored_by_another_version_still_load():
    stored = {**CrawlSettings().to_json(), "a_setting_from_the_future": 1}
    del stored["sitemaps"]  # and one from the past
    assert CrawlSettings.from_json(stored) == CrawlSettings()
    assert CrawlSettings.from_json(
        CrawlSettings(allow_hosts=("a.test",)).to_json()
    ).allow_hosts == ("a.test",)


def test_every_setting_is_stored_with_the_crawl():
    assert set(CrawlSettings().to_json()) == {f.name for f in fields(CrawlSettings)}
