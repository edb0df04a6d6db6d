"""Bringing any database to the newest schema with the project's Alembic migrations, and
checking a database a read-only command may not migrate."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from alembic import command
from crawler.errors import DatabaseError
from crawler.store.engine import where
from crawler.store.failures import retrying

ALEMBIC_DIR = Path(__file__).resolve().parents[2] / "alembic"
# Any fixed number: PostgreSQL advisory locks are keyed by one.
MIGRATION_LOCK = 7_423_001


def alembic_config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    if engine is not None:
        config.set_main_option(
            "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
        )
    return config


@cache
def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate to `revision`; a no-op when the schema is already there. On PostgreSQL, workers
    starting together on a fresh database take turns (an advisory lock for the transaction)."""
    _migrate(engine, lambda config: command.upgrade(config, revision))


def downgrade(engine: Engine, revision: str) -> None:
    _migrate(engine, lambda config: command.downgrade(config, revision))


def _migrate(engine: Engine, step) -> None:
    """One transaction. On SQLite, foreign keys are off meanwhile: Alembic's batch mode
    rebuilds a table by copying it and dropping the old one, and with them on, the drop would
    delete every row that refers to it (a frontier rebuilt would take the crawl's fetches,
    pages and links with it). The keys are checked before the commit, and the connections
    that had them off are closed after it."""
    config = alembic_config(engine)

    def migrate(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        config.attributes["connection"] = connection
        step(config)
        if connection.dialect.name == "sqlite":
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                raise RuntimeError(f"migration left rows with dangling references: {broken[:5]}")

    if engine.dialect.name != "sqlite":
        retrying(engine, migrate)
        return
    try:
        retrying(engine.execution_options(foreign_keys_off=True), migrate)
    finally:
        engine.dispose()


def current_revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def require_head(engine: Engine) -> None:
    """For read-only commands, which never migrate: the schema must be this crawler's."""
    current = retrying(engine, current_revision, read_only=True)
    head = head_revision()
    if current == head:
        return
    db = where(engine)
    if current is None:
        raise DatabaseError(
            f"database {db} holds no crawler schema; run `crawler db upgrade --db ...` to "
            "create one, or point --db at a crawler database"
        )
    if current < head:
        raise DatabaseError(
            f"database {db} has schema {current}, older than this crawler's {head}; run "
            "`crawler db upgrade` with the same --db to bring it up to date"
        )
    raise DatabaseError(
        f"database {db} has schema {current}, newer than this crawler's {head}; use the "
        "crawler that wrote it, or a newer one"
    )
