"""The crawl database in a browser through Datasette, read-only.

`serve` checks the database as every read-only command does (a SQLite file at this crawler's
schema), then runs Datasette in this process on a socket bound here, so that a busy port is
one clear line and not a server log. The canned queries, facets and titles are in
browse.yaml beside this file; the tables' and columns' descriptions come from the models.

How the file is opened, and why:

* Normally immutable (SQLite's `immutable=1`, Datasette's `-i`): Datasette takes no lock and
  writes nothing, and it works on read-only media. SQLite then reads the main file only.
  (The schema check before it opens the file `mode=ro`, as every read-only command does,
  which may leave an empty -wal and a -shm beside it; the file itself is not written.)
* If a non-empty write-ahead log lies beside it (a crawl is running, or one was killed before
  its last checkpoint), immutable would hide the rows in the log and could read the file
  half-checkpointed while a crawl writes. It is then opened read-only but not immutable
  (`mode=ro`, Datasette's mutable mode without a write connection): every request sees the
  latest committed rows, and a running crawl is not blocked. SQLite may create or update the
  -shm index beside it then; the database file and its log are never written.

A crawl started after `crawler browse` on a file opened immutable is not seen: restart it.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from crawler.errors import UsageError
from crawler.query.options import BROWSE_PORT
from crawler.store.engine import default_db_url
from crawler.store.models import Base

DATASETTE_PIN = "datasette==0.65.5"
METADATA_FILE = "browse.yaml"
_INSTALL_HINT = (
    f"crawler browse needs Datasette, which is not installed: pip install '{DATASETTE_PIN}' "
    "(or install the crawler with its browse extra: pip install -e '.[browse]')"
)


class _Stop(Exception):
    """Ctrl-C or SIGTERM outside the server's own handlers: stop and return 0."""


def serve(
    db: str | None,
    *,
    port: int = BROWSE_PORT,
    host: str = "127.0.0.1",
    on_ready: Callable[[str], Any] | None = None,
) -> int:
    """Blocks serving Datasette until Ctrl-C/SIGTERM; returns an exit code (0: stopped on
    request). Port 0 takes any free port; `on_ready` is told, in a line for the user, where
    it serves. Raises UsageError for a PostgreSQL URL, a missing file, a busy port, or
    Datasette not installed."""
    path = sqlite_file(db)
    immutable = not wal_pending(path)
    try:
        from datasette.app import Datasette
        from uvicorn import Config, Server
    except ImportError:
        raise UsageError(_INSTALL_HINT) from None

    metadata, settings = datasette_metadata(path.stem)
    files = [str(path)]
    ds = Datasette(
        files=[] if immutable else files,
        immutables=files if immutable else [],
        metadata=metadata,
        settings=settings,
    )
    sock = _bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    mode = "immutable" if immutable else "read-only, live: a write-ahead log is pending"
    if on_ready is not None:
        on_ready(
            f"serving {path} ({mode}) through Datasette on http://{shown}:{bound_port}/ "
            "(Ctrl-C stops)"
        )
    config = Config(
        ds.app(),
        host=host,
        port=bound_port,
        lifespan="on",
        log_config=None,  # keep the crawler's logging set-up
        log_level="warning",
        access_log=False,
    )
    try:
        with sock, _stop_on_signals():
            Server(config).run(sockets=[sock])
    except _Stop:
        pass
    return 0


def sqlite_file(db: str | None) -> Path:
    """The crawl database's file, checked as every read-only command checks it: this
    crawler's schema at head, nothing written. A PostgreSQL URL is refused by its URL alone."""
    raw = db or default_db_url()
    try:
        driver = make_url(raw).drivername
    except (ArgumentError, ValueError):
        driver = ""  # open_db_read_only says what is wrong with it
    if driver.startswith("postgresql"):
        raise UsageError(
            "crawler browse serves SQLite files only (Datasette reads SQLite, not "
            'PostgreSQL); query this database with `crawler sql "SELECT ..." --db URL`'
        )
    from crawler.api import open_db_read_only

    engine = open_db_read_only(raw)
    try:
        return Path(str(engine.url.database))
    finally:
        engine.dispose()


def wal_pending(path: Path) -> bool:
    """Whether committed rows may wait in the write-ahead log rather than the file. An empty
    -wal (left by a reader) holds none."""
    wal = Path(f"{path}-wal")
    try:
        return wal.stat().st_size > 0
    except FileNotFoundError:
        return False


def datasette_metadata(database: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Datasette's metadata and settings for a database that Datasette names `database`:
    browse.yaml, with each table's and column's description from the models' docstrings."""
    from datasette.utils import parse_metadata

    text = resources.files(__package__).joinpath(METADATA_FILE).read_text(encoding="utf-8")
    metadata = parse_metadata(text)
    settings = metadata.pop("settings", {})
    per_db = metadata.pop("database")
    tables = per_db.setdefault("tables", {})
    for mapper in Base.registry.mappers:
        table = mapper.local_table
        entry = tables.setdefault(table.name, {})
        doc = " ".join((mapper.class_.__doc__ or "").split())
        if doc:
            entry.setdefault("description", doc)
        columns = {column.name: column.doc for column in table.columns if column.doc}
        if columns:
            entry.setdefault("columns", columns)
    metadata["databases"] = {database: per_db}
    return metadata, settings


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free one), or one line saying why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, OverflowError) as exc:
        raise UsageError(f"cannot serve on {host}:{port}: {exc}; check --host and --port") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise UsageError(
            f"cannot serve on {host}:{port}: {reason}; pick another --port or --host"
        ) from None
    return sock


class _stop_on_signals:
    """SIGINT and SIGTERM stop the server and `serve` returns 0. Uvicorn takes both while it
    runs, shuts down cleanly, then re-raises the signal to the handlers it found: these,
    which end the call instead of killing the process or raising KeyboardInterrupt."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self) -> None:
        self.saved: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.saved[sig] = signal.signal(sig, self._raise)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)

    @staticmethod
    def _raise(_sig: int, _frame: object) -> None:
        raise _Stop
