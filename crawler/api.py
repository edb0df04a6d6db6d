"""The public Python API; the command line is a thin layer over it.

import crawler
summary = crawler.crawl(["http://127.0.0.1:8000/"], backend="threads", concurrency=16)

Crawl settings are keywords named as in `crawler.settings.CrawlSettings` (`max_pages=50`,
`per_host_delay=0.5`, ...), checked as the command line checks them.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import ada_url
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from crawler.coordinator import Progress
from crawler.errors import CrawlerError, DatabaseError, DeclaredDead, Interrupted, UsageError
from crawler.fetch.guard import is_public_address
from crawler.frontier.enqueue import enqueue
from crawler.model import CrawlSummary, SubmittedCrawl
from crawler.policy.links import NewURL
from crawler.runner import run_crawl
from crawler.settings import CrawlSettings, RunSettings
from crawler.store import DatabaseOpenError, DatabaseURLError, make_engine, migrate
from crawler.store.engine import NoDatabase, where
from crawler.store.failures import retrying
from crawler.store.models import Crawl
from crawler.store.queries import find_crawl, find_crawl_by_name, last_run, totals
from crawler.urls import DEFAULT_PORTS, BadURL, canonicalize

crawls_t = Crawl.__table__
log = logging.getLogger(__name__)
_POINT_AT_ONE = "crawl first, or point --db (or $CRAWLER_DB) at an existing database"
MAX_NAME_LENGTH = 200
ProgressCallback = Callable[[Progress], None]


def _engine(db: str | None, *, read_only: bool = False) -> Engine:
    """make_engine, its errors turned into the ones a user sees."""
    try:
        return make_engine(db, read_only=read_only)
    except NoDatabase as exc:
        raise UsageError(f"{exc}; {_POINT_AT_ONE}") from None
    except DatabaseURLError as exc:
        raise UsageError(str(exc)) from None
    except DatabaseOpenError as exc:
        raise CrawlerError(str(exc)) from None


def open_db(db: str | None = None, *, create: bool = True) -> Engine:
    """An engine on `db` with the schema at head; a new SQLite file is created only when
    `create` (a crawl starts one, a resume needs one)."""
    engine = _engine(db)
    if not create and engine.dialect.name == "sqlite":
        _engine(db, read_only=True).dispose()  # NoDatabase for a missing file
    migrate.upgrade(engine)
    return engine


def open_db_read_only(db: str | None = None) -> Engine:
    """A read-only engine on `db`, which must be at this crawler's schema (nothing is migrated
    or created; a missing SQLite file is an error naming it)."""
    engine = _engine(db, read_only=True)
    migrate.require_head(engine)
    return engine


def upgrade_db(db: str | None = None) -> str:
    engine = open_db(db)
    engine.dispose()
    return where(engine)


def _check_seeds(seeds: Sequence[str]) -> list[str]:
    if not seeds:
        raise UsageError("give at least one seed URL, e.g. http://127.0.0.1:8000/")
    canonical = []
    for seed in seeds:
        try:
            canonical.append(canonicalize(seed.strip()))
        except BadURL as exc:
            raise UsageError(
                f"malformed seed {seed!r}: {exc}; give a full http(s) URL such as "
                "http://127.0.0.1:8000/"
            ) from None
    return list(dict.fromkeys(canonical))


def _check_reachable(seeds: list[str], timeout: float) -> bool:
    """Fail early, before anything is stored, when no seed's server can be reached at all; a
    seed that cannot is crawled with the others and stored as that seed's error. Returns
    whether a seed is on a public address: then the crawl may not be led to this machine or a
    private network (server-side request forgery)."""
    public, failures = False, []
    for seed in seeds:
        parsed = ada_url.URL(seed)
        host = parsed.hostname.strip("[]")
        port = int(parsed.port or DEFAULT_PORTS[parsed.protocol.rstrip(":")])
        try:
            addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            failures.append(
                f"cannot reach seed {seed}: host {host!r} does not resolve ({exc.strerror}); "
                "check the spelling of the URL"
            )
            continue
        public = public or any(is_public_address(address[4][0]) for address in addresses)
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            failures.append(
                f"cannot reach seed {seed}: {reason}; is the site up? "
                "(for the fixture site, run `crawler fixtures serve` first)"
            )
    if len(failures) == len(seeds):
        raise CrawlerError(
            failures[0] if len(seeds) == 1 else "no seed answers: " + "; ".join(failures)
        )
    for failure in failures:
        log.warning("%s; crawling the other seeds", failure)
    return public


def _load_crawl(engine: Engine, crawl: str | int):
    row = retrying(engine, lambda conn: find_crawl(conn, crawl), read_only=True)
    if row is None:
        raise UsageError(
            f"no crawl {crawl!r} in database {where(engine)}; list them with `crawler crawls`"
        )
    return row


def submit(
    seeds: Sequence[str],
    *,
    name: str,
    db: str | None = None,
    exists_ok: bool = False,
    **settings: Any,
) -> SubmittedCrawl:
    """Create a crawl without running it: `worker` joins it, on any machine that reaches the
    database. With `exists_ok`, a crawl of that name with the same seeds and settings is
    taken as it is (a deployment that submits again on every start)."""
    checked = CrawlSettings.checked(**settings)
    canonical_seeds = _check_seeds(seeds)
    _check_name(name)
    engine = open_db(db)
    try:
        return _new_crawl(
            engine, canonical_seeds, name, checked, exists_ok=exists_ok, join="worker"
        )
    finally:
        engine.dispose()


def _new_crawl(
    engine: Engine,
    seeds: list[str],
    name: str,
    settings: CrawlSettings,
    *,
    exists_ok: bool = False,
    join: str,
) -> SubmittedCrawl:
    """The crawl's row and its seeds, under a name not taken (`join`: the command the error
    names for the crawl that has it); with `exists_ok`, the same crawl found is taken."""

    def found(existing) -> SubmittedCrawl:
        if not exists_ok:
            raise UsageError(
                f"a crawl named {name!r} exists already; "
                f"{'join' if join == 'worker' else 'continue'} it with `crawler {join} {name}` "
                "or pick another --name"
            )
        _check_same(existing, seeds, settings)
        return SubmittedCrawl(existing.id, name, seeds, created=False)

    def existing():
        return retrying(engine, lambda conn: find_crawl_by_name(conn, name), read_only=True)

    if (row := existing()) is not None:
        return found(row)
    if _check_reachable(seeds, settings.policy().connect_timeout):
        settings = settings.with_public_seeds()
    try:
        crawl_id = retrying(engine, lambda conn: _create(conn, name, seeds, settings))
    except IntegrityError:  # another submit of the same name got there first
        return found(existing())
    return SubmittedCrawl(crawl_id, name, seeds, created=True)


def worker(
    crawl: str | int,
    *,
    backend: str = "threads",
    concurrency: int = 16,
    db: str | None = None,
    on_progress: ProgressCallback | None = None,
    pool_returns: str = "pages",
    parser: str | None = None,
) -> CrawlSummary:
    """Join a crawl (made by `submit`, or by `crawl` elsewhere) and work on it until it is
    finished: nothing queued and no live run holding a lease. Any number of workers, each
    with its own frontend, may work on one crawl at once. A finished crawl starts no run: the
    summary has no run_id."""
    run = RunSettings.checked(
        backend=backend, concurrency=concurrency, pool_returns=pool_returns, parser=parser
    )
    engine = open_db(db, create=False)
    try:
        row = _load_crawl(engine, crawl)
        if row.state == "finished":
            counts = retrying(engine, lambda conn: totals(conn, row.id), read_only=True)
            return CrawlSummary(row.id, row.name, "finished", **counts, run=None)
        return run_crawl(engine, row.id, run, on_progress, rejoin="worker")
    finally:
        engine.dispose()


def _check_name(name: str | None) -> None:
    if name is not None and not 0 < len(name) <= MAX_NAME_LENGTH:
        raise UsageError(f"--name must be 1 to {MAX_NAME_LENGTH} characters")


def _check_same(row, seeds: list[str], settings: CrawlSettings) -> None:
    """A crawl submitted again must be the same crawl, or the name is taken."""
    stored = CrawlSettings.from_json(row.settings)
    if list(row.seeds) != seeds or replace(stored, block_private_addresses=False) != replace(
        settings, block_private_addresses=False
    ):
        raise UsageError(
            f"a crawl named {row.name!r} exists already with other seeds or settings; "
            "pick another --name"
        )


def _create(conn, name: str, seeds: list[str], settings: CrawlSettings) -> int:
    """The crawl's row and its seeds in the frontier."""
    crawl_id = conn.execute(
        insert(crawls_t).returning(crawls_t.c.id),
        {
            "name": name,
            "seeds": seeds,
            "settings": settings.to_json(),
            "state": "running",
            "urls_started": 0,
        },
    ).scalar_one()
    enqueue(conn, crawl_id, [NewURL.of(seed, depth=0) for seed in seeds])
    return crawl_id


def crawl(
    seeds: Sequence[str],
    *,
    backend: str = "threads",
    concurrency: int = 16,
    db: str | None = None,
    name: str | None = None,
    on_progress: ProgressCallback | None = None,
    pool_returns: str = "pages",
    parser: str | None = None,
    **settings: Any,
) -> CrawlSummary:
    """Crawl from `seeds` to completion (or to a limit) and return what the run did.
    `settings` are CrawlSettings fields (max_pages, max_depth, allow_hosts, timeout, ...)."""
    run = RunSettings.checked(
        backend=backend, concurrency=concurrency, pool_returns=pool_returns, parser=parser
    )
    checked = CrawlSettings.checked(**settings)
    _check_name(name)
    canonical_seeds = _check_seeds(seeds)
    engine = open_db(db)
    name = name or f"crawl-{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}"
    try:
        made = _new_crawl(engine, canonical_seeds, name, checked, join="resume")
        return run_crawl(engine, made.crawl_id, run, on_progress)
    finally:
        engine.dispose()


def resume(
    crawl: str | int,
    *,
    backend: str | None = None,
    concurrency: int | None = None,
    db: str | None = None,
    on_progress: ProgressCallback | None = None,
    pool_returns: str | None = None,
    parser: str | None = None,
    **budgets: Any,
) -> CrawlSummary:
    """Continue a crawl that was interrupted (or join one that is running), with the frontend,
    concurrency and parser it last ran with unless told otherwise. `budgets` (max_pages, max_depth,
    max_pages_per_host) replace the crawl's own and are stored with it. A finished crawl with
    nothing left under its budgets starts no run: its summary has no run_id."""
    engine = open_db(db, create=False)
    try:
        row = _load_crawl(engine, crawl)
        last = retrying(engine, lambda conn: last_run(conn, row.id), read_only=True)
        run = _resumed_run(last, backend, concurrency, pool_returns, parser)
        settings = CrawlSettings.from_json(row.settings)
        if budgets:
            settings = settings.with_budgets(**budgets)
        more = retrying(engine, lambda conn: _resume_crawl(conn, row, settings, budgets))
        if not more:
            counts = retrying(engine, lambda conn: totals(conn, row.id), read_only=True)
            return CrawlSummary(row.id, row.name, "finished", **counts, run=None)
        return run_crawl(engine, row.id, run, on_progress)
    finally:
        engine.dispose()


def _resumed_run(
    last,
    backend: str | None,
    concurrency: int | None,
    pool_returns: str | None,
    parser: str | None,
) -> RunSettings:
    """The frontend, concurrency and parser the crawl last ran with, for what is not given; a
    new frontend does not inherit the old one's concurrency (4 processes are not 4 tasks)."""
    if last is not None and backend in (None, last.frontend):
        backend = last.frontend
        concurrency = concurrency if concurrency is not None else last.concurrency
    if last is not None and parser is None:
        parser = last.parser  # None before schema 0006: the default
    return RunSettings.checked(
        backend=backend, concurrency=concurrency, pool_returns=pool_returns, parser=parser
    )


def _resume_crawl(conn, row, settings: CrawlSettings, budgets: dict[str, Any]) -> bool:
    """Store the new budgets; whether the crawl has anything left to do under them (a finished
    crawl that has is running again)."""
    now = conn.execute(select(crawls_t).where(crawls_t.c.id == row.id)).one()
    budget_left = settings.max_pages is None or now.urls_started < settings.max_pages
    more = now.state != "finished" or (totals(conn, row.id)["queued"] > 0 and budget_left)
    values: dict[str, Any] = {"settings": settings.to_json()} if budgets else {}
    if more and now.state == "finished":
        values |= {"state": "running", "finished_at": None}
    if values:
        conn.execute(update(crawls_t).where(crawls_t.c.id == row.id).values(**values))
    return more


__all__ = [
    "CrawlSettings",
    "CrawlerError",
    "DatabaseError",
    "DeclaredDead",
    "Interrupted",
    "UsageError",
    "crawl",
    "resume",
    "submit",
    "upgrade_db",
    "worker",
]
