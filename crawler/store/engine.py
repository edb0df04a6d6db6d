"""Opening a database: URL checks, SQLite pragmas, and bringing the schema to head."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

DEFAULT_DB = "sqlite:///crawl.db"


class DatabaseURLError(ValueError):
    """The --db value is not a database URL we can use; the message says what to pass."""


def default_db_url() -> str:
    return os.environ.get("CRAWLER_DB") or DEFAULT_DB


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn) -> None:
    # A writer takes the write lock at BEGIN, so two writers queue on busy_timeout instead of
    # failing with "database is locked" when a read transaction tries to upgrade. Readers
    # (opened with `reading()`) begin deferred and never block a writer under WAL.
    if conn.get_execution_options().get("read_only"):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def reading(engine: Engine) -> Connection:
    """A connection for queries only: `with reading(engine) as conn: ...`."""
    return engine.connect().execution_options(read_only=True)


def make_engine(url: str | None = None) -> Engine:
    """An engine for `url` (default: $CRAWLER_DB, else ./crawl.db). Raises DatabaseURLError."""
    raw = url or default_db_url()
    try:
        parsed = make_url(raw)
    except ArgumentError:
        raise DatabaseURLError(
            f"not a database URL: {raw!r}; use e.g. sqlite:///crawl.db or "
            "postgresql+psycopg://user:pass@host/dbname"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).expanduser().resolve().parent
            if not folder.is_dir():
                raise DatabaseURLError(
                    f"folder {folder} for the SQLite database does not exist; create it first"
                )
        engine = create_engine(parsed, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    try:
        return create_engine(parsed, pool_pre_ping=True)
    except (NoSuchModuleError, ImportError, ArgumentError) as exc:
        raise DatabaseURLError(
            f"cannot use database {parsed.render_as_string(hide_password=True)!r}: {exc}; "
            "supported: sqlite:///FILE and postgresql+psycopg://..."
        ) from None
