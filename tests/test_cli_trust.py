"""The command line as a new user meets it: help everywhere, -v anywhere, bounds on numbers,
crawls found by name or by #id, and no password on screen."""

from __future__ import annotations

import re
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


def test_a_db_that_is_a_folder_is_called_one(tmp_path):
    result = cli("crawls", "--db", f"sqlite:///{tmp_path}")
    assert result.returncode == 1
    assert f"cannot open database {tmp_path}: it is a folder" in result.stderr


def test_the_readme_command_table_lists_every_command_and_its_options():
    """Each command has a row in the README's table, and the row names every option the
    command takes (crawl's settings are in the tables below it, each by its flag)."""
    from crawler.cli import build_parser

    readme = (ROOT / "README.md").read_text()
    rows = {
        match.group(1): match.group(0)
        for match in re.finditer(r"^\| `crawler ([a-z]+(?: [a-z]+)?)[ `].*$", readme, re.MULTILINE)
    }
    from crawler.settings import CrawlSettings, options

    crawl_settings = {setting for setting, _, _ in options(CrawlSettings)}
    commands = build_parser()._subparsers._group_actions[0].choices
    for name, parser in commands.items():
        if name in ("db", "fixtures"):
            name = {"db": "db upgrade", "fixtures": "fixtures serve"}[name]
            assert name in rows, name
            continue
        assert name in rows, f"no README row for crawler {name}"
        for action in parser._actions:
            flags = [f for f in action.option_strings if f.startswith("--")]
            if not flags or flags[0] in ("--help", "--verbose"):
                continue
            # crawl's settings (compare and submit take them too) are in the tables below the
            # commands
            setting = action.dest in crawl_settings
            shared = name in ("compare", "submit") and setting
            where = readme if name == "crawl" or shared else rows[name]
            assert flags[0] in where, f"{flags[0]} of crawler {name} is not in the README"


@pytest.mark.parametrize(
    ("flag", "value", "range_"),
    [
        ("--max-attempts", "101", "1 to 100"),
        ("--max-redirects", "21", "0 to 20"),
        ("--per-host-concurrency", "50001", "1 to 50,000"),
        ("--max-depth", "10001", "0 to 10,000"),
        ("--breaker-threshold", "100001", "0 to 100,000"),
        ("--max-pages", "0", "1 to 1,000,000,000"),
    ],
)
def test_every_number_has_a_range_that_the_error_names(tmp_path, flag, value, range_):
    db = tmp_path / "n.db"
    result = cli("crawl", "http://127.0.0.1:9/", flag, value, "--db", f"sqlite:///{db}")
    assert result.returncode == 2
    assert f"{flag} must be {range_}, not {value}" in result.stderr
    assert not db.exists()
