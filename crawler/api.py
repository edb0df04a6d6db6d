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
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import TextIO

import ada_url
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import DBAPIError, OperationalError

from crawler import frontends
from crawler.fetch.guard import is_public_address
from crawler.frontends import BackendUnavailable, ProgressCallback
from crawler.frontier import Frontier, Limits, frontier_row, insert_ignoring_duplicates
from crawler.model import DEFAULT_USER_AGENT, CrawlSummary, FetchPolicy
from crawler.politeness import Politeness
from crawler.retry import BreakerPolicy, RetryPolicy
from crawler.robots_cache import RobotsKeeper
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
MAX_BODY_BYTES = 1024**3  # a page is held whole while it is parsed


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
    ignore_robots: bool = False  # recorded, so that a report can say so
    sitemaps: bool = False
    per_host_concurrency: int | None = None  # None: 8 on the network, no cap on loopback
    per_host_delay: float | None = None
    max_pages_per_host: int | None = None
    max_attempts: int = 3
    retry_backoff: float = 1.0
    max_retry_after: float = 120.0
    breaker_threshold: int = 10
    breaker_cooldown: float = 30.0
    block_private_addresses: bool = False  # set when a seed is a public address
    max_body_bytes: int = 5 * 1024 * 1024  # decoded: a compression bomb stops here

    def policy(self) -> FetchPolicy:
        return FetchPolicy(
            user_agent=self.user_agent,
            # Under a short --timeout the phase timeouts shrink with it, so a server that
            # goes quiet still shows as a read timeout, not as the whole deadline.
            connect_timeout=min(5.0, self.timeout / 2),
            read_timeout=min(10.0, self.timeout / 2),
            deadline=self.timeout,
            max_body_bytes=self.max_body_bytes,
            block_private_addresses=self.block_private_addresses,
        )

    def limits(self) -> Limits:
        return Limits(
            max_pages=self.max_pages,
            max_depth=self.max_depth,
            max_redirects=self.max_redirects,
            max_attempts=self.max_attempts,
            max_pages_per_host=self.max_pages_per_host,
        )

    def politeness(self) -> Politeness:
        return Politeness(self.per_host_concurrency, self.per_host_delay)

    def retry(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_s=self.retry_backoff,
            max_retry_after_s=self.max_retry_after,
        )

    def breaker(self) -> BreakerPolicy:
        return BreakerPolicy(threshold=self.breaker_threshold, cooldown_s=self.breaker_cooldown)

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


def _check_reachable(seeds: list[str], timeout: float) -> bool:
    """Fail early, before anything is stored, when a seed's server cannot be reached at all.
    Returns whether a seed is on a public address: then the crawl may not be led to this
    machine or a private network (server-side request forgery)."""
    public = False
    for seed in seeds:
        parsed = ada_url.URL(seed)
        host = parsed.hostname.strip("[]")
        port = int(parsed.port or DEFAULT_PORTS[parsed.protocol.rstrip(":")])
        try:
            connection = socket.create_connection((host, port), timeout=timeout)
            public = public or is_public_address(connection.getpeername()[0])
            connection.close()
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
    return public


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
    ignore_robots: bool = False,
    sitemaps: bool = False,
    per_host_concurrency: int | None = None,
    per_host_delay: float | None = None,
    max_pages_per_host: int | None = None,
    max_attempts: int = 3,
    retry_backoff: float = 1.0,
    max_retry_after: float = 120.0,
    breaker_threshold: int = 10,
    breaker_cooldown: float = 30.0,
    max_body_bytes: int = 5 * 1024 * 1024,
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
    if per_host_concurrency is not None and per_host_concurrency < 1:
        raise UsageError("--per-host-concurrency must be at least 1")
    if max_pages_per_host is not None and max_pages_per_host < 1:
        raise UsageError("--max-pages-per-host must be at least 1")
    if max_attempts < 1:
        raise UsageError("--max-attempts must be at least 1")
    if not 1024 <= max_body_bytes <= MAX_BODY_BYTES:
        raise UsageError(f"--max-body-bytes must be 1024 to {MAX_BODY_BYTES} bytes")
    if breaker_threshold < 0:
        raise UsageError("--breaker-threshold must be 0 (off) or more")
    for flag, value in (
        ("--per-host-delay", per_host_delay or 0.0),
        ("--retry-backoff", retry_backoff),
        ("--max-retry-after", max_retry_after),
        ("--breaker-cooldown", breaker_cooldown),
    ):
        if not 0 <= value <= MAX_TIMEOUT_S:
            raise UsageError(f"{flag} must be 0 to {MAX_TIMEOUT_S:g} seconds")
    if name is not None and not 0 < len(name) <= MAX_NAME_LENGTH:
        raise UsageError(f"--name must be 1 to {MAX_NAME_LENGTH} characters")
    canonical_seeds = _check_seeds(seeds)
    settings = CrawlSettings(
        max_pages=max_pages,
        max_depth=max_depth,
        allow_hosts=tuple(_check_allowed_host(host) for host in allow_hosts),
        timeout=timeout,
        user_agent=_check_user_agent(user_agent or DEFAULT_USER_AGENT),
        ignore_robots=ignore_robots,
        sitemaps=sitemaps,
        per_host_concurrency=per_host_concurrency,
        per_host_delay=per_host_delay,
        max_pages_per_host=max_pages_per_host,
        max_attempts=max_attempts,
        retry_backoff=retry_backoff,
        max_retry_after=max_retry_after,
        breaker_threshold=breaker_threshold,
        breaker_cooldown=breaker_cooldown,
        max_body_bytes=max_body_bytes,
    )
    engine = open_db(db)
    name = name or f"crawl-{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}"
    with reading(engine) as conn:
        if find_crawl_by_name(conn, name) is not None:
            raise UsageError(
                f"a crawl named {name!r} exists already; continue it with "
                f"`crawler resume {name}` or pick another --name"
            )
    if _check_reachable(canonical_seeds, settings.policy().connect_timeout):
        settings = replace(settings, block_private_addresses=True)
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
    scope = Scope.for_seeds(crawl_row.seeds, settings.allow_hosts)
    robots = None
    if not settings.ignore_robots:
        robots = RobotsKeeper(
            crawl_id,
            run_id,
            settings.policy(),
            settings.retry(),
            scope,
            sitemaps=settings.sitemaps,
        )
    frontier = Frontier(
        engine,
        crawl_id,
        run_id,
        scope,
        settings.limits(),
        # A lease outlives any fetch under the policy, so no live run loses its work.
        lease_seconds=max(120.0, 4 * settings.timeout),
        politeness=settings.politeness(),
        retry=settings.retry(),
        breaker=settings.breaker(),
        robots=robots,
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
        if state == "finished":
            frontier.release_leases_of([run_id])  # none are left; its robots claims may be
        else:
            # In-flight work is abandoned: give its leases back now rather than at expiry. Only
            # a stop that was asked for refunds the attempt; a crash may be the URL's doing.
            frontier.release_leases_of([run_id], refund_attempt=state == "interrupted")
        if robots is not None:
            robots.close()
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
        skipped=counts["skipped"],
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
