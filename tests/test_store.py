"""The schema: migrations agree with the models, go down and up again, and SQLite is set up."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import inspect, text

from crawler.store import make_engine, migrate
from tests.helpers import ROOT

TABLES = {
    "crawls",
    "frontier",
    "fetches",
    "pages",
    "links",
    "runs",
    "hosts",
    "leases",
    "ready",
    "robots",
    "alembic_version",
}


def test_upgrade_creates_every_table(any_db):
    engine = make_engine(any_db)
    migrate.upgrade(engine)
    assert set(inspect(engine).get_table_names()) == TABLES


def test_alembic_check_finds_models_and_migrations_agree(any_db):
    migrate.upgrade(make_engine(any_db))
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-x", f"db={any_db}", "check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr


def test_upgrade_downgrade_upgrade(any_db):
    engine = make_engine(any_db)
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(engine)
    assert set(inspect(engine).get_table_names()) == TABLES


def test_sqlite_is_opened_with_wal_foreign_keys_and_busy_timeout(db_url):
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000


def test_a_command_that_writes_creates_and_upgrades_a_fresh_sqlite_file(tmp_path):
    from tests.helpers import cli

    db = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = cli("db", "upgrade", "--db", db)
    assert result.returncode == 0, result.stderr
    assert set(inspect(make_engine(db)).get_table_names()) == TABLES


def test_the_head_revision_is_the_newest_migration():
    versions = sorted((ROOT / "alembic" / "versions").glob("[0-9]*.py"))
    assert migrate.head_revision() == versions[-1].name.split("_", 1)[0]


def test_db_upgrade_command_on_postgresql(pg_url):
    from tests.helpers import cli

    result = cli("db", "upgrade", "--db", pg_url)
    assert result.returncode == 0, result.stderr
    assert "newest schema" in result.stdout
    assert set(inspect(make_engine(pg_url)).get_table_names()) == TABLES


def test_a_reader_does_not_block_a_writer_on_sqlite(db_url):
    from crawler.store import reading

    engine = make_engine(db_url)
    migrate.upgrade(engine)
    with reading(engine) as reader:
        reader.execute(text("SELECT count(*) FROM crawls")).scalar()  # a read transaction
        with engine.begin() as writer:  # would wait 30 s if the reader held the write lock
            writer.execute(
                text(
                    "INSERT INTO crawls (name, seeds, settings, state, urls_started, created_at)"
                    " VALUES ('x', '[]', '{}', 'running', 0, CURRENT_TIMESTAMP)"
                )
            )


def test_a_crawl_stored_at_schema_0002_upgrades_and_resumes(tmp_path):
    """A crawl left mid-way by the previous schema (a lease held by a run that died, a URL
    waiting for its retry) is upgraded: the lease moves to its own table, the retry to its
    state, the hosts get their counts; then `crawler resume` finishes it."""
    import subprocess
    import sys

    from sqlalchemy import text

    from crawler.runs import this_host
    from crawler.urls import url_key
    from tests.helpers import TreeSite, cli, last_json, query

    db = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(db)
    migrate.upgrade(engine, "0002")
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], text=True, capture_output=True
    ).stdout.strip()  # a pid that has exited
    with TreeSite(pages=30) as site:
        host = site.url.split("/")[2]
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO crawls (id, name, seeds, settings, state, urls_started,"
                    " created_at) VALUES (1, 'old', :seeds, '{}', 'running', 2, CURRENT_TIMESTAMP)"
                ),
                {"seeds": f'["{site.url}"]'},
            )
            conn.execute(
                text(
                    "INSERT INTO runs (id, crawl_id, frontend, concurrency, hostname, pid, state,"
                    " started_at, pages, fetches, errors) VALUES (1, 1, 'threads', 4, :host, :pid,"
                    " 'running', CURRENT_TIMESTAMP, 0, 0, 0)"
                ),
                {"host": this_host(), "pid": int(gone)},
            )
            for id_, url, state, attempts, retry_at, owner, token, expires in (
                (1, site.url, "leased", 1, 0.0, 1, "a" * 32, 4e9),
                (2, f"{site.url}p/1.html", "queued", 1, 1.0, None, None, None),
            ):
                conn.execute(
                    text(
                        "INSERT INTO frontier (id, crawl_id, url, url_key, host, depth,"
                        " redirect_hops, state, attempts, next_attempt_at, lease_owner,"
                        " lease_token, lease_expires_at) VALUES (:id, 1, :url, :key, :host, :depth,"
                        " 0, :state, :attempts, :retry_at, :owner, :token, :expires)"
                    ),
                    {
                        "id": id_,
                        "url": url,
                        "key": url_key(url),
                        "host": host,
                        "depth": id_ - 1,
                        "state": state,
                        "attempts": attempts,
                        "retry_at": retry_at,
                        "owner": owner,
                        "token": token,
                        "expires": expires,
                    },
                )
            # and a leaf page done before the upgrade, with its fetch, page and link
            done = f"{site.url}p/20.html"
            conn.execute(
                text(
                    "INSERT INTO frontier (id, crawl_id, url, url_key, host, depth, redirect_hops,"
                    " state, attempts, next_attempt_at) VALUES (3, 1, :url, :key, :host, 4, 0,"
                    " 'done', 1, 0)"
                ),
                {"url": done, "key": url_key(done), "host": host},
            )
            conn.execute(
                text(
                    "INSERT INTO fetches (id, crawl_id, frontier_id, run_id, worker, url, attempt,"
                    " started_at, status, body_bytes, queue_wait_s, total_s) VALUES (1, 1, 3, 1,"
                    " 'w', :url, 1, 0, 200, 10, 0, 0.1)"
                ),
                {"url": done},
            )
            conn.execute(
                text(
                    "INSERT INTO pages (id, crawl_id, frontier_id, fetch_id, url, link_count,"
                    " content_hash) VALUES (1, 1, 3, 1, :url, 1, 'h')"
                ),
                {"url": done},
            )
            conn.execute(
                text(
                    "INSERT INTO links (page_id, position, url, anchor_text, rel, nofollow,"
                    " followed) VALUES (1, 0, :url, '', '', 0, 1)"
                ),
                {"url": site.url},
            )
        migrate.upgrade(engine)
        engine.dispose()
        # the frontier table was rebuilt: what refers to it is all still there
        assert query(db, "SELECT count(*) FROM fetches") == [(1,)]
        assert query(db, "SELECT count(*) FROM pages") == [(1,)]
        assert query(db, "SELECT count(*) FROM links") == [(1,)]
        assert query(db, "SELECT frontier_id, run_id, token FROM leases") == [(1, 1, "a" * 32)]
        assert query(db, "SELECT state FROM frontier ORDER BY id") == [
            ("queued",),  # in flight: its lease says so
            ("retry",),
            ("done",),
        ]
        assert query(db, "SELECT count(*) FROM ready") == [(0,)]
        assert query(db, "SELECT host, queued, in_flight, retrying FROM hosts") == [(host, 0, 1, 1)]
        resumed = cli("resume", "old", "--json", "--db", db)
    assert resumed.returncode == 0, resumed.stderr
    assert last_json(resumed.stdout)["pages"] == 30
    assert query(db, "SELECT count(*) FROM leases") == [(0,)]
