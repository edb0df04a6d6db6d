"""Opening a database: URL checks, SQLite pragmas, and bringing the schema to head."""

from __future__ import annotations

import os
import sqlite3
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


class DatabaseOpenError(RuntimeError):
    """The database exists but is not one the crawler may use; the message says why."""


def _check_sqlite_file(path: Path) -> None:
    """Refuse a file that is not a SQLite database, or is another program's database, before
    anything writes to it (even setting WAL mode would change it for good)."""
    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            tables = [
                row[0]
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
    except sqlite3.DatabaseError as exc:
        raise DatabaseOpenError(
            f"cannot open database {path}: {exc}; it is left untouched, point --db at a new "
            "file or at a crawler database"
        ) from None
    if tables and "alembic_version" not in tables:
        shown = ", ".join(sorted(tables)[:5])
        raise DatabaseOpenError(
            f"cannot open database {path}: it is another program's database (it holds "
            f"{shown}); it is left untouched, point --db at a new file"
        )


def make_engine(url: str | None = None) -> Engine:
    """An engine for `url` (default: $CRAWLER_DB, else ./crawl.db). Raises DatabaseURLError
    for a URL we cannot use and DatabaseOpenError for a file that is not ours."""
    raw = url or default_db_url()
    try:
        parsed = make_url(raw)
    except (ArgumentError, ValueError):
        raise DatabaseURLError(
            f"not a database URL: {raw!r}; use e.g. sqlite:///crawl.db or "
            "postgresql+psycopg://user:pass@host/dbname"
        ) from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # the driver we ship
    if parsed.drivername == "sqlite":
        if (
            not parsed.database
            or parsed.database == ":memory:"
            or parsed.database.startswith("file::memory:")
        ):
            raise DatabaseURLError(
                f"{raw!r} is an in-memory database: the crawl would be lost when the command "
                "ends; give a file, e.g. sqlite:///crawl.db"
            )
        path = Path(parsed.database).expanduser().resolve()
        if not path.parent.is_dir():
            raise DatabaseURLError(
                f"folder {path.parent} for the SQLite database does not exist; create it first"
            )
        _check_sqlite_file(path)
        engine = create_engine(parsed, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.drivername != "postgresql+psycopg":
        raise DatabaseURLError(
            f"database {parsed.drivername!r} is not supported; use sqlite:///FILE or "
            "postgresql+psycopg://user:pass@host/dbname"
        )
    try:
        return create_engine(parsed, pool_pre_ping=True)
    except (NoSuchModuleError, ImportError, ArgumentError, ValueError) as exc:
        raise DatabaseURLError(
            f"cannot use database {parsed.render_as_string(hide_password=True)!r}: {exc}"
        ) from None
