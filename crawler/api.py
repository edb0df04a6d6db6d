"""The public Python API; the command line is a thin layer over it.

import crawler
summary = crawler.crawl(["http://127.0.0.1:8000/"], backend="threads", concurrency=16)
"""

from __future__ import annotations

import csv
import json
import os
import socket
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TextIO

import ada_url
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import DBAPIError, OperationalError

from crawler import frontends
from crawler.frontends import BackendUnavailable, ProgressCallback
from crawler.frontier import Frontier, Limits, frontier_row, insert_ignoring_duplicates
from crawler.model import DEFAULT_USER_AGENT, CrawlSummary, FetchPolicy
from crawler.runs import RunMeter, process_alive, this_host
from crawler.store import DatabaseOpenError, DatabaseURLError, make_engine, migrate, reading
from crawler.store.models import Crawl, Run, utcnow
from crawler.store.queries import (
    EXPORT_FIELDS,
    export_records,
    find_crawl,
    find_crawl_by_name,
    totals,
)
from crawler.urls import DEFAULT_PORTS, BadURL, Scope, canonicalize, normalize_host

crawls_t = Crawl.__table__
runs_t = Run.__table__
MAX_TIMEOUT_S = 3600.0
MAX_NAME_LENGTH = 200


class CrawlerError(Exception):
    """The crawler cannot go on; the message says what was wrong and what to do."""

    exit_code = 1


class Interrupted(CrawlerError):
    """Ctrl-C or SIGTERM stopped a run; what finished is stored and the crawl can be resumed."""

    exit_code = 130


class UsageError(CrawlerError):
    """Bad input from the user: a malformed seed, an unknown backend, a bad --db URL."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class CrawlSettings:
    """Everything about a crawl but the frontend; stored with it so `resume` needs none of it."""

    max_pages: int | None = None
    max_depth: int | None = None
    allow_hosts: tuple[str, ...] = ()
    timeout: float = 30.0
    user_agent: str = DEFAULT_USER_AGENT
    max_redirects: int = 5

    def policy(self) -> FetchPolicy:
        return FetchPolicy(
            user_agent=self.user_agent,
            connect_timeout=min(5.0, self.timeout),
            read_timeout=min(10.0, self.timeout),
            deadline=self.timeout,
        )

    def limits(self) -> Limits:
        return Limits(
            max_pages=self.max_pages, max_depth=self.max_depth, max_redirects=self.max_redirects
        )

    @classmethod
    def from_json(cls, data: dict) -> CrawlSettings:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["allow_hosts"] = tuple(known.get("allow_hosts", ()))
        return cls(**known)


def open_db(db: str | None = None) -> Engine:
    """An engine on `db` with the schema at head (a new SQLite file is created)."""
    try:
        engine = make_engine(db)
        migrate.upgrade(engine)
    except DatabaseURLError as exc:
        raise UsageError(str(exc)) from None
    except DatabaseOpenError as exc:
        raise CrawlerError(str(exc)) from None
    except (OperationalError, DBAPIError) as exc:
        where = db or "the default database"
        reason = str(exc.orig) if getattr(exc, "orig", None) else str(exc)
        raise CrawlerError(
            f"cannot open database {where}: {reason.strip()}; check the --db URL, that the "
            "file is a crawler database (not another file), and that the server is running"
        ) from None
    return engine


def upgrade_db(db: str | None = None) -> str:
    engine = open_db(db)
    engine.dispose()
    return engine.url.render_as_string(hide_password=True)


def _check_backend(backend: str) -> None:
    try:
        frontends.load(backend)
    except BackendUnavailable as exc:
        raise UsageError(str(exc)) from None


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


def _check_allowed_host(host: str) -> str:
    try:
        return normalize_host(host)
    except BadURL as exc:
        raise UsageError(
            f"--allow-host takes a host name such as docs.example.org: {exc}"
        ) from None


def _check_user_agent(user_agent: str) -> str:
    if not user_agent.strip() or any(ord(c) < 32 or ord(c) == 127 for c in user_agent):
        raise UsageError("--user-agent must be one line of printable text")
    try:
        user_agent.encode("latin-1")
    except UnicodeEncodeError:
        raise UsageError(
            "--user-agent must be plain Latin-1 text: HTTP headers cannot carry other characters"
        ) from None
    return user_agent


def _check_reachable(seeds: list[str], timeout: float) -> None:
    """Fail early, before anything is stored, when a seed's server cannot be reached at all."""
    for seed in seeds:
        parsed = ada_url.URL(seed)
        host = parsed.hostname.strip("[]")
        port = int(parsed.port or DEFAULT_PORTS[parsed.protocol.rstrip(":")])
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except socket.gaierror as exc:
            raise CrawlerError(
                f"cannot reach seed {seed}: host {host!r} does not resolve ({exc.strerror}); "
                "check the spelling of the URL"
            ) from None
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise CrawlerError(
                f"cannot reach seed {seed}: {reason}; is the site up? "
                "(for the fixture site, run `crawler fixtures serve` first)"
            ) from None


def _load_crawl(engine: Engine, crawl: str | int):
    with reading(engine) as conn:
        row = find_crawl(conn, crawl)
    if row is None:
        raise UsageError(f"no crawl {crawl!r} in this database; list them with `crawler crawls`")
    return row


def crawl(
    seeds: Sequence[str],
    *,
    backend: str = "threads",
    concurrency: int = 16,
    db: str | None = None,
    name: str | None = None,
    max_pages: int | None = None,
    max_depth: int | None = None,
    allow_hosts: Sequence[str] = (),
    timeout: float = 30.0,
    user_agent: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> CrawlSummary:
    """Crawl from `seeds` to completion (or to a limit) and return what the run did."""
    _check_backend(backend)
    if concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    if max_pages is not None and max_pages < 1:
        raise UsageError("--max-pages must be at least 1")
    if max_depth is not None and max_depth < 0:
        raise UsageError("--max-depth must be 0 or more")
    if not (0 < timeout <= MAX_TIMEOUT_S):
        raise UsageError(f"--timeout must be more than 0 and at most {MAX_TIMEOUT_S:g} seconds")
    if name is not None and not 0 < len(name) <= MAX_NAME_LENGTH:
        raise UsageError(f"--name must be 1 to {MAX_NAME_LENGTH} characters")
    canonical_seeds = _check_seeds(seeds)
    settings = CrawlSettings(
        max_pages=max_pages,
        max_depth=max_depth,
        allow_hosts=tuple(_check_allowed_host(host) for host in allow_hosts),
        timeout=timeout,
        user_agent=_check_user_agent(user_agent or DEFAULT_USER_AGENT),
    )
    engine = open_db(db)
    name = name or f"crawl-{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}"
    with reading(engine) as conn:
        if find_crawl_by_name(conn, name) is not None:
            raise UsageError(
                f"a crawl named {name!r} exists already; continue it with "
                f"`crawler resume {name}` or pick another --name"
            )
    _check_reachable(canonical_seeds, settings.policy().connect_timeout)
    with engine.begin() as conn:
        crawl_id = conn.execute(
            insert(crawls_t).returning(crawls_t.c.id),
            {
                "name": name,
                "seeds": canonical_seeds,
                "settings": {**asdict(settings), "allow_hosts": list(settings.allow_hosts)},
                "state": "running",
                "urls_started": 0,
            },
        ).scalar_one()
        insert_ignoring_duplicates(
            conn, [frontier_row(crawl_id, seed, depth=0) for seed in canonical_seeds]
        )
    return _run(engine, crawl_id, backend, concurrency, on_progress)


def resume(
    crawl: str | int,
    *,
    backend: str = "threads",
    concurrency: int = 16,
    db: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> CrawlSummary:
    """Continue a crawl that was interrupted (or join one that is running)."""
    _check_backend(backend)
    if concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    engine = open_db(db)
    row = _load_crawl(engine, crawl)
    return _run(engine, row.id, backend, concurrency, on_progress)


def _reclaim_dead_runs(engine: Engine, frontier: Frontier) -> int:
    """Runs on this host whose process is gone hold leases nobody will complete: take them
    back now instead of waiting for them to expire."""
    host = this_host()
    with reading(engine) as conn:
        candidates = conn.execute(
            select(runs_t.c.id, runs_t.c.pid, runs_t.c.started_at).where(
                runs_t.c.crawl_id == frontier.crawl_id,
                runs_t.c.state == "running",
                runs_t.c.hostname == host,
                runs_t.c.id != frontier.run_id,
            )
        ).all()
    dead = [r.id for r in candidates if not process_alive(r.pid, _aware(r.started_at))]
    if dead:
        with engine.begin() as conn:
            conn.execute(update(runs_t).where(runs_t.c.id.in_(dead)).values(state="dead"))
    return frontier.release_leases_of(dead)


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _run(
    engine: Engine,
    crawl_id: int,
    backend: str,
    concurrency: int,
    on_progress: ProgressCallback | None,
) -> CrawlSummary:
    frontend = frontends.load(backend)
    with reading(engine) as conn:
        crawl_row = conn.execute(select(crawls_t).where(crawls_t.c.id == crawl_id)).one()
    settings = CrawlSettings.from_json(crawl_row.settings)
    with engine.begin() as conn:
        run_id = conn.execute(
            insert(runs_t).returning(runs_t.c.id),
            {
                "crawl_id": crawl_id,
                "frontend": backend,
                "concurrency": concurrency,
                "hostname": this_host(),
                "pid": os.getpid(),
                "state": "running",
                "pages": 0,
                "fetches": 0,
                "errors": 0,
            },
        ).scalar_one()
    frontier = Frontier(
        engine,
        crawl_id,
        run_id,
        Scope.for_seeds(crawl_row.seeds, settings.allow_hosts),
        settings.limits(),
        # A lease outlives any fetch under the policy, so no live run loses its work.
        lease_seconds=max(120.0, 4 * settings.timeout),
    )
    _reclaim_dead_runs(engine, frontier)
    meter = RunMeter()
    state, report = "failed", None
    try:
        report = frontend.run(frontier, settings.policy(), concurrency, on_progress)
        state = "finished"
    except KeyboardInterrupt:
        state = "interrupted"
        raise Interrupted(
            f"interrupted; what finished is stored, continue with `crawler resume {crawl_row.name}`"
        ) from None
    finally:
        if state != "finished":
            # In-flight work is abandoned: give its leases back now rather than at expiry. Only
            # a stop that was asked for refunds the attempt; a crash may be the URL's doing.
            frontier.release_leases_of([run_id], refund_attempt=state == "interrupted")
        cost = meter.stop()
        progress = frontier.progress
        crawl_done = state == "finished" and frontier.finished()
        with engine.begin() as conn:
            conn.execute(
                update(runs_t)
                .where(runs_t.c.id == run_id)
                .values(
                    state=state,
                    finished_at=utcnow(),
                    wall_s=cost.wall_s,
                    user_cpu_s=cost.user_cpu_s,
                    system_cpu_s=cost.system_cpu_s,
                    peak_rss_kb=cost.peak_rss_kb,
                    ctx_voluntary=cost.ctx_voluntary,
                    ctx_involuntary=cost.ctx_involuntary,
                    store_s=progress.store_s,
                    startup_s=report.startup_s if report else None,
                    workers=report.workers if report else None,
                    ipc_bytes=report.ipc_bytes if report else None,
                    pages=progress.pages,
                    fetches=progress.fetches,
                    errors=progress.errors,
                )
            )
            if crawl_done:
                conn.execute(
                    update(crawls_t)
                    .where(crawls_t.c.id == crawl_id)
                    .values(state="finished", finished_at=utcnow())
                )
    with reading(engine) as conn:
        counts = totals(conn, crawl_id)
    engine.dispose()
    return CrawlSummary(
        crawl_id=crawl_id,
        name=crawl_row.name,
        run_id=run_id,
        backend=backend,
        concurrency=concurrency,
        state="finished" if crawl_done else "running",
        pages=counts["pages"],
        fetches=counts["fetches"],
        errors=counts["errors"],
        queued=counts["queued"],
        elapsed_s=round(cost.wall_s, 3),
        pages_per_s=round(progress.pages / cost.wall_s, 2) if cost.wall_s else 0.0,
        cpu_s=round(cost.user_cpu_s + cost.system_cpu_s, 3),
        peak_rss_kb=cost.peak_rss_kb,
    )


def export(crawl: str | int, out: TextIO, *, format: str = "jsonl", db: str | None = None) -> int:
    """Write one record per fetched URL to `out`; returns how many."""
    if format not in ("jsonl", "csv"):
        raise UsageError(f"unknown export format {format!r}; choose jsonl or csv")
    engine = open_db(db)
    row = _load_crawl(engine, crawl)
    count = 0
    writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS) if format == "csv" else None
    if writer:
        writer.writeheader()
    with reading(engine) as conn:
        for record in export_records(conn, row.id):
            if writer:
                writer.writerow(record)
            else:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    engine.dispose()
    return count


def list_crawls(db: str | None = None) -> list[dict]:
    engine = open_db(db)
    with reading(engine) as conn:
        rows = conn.execute(select(crawls_t).order_by(crawls_t.c.id)).all()
        result = [
            {
                "id": r.id,
                "name": r.name,
                "state": r.state,
                "seeds": r.seeds,
                "created_at": r.created_at.isoformat(timespec="seconds"),
                **totals(conn, r.id),
            }
            for r in rows
        ]
    engine.dispose()
    return result


__all__ = [
    "CrawlSettings",
    "CrawlerError",
    "Interrupted",
    "UsageError",
    "crawl",
    "export",
    "list_crawls",
    "resume",
    "upgrade_db",
]
