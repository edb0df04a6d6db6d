"""The command line as a new user meets it: help everywhere, -v anywhere, bounds on numbers,
crawls found by name or by #id, and no password on screen."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from crawler.settings import MAX_CONCURRENCY
from tests.helpers import ROOT, TreeSite, cli, last_json, sqlite_path


@pytest.mark.parametrize("command", [["fixtures"], ["db"], ["fixtures", "serve"]])
def test_every_group_command_answers_help(command):
    result = cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: crawler " + " ".join(command) in result.stdout


def test_the_fixture_server_says_what_it_is_in_whole_sentences():
    shown = cli("fixtures", "serve", "--help").stdout
    assert "a catalogue of faults." in " ".join(shown.split())


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_goes_before_or_after_the_command_and_shows_only_our_logs(tmp_path, where):
    db = f"sqlite:///{tmp_path / 'v.db'}"
    with TreeSite(pages=3) as site:
        flags = ["crawl", site.url, "--db", db, "--json"]
        result = cli("-vv", *flags) if where == "before" else cli(*flags, "-vv")
    assert result.returncode == 0, result.stderr
    assert last_json(result.stdout)["pages"] == 3  # stdout stays JSON
    assert "alembic" not in result.stderr  # the libraries' chatter stays at warnings
    assert cli("crawls", "-v", "--db", db).returncode == 0


@pytest.mark.parametrize("backend", sorted(MAX_CONCURRENCY))
def test_concurrency_past_the_backends_bound_is_refused_before_anything_starts(tmp_path, backend):
    db = tmp_path / "c.db"
    too_many = str(MAX_CONCURRENCY[backend] + 1)
    started = time.monotonic()
    result = cli(
        "crawl",
        "http://127.0.0.1:9/",
        "--backend",
        backend,
        "--concurrency",
        too_many,
        "--db",
        f"sqlite:///{db}",
    )
    assert result.returncode == 2
    assert f"too many for the {backend} backend" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not db.exists() and time.monotonic() - started < 30


def test_concurrency_is_bounded_by_the_open_file_limit(tmp_path):
    """Under a hard limit of 1,024 open files, 5,000 asyncio connections cannot be had."""
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)); "
        "from crawler.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "crawl",
            "http://127.0.0.1:9/",
            "--backend",
            "asyncio",
            "--concurrency",
            "5000",
            "--db",
            f"sqlite:///{tmp_path / 'f.db'}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "at most 768 here" in result.stderr and "ulimit -Hn" in result.stderr


def test_a_crawl_named_with_digits_does_not_hide_the_crawl_with_that_id(tmp_path):
    db = f"sqlite:///{tmp_path / 'ids.db'}"
    with TreeSite(pages=2) as site:
        assert cli("crawl", site.url, "--name", "first", "--db", db).returncode == 0
        assert cli("crawl", site.url, "--name", "1", "--db", db).returncode == 0
    by_name = cli("export", "1", "--db", db)
    by_id = cli("export", "#1", "--db", db)
    assert by_name.returncode == by_id.returncode == 0
    first_id = {
        c["name"]: c["crawl_id"]
        for c in map(last_json, cli("crawls", "--json", "--db", db).stdout.splitlines())
    }
    assert first_id == {"first": 1, "1": 2}
    assert by_id.stdout == cli("export", "first", "--db", db).stdout
    missing = cli("export", "#9", "--db", db)
    assert missing.returncode == 2 and sqlite_path(db) in missing.stderr


def test_a_database_password_is_never_shown_and_a_dead_server_is_reported_soon():
    """Nothing listens on port 9: the first connection is refused, and after a few tries the
    command says so (not after the 120 s a restarted server gets), password masked."""
    url = "postgresql+psycopg://crawler:s3cret@127.0.0.1:9/crawls"
    with TreeSite(pages=2) as site:
        seed = site.url
    for command in (["crawls"], ["export", "x"], ["crawl", seed]):
        started = time.monotonic()
        result = cli(*command, "--db", url)
        assert result.returncode == 1, result.stderr
        assert "s3cret" not in result.stderr + result.stdout
        assert "crawler:***@127.0.0.1:9/crawls" in result.stderr
        assert "cannot connect to database" in result.stderr
        assert time.monotonic() - started < 60
