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
