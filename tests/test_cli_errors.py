"""Bad input gets one clear line on stderr, the documented exit code, and no traceback."""

from __future__ import annotations

import os
import socket

import pytest

from tests.helpers import TreeSite, cli, last_json, query, sqlite_path


@pytest.fixture(scope="module")
def site():
    with TreeSite(pages=3) as tree:
        yield tree


def assert_clean_error(result, code: int, *words: str) -> None:
    """The documented exit code, and one line on stderr with no traceback."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def test_malformed_db_url(site):
    result = cli("crawl", site.url, "--db", "not a database url")
    assert_clean_error(result, 2, "not a database URL", "sqlite:///")


def test_db_folder_that_does_not_exist(site, tmp_path):
    result = cli("crawl", site.url, "--db", f"sqlite:///{tmp_path}/nope/x.db")
    assert_clean_error(result, 2, "does not exist")


def test_corrupt_db_file_is_reported_and_left_alone(site, tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 100)
    before = path.read_bytes()
    result = cli("crawl", site.url, "--db", f"sqlite:///{path}")
    assert_clean_error(result, 1, "cannot open database", "not a database")
    assert path.read_bytes() == before


@pytest.mark.parametrize("seed", ["htp:/127.0.0.1/", "not a url", "ftp://127.0.0.1/", "http://"])
def test_malformed_seed(seed, db_url):
    result = cli("crawl", seed, "--db", db_url)
    assert_clean_error(result, 2, "malformed seed")


def test_unknown_backend(site, db_url):
    result = cli("crawl", site.url, "--backend", "fibers", "--db", db_url)
    assert_clean_error(result, 2, "unknown backend", "threads")


def closed_port() -> int:
    """A port nothing listens on: bound by us a moment ago, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_seed_stores_nothing(db_url):
    seed = f"http://127.0.0.1:{closed_port()}/"
    result = cli("crawl", seed, "--db", db_url)
    assert_clean_error(result, 1, "cannot reach seed", seed)
    listed = cli("crawls", "--json", "--db", db_url)
    assert listed.returncode == 0 and listed.stdout.strip() == ""


def test_an_unreachable_seed_among_good_ones_is_stored_as_its_error(site, tmp_path):
    dead = f"http://127.0.0.1:{closed_port()}/"
    db = f"sqlite:///{tmp_path / 'ignoring.db'}"
    result = cli(
        "crawl", site.url, dead, "--max-attempts", "1", "--ignore-robots", "--json", "--db", db
    )
    assert result.returncode == 0, result.stderr
    assert last_json(result.stdout)["pages"] == 3
    assert f"cannot reach seed {dead}" in result.stderr
    assert "crawling the other seeds" in result.stderr
    assert query(db, "SELECT error_kind FROM fetches WHERE url = ?", dead) == [("connect",)]
    # Obeying robots.txt, the seed waits on its origin's robots.txt and is skipped with it.
    db = f"sqlite:///{tmp_path / 'obeying.db'}"
    again = cli("crawl", site.url, dead, "--max-attempts", "1", "--db", db)
    assert again.returncode == 0, again.stderr
    skipped = query(db, "SELECT state, skip_reason FROM frontier WHERE url = ?", dead)
    assert skipped == [("skipped", "robots.txt unavailable")]


def test_no_seed_answering_stores_nothing(db_url):
    dead = [f"http://127.0.0.1:{closed_port()}/", "http://no-such-host.invalid/"]
    result = cli("crawl", *dead, "--db", db_url)
    assert_clean_error(result, 1, "no seed answers", *dead)


def test_unresolvable_seed(db_url):
    result = cli("crawl", "http://no-such-host.invalid/", "--db", db_url)
    assert_clean_error(result, 1, "does not resolve")


@pytest.mark.parametrize(
    "flag",
    [
        ["--concurrency", "0"],
        ["--max-pages", "-1"],
        ["--timeout", "x"],
        ["--per-host-concurrency", "0"],
        ["--per-host-delay", "-1"],
        ["--per-host-delay", "nan"],
        ["--max-pages-per-host", "x"],
        ["--max-attempts", "0"],
        ["--retry-backoff", "abc"],
        ["--max-retry-after", "99999"],
        ["--breaker-threshold", "-1"],
        ["--breaker-cooldown", "inf"],
        ["--max-body-bytes", "10"],
    ],
)
def test_bad_numbers_are_usage_errors(site, db_url, flag):
    result = cli("crawl", site.url, *flag, "--db", db_url)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert flag[0] in result.stderr
    assert not os.path.exists(sqlite_path(db_url))  # refused before anything is stored


def test_resume_of_an_unknown_crawl(site, db_url):
    assert cli("crawl", site.url, "--db", db_url).returncode == 0
    result = cli("resume", "nope", "--db", db_url)
    assert_clean_error(result, 2, "no crawl 'nope'", sqlite_path(db_url))


def test_a_name_cannot_be_used_twice(site, db_url):
    assert cli("crawl", site.url, "--name", "twice", "--db", db_url).returncode == 0
    result = cli("crawl", site.url, "--name", "twice", "--db", db_url)
    assert_clean_error(result, 2, "exists already", "crawler resume twice")


def test_db_defaults_to_crawler_db_environment_variable(site, db_url):
    result = cli("crawl", site.url, "--json", env={"CRAWLER_DB": db_url})
    assert result.returncode == 0, result.stderr
    assert cli("crawls", "--json", "--db", db_url).stdout.count("\n") == 1
