"""What a database error means, and how a command meets it.

Every transaction the crawler runs goes through `retrying`: a lock held by another process
or a dropped connection is waited out with back-off for a bounded time (a restarted
PostgreSQL comes back, a long SQLite write ends); a full disk, a read-only file, or a wait
that ran out become one `DatabaseError` whose message names the database and what to do.
Anything else is a bug and is raised as it is.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from enum import Enum
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from crawler.errors import DatabaseError
from crawler.store.engine import busy_timeout_s, is_read_only, where

log = logging.getLogger(__name__)
T = TypeVar("T")
DEFAULT_RETRY_WINDOW_S = 120.0
# Until a database has answered once, a refused connection is more likely a wrong URL or a
# server not started than a restart: a command says so after this long, not after minutes.
FIRST_CONNECT_WINDOW_S = 10.0
_answered: set[URL] = set()  # databases this process has reached


class Failure(Enum):
    LOCKED = "locked"  # another process holds the write lock past the busy timeout
    DISCONNECTED = "disconnected"  # the server went away or refused us: it may come back
    CONFLICT = "conflict"  # a deadlock or serialization failure: try the transaction again
    FULL = "full"
    READ_ONLY = "read_only"
    IO = "io"  # SQLite's "disk I/O error": often a full disk or a vanished file system
    CANT_OPEN = "cant_open"


RETRIED = frozenset({Failure.LOCKED, Failure.DISCONNECTED, Failure.CONFLICT})
_PG_STATES = {
    "53100": Failure.FULL,  # disk_full
    "25006": Failure.READ_ONLY,  # read_only_sql_transaction
    "40P01": Failure.CONFLICT,  # deadlock_detected
    "40001": Failure.CONFLICT,  # serialization_failure
    "55P03": Failure.LOCKED,  # lock_not_available
    "53300": Failure.DISCONNECTED,  # too_many_connections: others will leave
    "57P01": Failure.DISCONNECTED,  # admin_shutdown
    "57P02": Failure.DISCONNECTED,  # crash_shutdown
    "57P03": Failure.DISCONNECTED,  # cannot_connect_now (starting up, shutting down)
}
_SQLITE_NAMES = {
    "SQLITE_BUSY": Failure.LOCKED,
    "SQLITE_LOCKED": Failure.LOCKED,
    "SQLITE_FULL": Failure.FULL,
    "SQLITE_READONLY": Failure.READ_ONLY,
    "SQLITE_IOERR": Failure.IO,
    "SQLITE_CANTOPEN": Failure.CANT_OPEN,
}


def classify(exc: BaseException) -> Failure | None:
    """The kind of failure a driver error is, or None for one we do not expect (a bug)."""
    orig = getattr(exc, "orig", exc)
    name = getattr(orig, "sqlite_errorname", None)
    if name is not None:  # e.g. SQLITE_IOERR_WRITE: its primary code is SQLITE_IOERR
        return _SQLITE_NAMES.get("_".join(name.split("_")[:2]))
    state = getattr(orig, "sqlstate", None)
    if state in _PG_STATES:
        return _PG_STATES[state]
    if state is not None and state.startswith("08"):  # connection_exception
        return Failure.DISCONNECTED
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return Failure.DISCONNECTED
    module = type(orig).__module__
    if module.startswith("psycopg") and type(orig).__name__ == "OperationalError":
        return Failure.DISCONNECTED  # connection refused, server closed the connection, ...
    return None


def retry_window_s(engine: Engine) -> float:
    """How long a command keeps trying a locked or unreachable database before it gives up:
    $CRAWLER_DB_RETRY_S, else 120 s (and never less than four SQLite busy timeouts)."""
    configured = os.environ.get("CRAWLER_DB_RETRY_S")
    window = float(configured) if configured else DEFAULT_RETRY_WINDOW_S
    if engine.dialect.name == "sqlite" and not configured:
        window = max(window, 4 * busy_timeout_s(engine))
    return window


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return " ".join(str(orig).split()) or type(orig).__name__


AGAIN = "run the command again"


def _writable(path: str) -> bool:
    """Whether this process may write the SQLite file and its folder (its -wal and -shm
    files live there); a read-only mount answers no even to root."""
    folder = os.path.dirname(path) or "."
    return os.access(folder, os.W_OK) and (not os.path.exists(path) or os.access(path, os.W_OK))


def explain(
    failure: Failure,
    engine: Engine,
    exc: BaseException,
    waited: float = 0.0,
    then: str = AGAIN,
    reached: bool = True,
) -> str:
    """One line: what happened to which database, and what to do (`then`: the next step once
    the cause is mended; `reached`: whether this process ever got an answer from it)."""
    db = where(engine)
    reason = _reason(exc)
    if failure is Failure.FULL:
        return (
            f"cannot write to database {db}: the disk is full ({reason}); what was stored is "
            f"intact: free some space, then {then}"
        )
    sqlite_file = engine.dialect.name == "sqlite"
    # A read-only mount says "unable to open", or "disk I/O error", not "read-only".
    if sqlite_file and failure in (Failure.CANT_OPEN, Failure.IO) and not _writable(db):
        failure = Failure.READ_ONLY
    if failure is Failure.READ_ONLY:
        hint = (
            "it (or its folder) is read-only"
            if engine.dialect.name == "sqlite"
            else "the server or this session is read-only"
        )
        if is_read_only(engine):
            hint = "this command opened it read-only"
        return (
            f"cannot write to database {db}: {hint} ({reason}); what was stored is intact: "
            f"make it writable, then {then}"
        )
    if failure is Failure.IO:
        return (
            f"cannot write to database {db}: disk I/O error ({reason}); is the disk full or the "
            f"file system gone read-only? What was stored is intact: mend that, then {then}"
        )
    if failure is Failure.CANT_OPEN:
        return (
            f"cannot open database {db} ({reason}); check that the file and its folder exist "
            "and may be written"
        )
    if failure is Failure.LOCKED:
        return (
            f"database {db} stayed locked by another process for {waited:.0f} s ({reason}); "
            f"is a program holding a write transaction open? When it is done, {then}"
        )
    if not reached:
        return (
            f"cannot connect to database {db} ({reason}); is the server running, and are the "
            "host, port, user and password in --db right?"
        )
    return (
        f"lost database {db} and could not get it back within {waited:.0f} s ({reason}); is the "
        f"server running? What was stored is intact: once it is, {then}"
    )


def retrying(
    engine: Engine,
    work: Callable[[Connection], T],
    *,
    read_only: bool = False,
    then: str = AGAIN,
    meanwhile: Callable[[Failure], None] | None = None,
) -> T:
    """Run `work(conn)` in one transaction, again after a back-off if the database is locked or
    the connection dropped, for at most the retry window; `meanwhile(failure)` before each
    wait (a worker beats its heartbeat there). `work` must be safe to run again:
    it sees nothing of a try that was rolled back."""
    window = retry_window_s(engine)
    key = engine.url
    started = time.monotonic()
    pause = 0.05
    tries = 0
    while True:
        tries += 1
        try:
            if read_only:
                with engine.connect().execution_options(read_only=True) as conn, conn.begin():
                    done = work(conn)
            else:
                with engine.begin() as conn:
                    done = work(conn)
            _answered.add(key)
            return done
        except DBAPIError as exc:
            failure = classify(exc)
            if failure is None:
                raise
            waited = time.monotonic() - started
            reached = key in _answered or failure is not Failure.DISCONNECTED
            limit = window if reached else min(window, FIRST_CONNECT_WINDOW_S)
            if failure not in RETRIED or waited + pause > limit:
                raise DatabaseError(explain(failure, engine, exc, waited, then, reached)) from exc
            if failure is Failure.DISCONNECTED:
                engine.dispose()  # every pooled connection is as dead as this one
            if tries == 1 or tries % 10 == 0:
                log.info("database %s: %s; trying again", where(engine), _reason(exc))
            if meanwhile is not None:
                meanwhile(failure)
            time.sleep(pause * random.uniform(0.5, 1.0))
            pause = min(pause * 2, 2.0)
