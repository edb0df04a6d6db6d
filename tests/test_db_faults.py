"""Database failures, for real: another process holding SQLite's write lock, a full disk (a
small tmpfs), a read-only file (a read-only bind mount), a PostgreSQL server restarted in the
middle of a crawl, a schema too old for a read-only command, and a page whose parse runs out
of memory. Each is met with a bounded retry or one clear line, and nothing stored is lost."""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import (
    ROOT,
    TreeSite,
    backend_flags,
    cli,
    last_json,
    query,
    sqlite_path,
)

pytestmark = pytest.mark.serial  # timing-sensitive, and mounts file systems


def crawler(*args: str, env: dict | None = None, limits: dict | None = None) -> subprocess.Popen:
    """`python -m crawler ARGS` in the background, as at a terminal, with resource limits."""

    def prepare() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        for limit, value in (limits or {}).items():
            resource.setrlimit(limit, (value, value))

    return subprocess.Popen(
        [sys.executable, "-m", "crawler", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        preexec_fn=prepare,
    )


def pages(db_url: str) -> int:
    try:
        return query(db_url, "SELECT count(*) FROM pages")[0][0]
    except Exception:  # not created yet
        return 0


def wait_for_pages(db_url: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while pages(db_url) < count:
        assert time.monotonic() < deadline, f"the crawl did not reach {count} pages"
        time.sleep(0.05)


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def assert_stored_once(db_url: str) -> None:
    for sql in (
        "SELECT url FROM pages GROUP BY url HAVING count(*) > 1",
        "SELECT frontier_id FROM fetches GROUP BY frontier_id HAVING count(*) > 1",
        "SELECT url FROM frontier GROUP BY url HAVING count(*) > 1",
    ):
        assert query(db_url, sql) == [], sql
    assert query(db_url, "PRAGMA integrity_check") == [("ok",)]


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def mounts():
    """Mount points made by a test, unmounted afterwards whatever happens."""
    made: list[Path] = []
    yield made
    for point in reversed(made):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


# -- SQLite locked by another process ----------------------------------------------------------


LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def hold_write_lock(path: str, seconds: float) -> subprocess.Popen:
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, path, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert locker.stdout.readline().strip() == "locked"
    return locker


def test_a_writer_holding_the_lock_past_the_busy_timeout_is_waited_out(tmp_path):
    db = f"sqlite:///{tmp_path / 'locked.db'}"
    with TreeSite(pages=300, delay=0.02) as site:
        run = crawler(
            "-v",
            "crawl",
            site.url,
            "--name",
            "locked",
            "--concurrency",
            "8",
            "--json",
            "--db",
            f"{db}?timeout=0.5",
        )
        wait_for_pages(db, 30)
        locker = hold_write_lock(sqlite_path(db), 3.0)  # six busy timeouts
        locker.wait(timeout=30)
        stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 0, stderr
    assert "database is locked; trying again" in stderr  # it did meet the lock
    assert last_json(stdout)["pages"] == 300
    assert_stored_once(db)


def test_a_lock_held_too_long_is_one_clear_error_and_resume_continues(tmp_path):
    db = f"sqlite:///{tmp_path / 'stuck.db'}"
    with TreeSite(pages=300, delay=0.02) as site:
        run = crawler(
            "crawl",
            site.url,
            "--name",
            "stuck",
            "--concurrency",
            "8",
            "--db",
            f"{db}?timeout=0.5",
            env={"CRAWLER_DB_RETRY_S": "3"},
        )
        wait_for_pages(db, 30)
        locker = hold_write_lock(sqlite_path(db), 60.0)
        started = time.monotonic()
        _, stderr = run.communicate(timeout=60)
        assert time.monotonic() - started < 20  # gave up after the window, not hung
        locker.kill()
        locker.wait()
        assert run.returncode == 1
        line = one_line(stderr)
        assert sqlite_path(db) in line and "stayed locked by another process" in line
        assert "crawler resume stuck" in line
        resumed = cli("resume", "stuck", "--json", "--db", db)
    assert resumed.returncode == 0, resumed.stderr
    assert last_json(resumed.stdout)["pages"] == 300
    assert_stored_once(db)


def test_two_crawls_writing_one_sqlite_file_at_once_both_finish(tmp_path):
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    with TreeSite(pages=400, delay=0.005) as one, TreeSite(pages=400, delay=0.005) as two:
        cli("db", "upgrade", "--db", db)
        runs = [
            crawler("crawl", site.url, "--name", name, "--concurrency", "16", "--json", "--db", db)
            for name, site in (("one", one), ("two", two))
        ]
        outputs = [run.communicate(timeout=300) for run in runs]
    for run, (stdout, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, stderr
        assert last_json(stdout)["pages"] == 400
    assert_stored_once(db)


# -- a full disk ---------------------------------------------------------------------------------


def test_a_full_disk_stops_the_crawl_with_one_line_and_resume_finishes_it(tmp_path, mounts):
    folder = tmp_path / "small"
    folder.mkdir()
    mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder))
    mounts.append(folder)
    db = f"sqlite:///{folder / 'crawl.db'}"
    with TreeSite(pages=3000, fanout=3) as site:
        run = crawler("crawl", site.url, "--name", "full", "--concurrency", "8", "--db", db)
        _, stderr = run.communicate(timeout=300)
        assert run.returncode == 1, stderr
        line = one_line(stderr)
        assert str(folder / "crawl.db") in line and "disk is full" in line
        assert "crawler resume full" in line
        stored = pages(db)
        assert 0 < stored < 3000
        assert query(db, "PRAGMA integrity_check") == [("ok",)]

        mount("-o", "remount,size=256m", str(folder))  # space is back
        resumed = cli("resume", "full", "--json", "--db", db, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert last_json(resumed.stdout)["pages"] == 3000
    assert_stored_once(db)


# -- a read-only database ------------------------------------------------------------------------


def interrupted_crawl(site: TreeSite, db: str, name: str) -> None:
    run = crawler("crawl", site.url, "--name", name, "--concurrency", "8", "--db", db)
    wait_for_pages(db, 40)
    run.send_signal(signal.SIGINT)
    run.communicate(timeout=30)
    assert run.returncode == 130


def test_a_read_only_database_is_read_but_not_written(tmp_path, mounts):
    folder, read_only = tmp_path / "crawls", tmp_path / "read-only"
    folder.mkdir()
    read_only.mkdir()
    with TreeSite(pages=300, delay=0.02) as site:
        interrupted_crawl(site, f"sqlite:///{folder / 'crawl.db'}", "half")
        before = (folder / "crawl.db").read_bytes()
        mount("--bind", str(folder), str(read_only))
        mounts.append(read_only)
        mount("-o", "remount,bind,ro", str(read_only))
        db = f"sqlite:///{read_only / 'crawl.db'}"

        resumed = cli("resume", "half", "--db", db)
        assert resumed.returncode == 1
        line = one_line(resumed.stderr)
        assert str(read_only / "crawl.db") in line and "read-only" in line

        listed = cli("crawls", "--json", "--db", db)
        assert listed.returncode == 0, listed.stderr
        assert '"name": "half"' in listed.stdout
        exported = cli("export", "half", "--db", db)
        assert exported.returncode == 0, exported.stderr
        assert len(exported.stdout.splitlines()) >= 40
        assert (folder / "crawl.db").read_bytes() == before  # nothing was written

        resumed = cli("resume", "half", "--json", "--db", f"sqlite:///{folder / 'crawl.db'}")
    assert resumed.returncode == 0, resumed.stderr
    assert last_json(resumed.stdout)["pages"] == 300


def test_read_commands_never_migrate_and_say_how_to_upgrade(tmp_path):
    from crawler.store import make_engine, migrate

    path = tmp_path / "old.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine, "0002")
    engine.dispose()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    for command in (["crawls"], ["export", "x"]):
        result = cli(*command, "--db", f"sqlite:///{path}")
        assert result.returncode == 1
        line = one_line(result.stderr)
        assert "older than this crawler's" in line and "crawler db upgrade" in line
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    wal = Path(f"{path}-wal")  # a WAL reader may open an empty log; nothing is written to it
    assert not wal.exists() or wal.stat().st_size == 0

    missing = tmp_path / "missing.db"
    for command in (["crawls"], ["export", "x"], ["resume", "x"]):
        result = cli(*command, "--db", f"sqlite:///{missing}")
        assert result.returncode == 2
        assert f"there is no database at {missing}" in one_line(result.stderr)
    assert not missing.exists()  # nothing creates a database to say it has no crawl
    assert cli("db", "upgrade", "--db", f"sqlite:///{path}").returncode == 0
    assert cli("crawls", "--db", f"sqlite:///{path}").returncode == 0


# -- PostgreSQL restarted --------------------------------------------------------------------------


def test_postgresql_restarted_mid_crawl_loses_nothing_and_stores_nothing_twice(own_postgres):
    from sqlalchemy import text

    from crawler.store import make_engine

    url = own_postgres.url
    with TreeSite(pages=400, delay=0.02) as site:
        run = crawler(
            "crawl", site.url, "--name", "restart", "--concurrency", "8", "--json", "--db", url
        )
        engine = make_engine(url)

        def stored() -> int:
            try:
                with engine.connect() as conn:
                    return conn.execute(text("SELECT count(*) FROM pages")).scalar()
            except Exception:
                return 0

        deadline = time.monotonic() + 60
        while stored() < 60:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        engine.dispose()
        own_postgres.restart()
        stdout, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr
    assert last_json(stdout)["pages"] == 400
    engine = make_engine(url)
    with engine.connect() as conn:
        for sql in (
            "SELECT url FROM pages GROUP BY url HAVING count(*) > 1",
            "SELECT frontier_id FROM fetches GROUP BY frontier_id HAVING count(*) > 1",
        ):
            assert conn.execute(text(sql)).all() == [], sql
        assert conn.execute(text("SELECT count(*) FROM pages")).scalar() == 400
        assert conn.execute(text("SELECT state FROM runs")).scalars().all() == ["finished"]
    engine.dispose()


# -- a page the parser cannot finish -------------------------------------------------------


def test_a_page_whose_parse_runs_out_of_memory_is_a_parse_error_row(httpserver, db_url):
    """8 MiB of links: building its tree needs ~740 MiB more than a pool child (~125 MiB of
    address space) may have here under RLIMIT_AS, so the parser raises MemoryError. That page
    becomes a row with the error kind parse_error; the crawl goes on and stores the others.

    The processes frontend, because there the parse runs in a child whose only other thread
    sleeps: in one process (threads, asyncio) running out of memory strikes whichever thread
    allocates next, the coordinator's as likely as the parser's. Both fetchers catch a parse
    that raises in the same place (Exchange.parse_body)."""
    huge = "<title>huge</title>" + "<a href=/x>y</a>" * 520_000
    httpserver.expect_request("/").respond_with_data(
        '<a href="/huge">huge</a> <a href="/small">small</a>', content_type="text/html"
    )
    httpserver.expect_request("/huge").respond_with_data(huge, content_type="text/html")
    httpserver.expect_request("/small").respond_with_data(
        "<title>small</title>", content_type="text/html"
    )
    run = crawler(
        "crawl",
        httpserver.url_for("/"),
        *backend_flags("processes", 2),
        "--json",
        "--db",
        db_url,
        "--max-body-bytes",
        str(16 * 1024 * 1024),
        env={"MALLOC_ARENA_MAX": "2"},
        limits={resource.RLIMIT_AS: 512 * 1024 * 1024},
    )
    stdout, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr
    assert last_json(stdout)["pages"] == 2  # the seed and /small
    [(status, kind, message)] = query(
        db_url, "SELECT status, error_kind, error_message FROM fetches WHERE url LIKE '%/huge'"
    )
    assert (status, kind, message) == (200, "parse_error", "out of memory while parsing the page")
    assert query(db_url, "SELECT state FROM frontier WHERE url LIKE '%/huge'") == [("done",)]
