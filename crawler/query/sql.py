"""Read-only SQL on a crawl database: `crawler sql "SELECT ..."`.

Read-only by construction, never by looking at the statement's words. The database itself
refuses a write, in layers, each of which would refuse it alone:

SQLite: the file is opened with mode=ro and `PRAGMA query_only`; an authorizer (SQLite asks it
about every action while it compiles the statement, and while VACUUM runs) allows reading,
functions and the pragmas that only report, and denies everything else: writes, temp tables,
ATTACH and VACUUM INTO (which would make a new file even on a read-only connection),
transaction control, pragmas that change something, load_extension; and no database may be
attached (`SQLITE_LIMIT_ATTACHED` 0). sqlite3 runs one statement per call and refuses a second.
No transaction is begun: VACUUM would refuse to run inside one before the authorizer could name
what it is refused for.

PostgreSQL: the session starts read-only (the engine), the statement runs in a
`BEGIN ... READ ONLY` transaction whose first snapshot is taken before the statement (after that
PostgreSQL will not make it read-write again) and which is always rolled back, with a
statement_timeout, as `pg_read_all_data` when the login may assume it (superuser-only
functions are then denied), and through a server-side cursor: `DECLARE ... CURSOR FOR` takes
only a query (SELECT, TABLE, VALUES, WITH ... SELECT without data-modifying parts), and is sent
with the extended protocol, which takes one statement only. So COMMIT, SET, COPY, DO, VACUUM,
LOCK, CREATE ... never run, and the rows stream in batches.

Either way the connection is closed afterwards, not given back to the pool, so nothing the
statement set (a GUC, an advisory lock) outlives it.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine

from crawler.errors import CrawlerError, DatabaseError, UsageError
from crawler.store.engine import busy_timeout_s
from crawler.store.failures import Failure, classify, explain

if TYPE_CHECKING:
    import psycopg

ONLY_READS = "crawler sql only reads"
STATEMENT_TIMEOUT_S = 300  # PostgreSQL: a statement (or one batch of its rows) may take this long
BATCH = 500  # rows fetched from a PostgreSQL cursor at a time
_CURSOR = "crawler_sql"
_AGAIN = "run the command again"


class RefusedStatement(UsageError):
    """The database refused the statement because it would write (or is not a single query);
    `crawler sql` only reads. The message is one line saying what was refused and why."""


@dataclass(frozen=True, slots=True)
class SqlRows:
    """A statement's result: its column names, and its rows as they come (streamed)."""

    columns: tuple[str, ...]
    rows: Iterator[tuple]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _refused(why: str) -> RefusedStatement:
    return RefusedStatement(f"{ONLY_READS}: {why}")


def _check(statement: str) -> None:
    if not statement.strip():
        raise UsageError('give one SQL statement, e.g. crawler sql "SELECT count(*) FROM pages"')


@contextmanager
def read_only_statement(engine: Engine, statement: str) -> Iterator[SqlRows]:
    """Run one statement on `engine` (from `crawler.api.open_db_read_only`) and yield its
    columns and streamed rows; use the rows inside the `with`. A statement that would write
    raises RefusedStatement; invalid SQL a UsageError; a database failure a DatabaseError."""
    _check(statement)
    try:
        conn = engine.connect()
    except Exception as exc:
        raise _failure(engine, exc) or exc from None
    try:
        if engine.dialect.name == "sqlite":
            with _sqlite_statement(engine, conn, statement) as result:
                yield result
        else:
            with _postgres_statement(engine, conn, statement) as result:
                yield result
    finally:
        # Whatever the statement changed in the session (a pragma, a GUC, an advisory lock)
        # goes with the connection: it is closed, not given back to the pool.
        conn.invalidate()
        conn.close()


def sql(
    statement: str, *, db: str | None = None, limit: int | None = None
) -> tuple[tuple[str, ...], list[tuple]]:
    """The Python API: run one read-only statement on `db` and return its column names and
    rows (at most `limit`). Raises as `read_only_statement` does."""
    from crawler.api import open_db_read_only  # the API opens databases one way for all

    if limit is not None and limit < 0:
        raise UsageError(f"limit is a number of rows, 0 or more, not {limit}")
    engine = open_db_read_only(db)
    try:
        with read_only_statement(engine, statement) as result:
            return result.columns, list(itertools.islice(result.rows, limit))
    finally:
        engine.dispose()


def _failure(engine: Engine, exc: BaseException) -> CrawlerError | None:
    """A database that failed (locked, gone, full, I/O) as one line; None for anything else."""
    failure = classify(exc)
    if failure is None or failure is Failure.READ_ONLY:
        return None
    waited = busy_timeout_s(engine) if failure is Failure.LOCKED else 0.0
    return DatabaseError(explain(failure, engine, exc, waited, _AGAIN))


def _streamed(
    first: list[tuple],
    fetch: Callable[[], list[tuple]],
    errors: tuple[type[BaseException], ...],
    mapped: Callable[[BaseException], BaseException],
) -> Iterator[tuple]:
    """The rows already fetched, then the rest batch by batch, a driver's error on the way
    mapped to the error a user sees."""
    yield from first
    while True:
        try:
            batch = fetch()
        except errors as exc:
            raise mapped(exc) from None
        if not batch:
            return
        yield from batch


# SQLite ---------------------------------------------------------------------------------


# fmt: off
_ACTION_NAMES = (
    "CREATE_INDEX", "CREATE_TABLE", "CREATE_TEMP_INDEX", "CREATE_TEMP_TABLE",
    "CREATE_TEMP_TRIGGER", "CREATE_TEMP_VIEW", "CREATE_TRIGGER", "CREATE_VIEW", "DELETE",
    "DROP_INDEX", "DROP_TABLE", "DROP_TEMP_INDEX", "DROP_TEMP_TABLE", "DROP_TEMP_TRIGGER",
    "DROP_TEMP_VIEW", "DROP_TRIGGER", "DROP_VIEW", "INSERT", "PRAGMA", "READ", "SELECT",
    "TRANSACTION", "UPDATE", "ATTACH", "DETACH", "ALTER_TABLE", "REINDEX", "ANALYZE",
    "CREATE_VTABLE", "DROP_VTABLE", "FUNCTION", "SAVEPOINT", "RECURSIVE",
)
# Pragmas that take an argument and only report: the argument names a table, an index or a
# schema. Any other pragma with an argument sets something.
_REPORTING_PRAGMAS = frozenset((
    "table_info", "table_xinfo", "table_list", "index_info", "index_xinfo", "index_list",
    "foreign_key_list", "foreign_key_check", "integrity_check", "quick_check",
))
# fmt: on
_ACTIONS = {getattr(sqlite3, f"SQLITE_{name}"): name for name in _ACTION_NAMES}
_READING = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE}
# Pragmas that act even without an argument.
_ACTING_PRAGMAS = frozenset(["optimize", "wal_checkpoint", "incremental_vacuum", "shrink_memory"])
_UNSAFE_FUNCTIONS = frozenset({"load_extension"})
_SQLITE_ERRORS = (sqlite3.Error, sqlite3.Warning)  # Warning: several statements, before 3.11
_SCHEMA_TABLES = frozenset({"sqlite_master", "sqlite_schema"})


class _Authorizer:
    """SQLite's authorizer callback: allows what reads, denies the rest, and remembers the
    first action it denied so that the refusal can name it."""

    def __init__(self) -> None:
        self.denied: str | None = None

    def __call__(
        self, action: int, arg1: str | None, arg2: str | None, _db: str | None, _by: str | None
    ) -> int:
        if action in _READING:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION and arg2 not in _UNSAFE_FUNCTIONS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA and _reporting_pragma(arg1 or "", arg2):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_UPDATE and arg1 in _SCHEMA_TABLES:
            # SQLite asks this while it sets up a table-valued pragma for a SELECT (e.g.
            # pragma_table_info('pages')); ignoring the column keeps such a read working, and
            # a real UPDATE of the schema table is still refused by SQLite and by mode=ro.
            return sqlite3.SQLITE_IGNORE
        if self.denied is None:
            self.denied = _describe(action, arg1, arg2)
        return sqlite3.SQLITE_DENY


def _reporting_pragma(name: str, argument: str | None) -> bool:
    name = name.lower()
    if argument is None:
        return name not in _ACTING_PRAGMAS
    return name in _REPORTING_PRAGMAS


def _describe(action: int, arg1: str | None, arg2: str | None) -> str:
    """What a denied action would have done, in words: 'delete from pages'."""
    name = _ACTIONS.get(action, f"action {action}")
    words = name.lower().replace("_", " ")
    if name == "INSERT":
        return f"insert into {arg1}"
    if name == "UPDATE":
        return f"update {arg1}"
    if name == "DELETE":
        return f"delete from {arg1}"
    if name.startswith(("CREATE_", "DROP_")) or name in ("REINDEX", "ANALYZE"):
        return f"{words} {arg1}" if arg1 else words
    if name == "ALTER_TABLE":
        return f"alter table {arg2}"
    if name == "ATTACH":  # VACUUM, VACUUM INTO and ATTACH all attach a database file
        return f"attach the database file {arg1!r}" if arg1 else "attach a temporary database"
    if name == "PRAGMA":
        return f"set PRAGMA {arg1}" if arg2 is not None else f"run PRAGMA {arg1}"
    if name == "TRANSACTION":
        return f"{(arg1 or 'control').lower()} a transaction"
    if name == "SAVEPOINT":
        return f"{(arg1 or '').lower()} savepoint {arg2}".strip()
    if name == "FUNCTION":
        return f"call {arg2}()"
    return words


@contextmanager
def _sqlite_statement(engine: Engine, conn: Connection, statement: str) -> Iterator[SqlRows]:
    raw: sqlite3.Connection = conn.connection.dbapi_connection  # type: ignore[assignment]
    authorizer = _Authorizer()

    def mapped(exc: BaseException) -> CrawlerError:
        return _sqlite_error(engine, exc, authorizer.denied)

    cursor = None
    attached = raw.getlimit(sqlite3.SQLITE_LIMIT_ATTACHED)
    try:
        raw.execute("PRAGMA query_only=ON")  # a read-only engine's own; here for any engine
        raw.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        raw.set_authorizer(authorizer)  # also makes SQLite recompile any cached statement
        try:
            cursor = raw.execute(statement)  # compiles (authorizer) and steps to the first row
        except _SQLITE_ERRORS as exc:
            raise mapped(exc) from None
        columns = tuple(d[0] for d in cursor.description or ())
        more = _streamed([], lambda: cursor.fetchmany(BATCH), _SQLITE_ERRORS, mapped)
        yield SqlRows(columns, more)
    finally:
        if cursor is not None:
            cursor.close()
        raw.set_authorizer(None)
        raw.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, attached)
        if raw.in_transaction:
            raw.rollback()


def _sqlite_error(engine: Engine, exc: BaseException, denied: str | None) -> CrawlerError:
    reason = _one_line(str(exc))
    if denied is not None:
        return _refused(f"SQLite refused to {denied} ({reason})")
    if isinstance(exc, (sqlite3.ProgrammingError, sqlite3.Warning)) and "one statement" in reason:
        return _refused(f"it runs one statement at a time, and SQLite was given more ({reason})")
    if classify(exc) is Failure.READ_ONLY:
        return _refused(f"the database refused the statement ({reason})")
    failure = _failure(engine, exc)
    if failure is not None:
        return failure
    if isinstance(exc, sqlite3.ProgrammingError) or (
        getattr(exc, "sqlite_errorname", None) == "SQLITE_ERROR"
    ):
        return UsageError(f"not valid SQL: {reason}")
    return UsageError(f"the statement failed: {reason}")


# PostgreSQL -----------------------------------------------------------------------------

_CAN_READ_ALL = (
    "SELECT CASE WHEN to_regrole('pg_read_all_data') IS NULL THEN false "
    "ELSE pg_has_role('pg_read_all_data', 'MEMBER') END"
)
_REFUSING_STATES = {
    "25006": " in a read-only transaction",  # read_only_sql_transaction
    "25001": " in a read-only transaction",  # active_sql_transaction: no going read-write
    "0A000": " in a read-only cursor",  # feature_not_supported: a data-modifying WITH
    "42501": "",  # insufficient_privilege (as pg_read_all_data: superuser-only functions)
}


@contextmanager
def _postgres_statement(engine: Engine, conn: Connection, statement: str) -> Iterator[SqlRows]:
    import psycopg

    raw: psycopg.Connection = conn.connection.dbapi_connection  # type: ignore[assignment]

    def mapped(exc: BaseException) -> BaseException:
        return _postgres_error(engine, exc) or exc

    began = False
    try:
        raw.rollback()  # whatever the pool's ping began
        raw.autocommit = True  # the transaction below is ours, begun and ended explicitly
        raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        began = True
        raw.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_S * 1000}")
        if raw.execute(_CAN_READ_ALL).fetchone()[0]:  # type: ignore[index]
            raw.execute("SET LOCAL ROLE pg_read_all_data")
        # The first snapshot: from here on PostgreSQL will not make the transaction
        # read-write again (SET TRANSACTION READ WRITE, set_config('transaction_read_only')).
        raw.execute("SELECT 1")
        raw.execute(f"SAVEPOINT {_CURSOR}")
        cursor = raw.cursor(name=_CURSOR, scrollable=False)
        try:
            cursor.execute(statement)  # DECLARE ... CURSOR FOR, extended protocol
            first = cursor.fetchmany(BATCH)  # a failure at run time shows before any row
        except psycopg.Error as exc:
            raise _postgres_refusal(raw, statement, exc) or mapped(exc) from None
        columns = tuple(d.name for d in cursor.description or ())
        more = _streamed(first, lambda: cursor.fetchmany(BATCH), (psycopg.Error,), mapped)
        yield SqlRows(columns, more)
    except psycopg.Error as exc:
        raise mapped(exc) from None
    finally:
        if began and not raw.closed:
            with suppress(psycopg.Error):  # the connection is closed next anyway
                raw.execute("ROLLBACK")


def _postgres_refusal(
    raw: psycopg.Connection, statement: str, exc: psycopg.Error
) -> CrawlerError | None:
    """A syntax error from `DECLARE ... CURSOR FOR <statement>` means either that the statement
    is not valid SQL or that it is valid but not a query (DELETE, COPY, SET, ...). PostgreSQL
    tells which: the statement alone is parsed (never run) in a savepoint."""
    from psycopg import pq

    if exc.sqlstate != "42601":
        return None
    primary = _one_line(exc.diag.message_primary or str(exc))
    if "multiple commands" in primary:
        return _one_at_a_time(primary)
    raw.execute(f"ROLLBACK TO SAVEPOINT {_CURSOR}")
    parsed = raw.pgconn.prepare(b"", statement.encode(raw.info.encoding))
    if parsed.status == pq.ExecStatus.COMMAND_OK:
        return _refused(
            "PostgreSQL runs only a query here (SELECT, TABLE, VALUES or WITH ... SELECT), and "
            f"refused this statement ({primary})"
        )
    message = parsed.error_field(pq.DiagnosticField.MESSAGE_PRIMARY)
    if message:
        primary = _one_line(message.decode(raw.info.encoding, "replace"))
    if "multiple commands" in primary:  # e.g. "COMMIT; DELETE ...": not a query, and two
        return _one_at_a_time(primary)
    return UsageError(f"not valid SQL: {primary}")


def _one_at_a_time(primary: str) -> RefusedStatement:
    return _refused(f"it runs one statement at a time, and PostgreSQL was given more ({primary})")


def _postgres_error(engine: Engine, exc: BaseException) -> CrawlerError | None:
    state = getattr(exc, "sqlstate", None)
    diag = getattr(exc, "diag", None)
    primary = _one_line((diag and diag.message_primary) or str(exc))
    if state in _REFUSING_STATES:
        return _refused(f"PostgreSQL refused the statement{_REFUSING_STATES[state]} ({primary})")
    if state == "57014":  # query_canceled: our statement_timeout
        return CrawlerError(
            f"the statement ran longer than {STATEMENT_TIMEOUT_S} s and was stopped ({primary}); "
            "narrow it down with WHERE or LIMIT"
        )
    if state == "08P01":  # protocol_violation: the statement has a parameter ($1)
        return UsageError(
            f"not valid SQL: {primary} (crawler sql takes no parameters: write the values in)"
        )
    failure = _failure(engine, exc)
    if failure is not None:
        return failure
    if state is None or state.startswith("42"):  # syntax error or access rule violation
        return UsageError(f"not valid SQL: {primary}")
    if state.startswith(("08", "53", "57", "58", "XX")):
        return None  # the server failed: not the statement's fault, raised as it is
    return UsageError(f"the statement failed: {primary}")
