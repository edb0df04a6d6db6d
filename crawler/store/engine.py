"""Opening a database: URL checks, SQLite pragmas, read-only connections."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

DEFAULT_DB = "sqlite:///crawl.db"
DEFAULT_BUSY_TIMEOUT_S = 30.0


class DatabaseURLError(ValueError):
    """The --db value is not a database URL we can use; the message says what to pass."""


class DatabaseOpenError(RuntimeError):
    """The database exists but is not one the crawler may use; the message says why."""


class NoDatabase(DatabaseOpenError):
    """A read-only command was pointed at a SQLite file that does not exist."""


def default_db_url() -> str:
    return os.environ.get("CRAWLER_DB") or DEFAULT_DB


def where(engine: Engine) -> str:
    """The database as a message names it: the file for SQLite, the URL without its password
    otherwise."""
    if engine.dialect.name == "sqlite":
        return str(engine.url.database)
    return engine.url.render_as_string(hide_password=True)


def busy_timeout_s(engine: Engine) -> float:
    """How long one SQLite statement waits for another process's write lock."""
    return engine.get_execution_options().get("busy_timeout_s", DEFAULT_BUSY_TIMEOUT_S)


def is_read_only(engine: Engine) -> bool:
    return bool(engine.get_execution_options().get("read_only"))


def _sqlite_pragmas(read_only: bool, busy_timeout_ms: int):
    def on_connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
        else:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA wal_autocheckpoint=10000")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return on_connect


def _sqlite_begin(conn) -> None:
    # A writer takes the write lock at BEGIN, so two writers queue on busy_timeout instead of
    # failing with "database is locked" when a read transaction tries to upgrade. Readers
    # (opened with `reading()`) begin deferred and never block a writer under WAL.
    options = conn.get_execution_options()
    if options.get("foreign_keys_off"):  # only outside a transaction does this take effect
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
    if options.get("read_only"):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def reading(engine: Engine) -> Connection:
    """A connection for queries only: `with reading(engine) as conn: ...`."""
    return engine.connect().execution_options(read_only=True)


def _check_sqlite_file(path: Path) -> None:
    """Refuse a file that is not a SQLite database, or is another program's database, before
    anything writes to it (even setting WAL mode would change it for good)."""
    if path.is_dir():
        raise DatabaseOpenError(
            f"cannot open database {path}: it is a folder; point --db at a file in it, e.g. "
            f"sqlite:///{path / 'crawl.db'}"
        )
    if not path.exists() or path.stat().st_size == 0:
        return
    conn = None
    try:
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
        query = "SELECT name FROM sqlite_master WHERE type = 'table'"
        tables = [row[0] for row in conn.execute(query)]
    except sqlite3.DatabaseError as exc:
        raise DatabaseOpenError(
            f"cannot open database {path}: {exc}; it is left untouched, point --db at a new "
            "file or at a crawler database"
        ) from None
    finally:
        if conn is not None:
            conn.close()
    if tables and "alembic_version" not in tables:
        shown = ", ".join(sorted(tables)[:5])
        raise DatabaseOpenError(
            f"cannot open database {path}: it is another program's database (it holds "
            f"{shown}); it is left untouched, point --db at a new file"
        )


def _frozen(path: Path) -> bool:
    """The database is on a read-only file system (or in a folder we may not write) and has
    no write-ahead log waiting: its file is all there is and nothing can change it."""
    wal = Path(f"{path}-wal")
    return not os.access(path.parent, os.W_OK) and not (wal.exists() and wal.stat().st_size)


def _busy_timeout(parsed: URL) -> tuple[URL, float]:
    """`?timeout=S` on a SQLite URL (pysqlite's own parameter) sets how long a writer waits for
    another process's lock; it is taken off the URL, we set it ourselves."""
    raw = parsed.query.get("timeout")
    if raw is None:
        return parsed, DEFAULT_BUSY_TIMEOUT_S
    try:
        seconds = float(raw if isinstance(raw, str) else raw[0])
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 3600:
        raise DatabaseURLError(f"?timeout= on a SQLite URL takes seconds, 0 to 3600, not {raw!r}")
    return parsed.difference_update_query(["timeout"]), seconds


def _sqlite_engine(raw: str, parsed: URL, read_only: bool) -> Engine:
    if (
        not parsed.database
        or parsed.database == ":memory:"
        or parsed.database.startswith("file::memory:")
    ):
        raise DatabaseURLError(
            f"{raw!r} is an in-memory database: the crawl would be lost when the command "
            "ends; give a file, e.g. sqlite:///crawl.db"
        )
    parsed, busy_s = _busy_timeout(parsed)
    path = Path(parsed.database).expanduser().resolve()
    if not path.parent.is_dir():
        raise DatabaseURLError(
            f"folder {path.parent} for the SQLite database does not exist; create it first"
        )
    _check_sqlite_file(path)
    if read_only and not path.exists():
        raise NoDatabase(f"there is no database at {path}")

    def connect() -> sqlite3.Connection:
        if read_only:  # never creates the file, never writes to it
            uri = f"file:{quote(str(path))}?mode=ro"
            if _frozen(path):
                # SQLite cannot make the -shm file a WAL reader needs; nobody can write the
                # file either, so it is read as the immutable file it is.
                uri += "&immutable=1"
            return sqlite3.connect(uri, uri=True, timeout=busy_s, check_same_thread=False)
        return sqlite3.connect(str(path), timeout=busy_s, check_same_thread=False)

    engine = create_engine(parsed.set(database=str(path)), creator=connect)
    event.listen(engine, "connect", _sqlite_pragmas(read_only, int(busy_s * 1000)))
    event.listen(engine, "begin", _sqlite_begin)
    return engine.execution_options(read_only=read_only, busy_timeout_s=busy_s)


WRITER_NAME = "crawler"  # pg_stat_activity.application_name of the crawler's writers
LOCK_WAIT_MS = 2_000
IDLE_IN_TRANSACTION_MS = 5_000  # a writer's transactions never wait on anything but the database


def make_engine(url: str | None = None, *, read_only: bool = False) -> Engine:
    """An engine for `url` (default: $CRAWLER_DB, else ./crawl.db). Raises DatabaseURLError
    for a URL we cannot use and DatabaseOpenError for a file that is not ours. A read-only
    engine never creates or changes anything: SQLite is opened with mode=ro and query_only,
    PostgreSQL sessions start read-only."""
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
        return _sqlite_engine(raw, parsed, read_only)
    if parsed.drivername != "postgresql+psycopg":
        raise DatabaseURLError(
            f"database {parsed.drivername!r} is not supported; use sqlite:///FILE or "
            "postgresql+psycopg://user:pass@host/dbname"
        )
    # A worker paused or wedged inside a transaction would hold its hosts' row locks, and
    # every other worker would wait on them for ever: the server ends such a transaction
    # (the writer's retry runs it again). Not a reader's: an export waits on its own reader.
    # One stopped while a statement was on its way is not idle, and holds them until it is
    # ended: a writer waits for a lock at most LOCK_WAIT_MS (then its retry beats and judges,
    # and the burial ends the stalled run's sessions, found by their application name).
    if read_only:
        options = "-c default_transaction_read_only=on"
    else:
        options = (
            f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS} "
            f"-c lock_timeout={LOCK_WAIT_MS} -c application_name={WRITER_NAME}"
        )
    connect_args = {"options": options}
    try:
        engine = create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    except (NoSuchModuleError, ImportError, ArgumentError, ValueError) as exc:
        raise DatabaseURLError(
            f"cannot use database {parsed.render_as_string(hide_password=True)!r}: {exc}"
        ) from None
    return engine.execution_options(read_only=read_only)
