"""One run of a crawl in this process: its `runs` row, what it cost, and how it ended.

Whatever ends a run (the crawl is done, Ctrl-C, a database that failed, a bug), what finished
is stored, the run's leases go back (an interrupted run refunds their attempt), and its row
says how it ended and what it cost, when the database still lets us write that.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import replace

from sqlalchemy import Engine, insert, select, update

from crawler import frontends
from crawler.coordinator import Coordinator, Progress
from crawler.errors import DatabaseError, DeclaredDead, Interrupted
from crawler.frontier.repository import Frontier
from crawler.log_text import changed_settings
from crawler.model import CrawlSummary, RunSummary
from crawler.policy.rules import CrawlRules
from crawler.robots_cache import RobotsKeeper
from crawler.runs import RunMeter, machine, process_alive, this_host
from crawler.settings import CrawlSettings, RunSettings
from crawler.store.failures import retrying
from crawler.store.models import Crawl, Run, utcnow
from crawler.store.queries import totals

log = logging.getLogger(__name__)
crawls_t = Crawl.__table__
runs_t = Run.__table__


def run_crawl(
    engine: Engine,
    crawl_id: int,
    run: RunSettings,
    on_progress: Callable[[Progress], None] | None = None,
    *,
    rejoin: str = "resume",
) -> CrawlSummary:
    """Work on the crawl until it is finished; raises Interrupted on Ctrl-C, DatabaseError when
    the database fails for good, DeclaredDead when the other workers took this run's work over.
    `rejoin`: the command that takes the crawl up again (resume, or worker)."""
    crawl_row = retrying(engine, lambda conn: _crawl_row(conn, crawl_id), read_only=True)
    if rejoin == "worker":
        then = f"join it again with `crawler worker {crawl_row.name}`"
    else:
        then = f"continue the crawl with `crawler resume {crawl_row.name}`"
    settings = CrawlSettings.from_json(crawl_row.settings)
    rules = CrawlRules.for_crawl(crawl_row.seeds, settings)
    frontend = frontends.load(run.backend, pool_returns=run.pool_returns)
    run_id = retrying(engine, lambda conn: _start_run(conn, crawl_id, run), then=then)
    log.info(
        "crawl %r (id %d): run %d started, %s backend, concurrency %d; settings changed: %s",
        crawl_row.name,
        crawl_id,
        run_id,
        run.backend,
        run.concurrency,
        changed_settings(settings),
    )
    robots = None
    if rules.obey_robots:
        robots = RobotsKeeper(
            crawl_id, run_id, settings.policy(), rules.retry, rules.scope, sitemaps=rules.sitemaps
        )
    frontier = Frontier(
        engine,
        crawl_id,
        run_id,
        rules,
        lease_seconds=settings.lease_seconds,
        worker_timeout=settings.worker_timeout,
        robots=robots,
        then=then,
    )
    meter = RunMeter(with_children=run.backend == "processes")
    policy = replace(settings.policy(), parser=run.parser)
    coordinator = Coordinator(frontier, frontend, policy, run.concurrency, on_progress=on_progress)
    state, error, report = "failed", None, None
    # carries the summary to the CLI's --json
    raised: Interrupted | DatabaseError | DeclaredDead | None = None
    try:
        _reclaim_dead_runs(engine, frontier)
        report = coordinator.run()
        state = "finished"
    except KeyboardInterrupt:
        state = "interrupted"
        raised = Interrupted(f"interrupted; what finished is stored, {then}")
        raise raised from None
    except DatabaseError as exc:
        error, raised = str(exc), exc
        raise
    except DeclaredDead:
        state = "dead"
        error = (
            f"run {run_id} was silent for more than {settings.worker_timeout:g} s (paused, or "
            "cut off from the database), so the other workers took its URLs over; it stopped, "
            f"and none of its late results overwrote theirs; {then}"
        )
        raised = DeclaredDead(error)
        raise raised from None
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        frontier.stop_beating()
        if robots is not None:
            robots.close()
        cost = meter.stop(getattr(frontend, "unreaped", None))  # a pool's, if forked
        progress = coordinator.progress
        log.info(
            "run %d %s: %d pages, %d fetches, %d errors in %.1f s",
            run_id,
            state,
            progress.pages,
            progress.fetches,
            progress.errors,
            cost.wall_s,
        )
        crawl_done = False
        try:
            # A finished run holds no leases, but may hold robots.txt claims. Only a stop
            # that was asked for refunds the attempt: a crash may be the URL's doing.
            frontier.release([run_id], refund=state == "interrupted")
            crawl_done = state == "finished" and frontier.finished()
            values = {
                "state": state,
                "error": error,
                "finished_at": utcnow(),
                "wall_s": cost.wall_s,
                "user_cpu_s": cost.user_cpu_s,
                "system_cpu_s": cost.system_cpu_s,
                "peak_rss_kb": cost.peak_rss_kb,
                "peak_pss_kb": cost.peak_pss_kb,
                "peak_vms_kb": cost.peak_vms_kb,
                "ctx_voluntary": cost.ctx_voluntary,
                "ctx_involuntary": cost.ctx_involuntary,
                "store_s": frontier.store_s,
                "startup_s": report.startup_s if report else None,
                "workers": report.workers if report else None,
                "ipc_bytes": report.ipc_bytes if report else None,
                "pages": progress.pages,
                "fetches": progress.fetches,
                "errors": progress.errors,
            }
            retrying(engine, lambda conn: _end_run(conn, crawl_id, run_id, values, crawl_done))
        except DatabaseError as exc:
            if state != "failed":
                raise
            # Already failing on the database: the row stays "running" until a later run on
            # this host finds the process gone, and the leases lapse as after a kill.
            log.info("could not record the end of run %s: %s", run_id, exc)
        if raised is not None:
            # The database failed: its totals are not asked for again (that would wait).
            counted = not isinstance(raised, DatabaseError)
            ran = (run_id, run, progress, cost)
            raised.summary = _summary(engine, crawl_row, ran, state, str(raised), counted)
    ended = "finished" if crawl_done else "running"
    return _summary(engine, crawl_row, (run_id, run, progress, cost), ended)


def _summary(
    engine: Engine, crawl_row, ran: tuple, state: str, error: str | None = None, counted=True
) -> CrawlSummary:
    """The crawl's totals (None where they could not be read) and what the run `ran`
    (its id, settings, progress and cost) did."""
    run_id, run, progress, cost = ran
    counts: dict = dict.fromkeys(("pages", "fetches", "errors", "queued", "skipped"))
    if counted:
        counts = retrying(engine, lambda conn: totals(conn, crawl_row.id), read_only=True)
    this_run = RunSummary(
        run_id=run_id,
        backend=run.backend,
        concurrency=run.concurrency,
        pages=progress.pages,
        fetches=progress.fetches,
        errors=progress.errors,
        elapsed_s=round(cost.wall_s, 3),
        pages_per_s=round(progress.pages / cost.wall_s, 2) if cost.wall_s else 0.0,
        cpu_s=round(cost.user_cpu_s + cost.system_cpu_s, 3),
        peak_rss_kb=cost.peak_rss_kb,
    )
    return CrawlSummary(crawl_row.id, crawl_row.name, state, **counts, run=this_run, error=error)


def _crawl_row(conn, crawl_id: int):
    return conn.execute(select(crawls_t).where(crawls_t.c.id == crawl_id)).one()


def _start_run(conn, crawl_id: int, run: RunSettings) -> int:
    return conn.execute(
        insert(runs_t).returning(runs_t.c.id),
        {
            "crawl_id": crawl_id,
            "frontend": run.backend,
            "concurrency": run.concurrency,
            "pool_returns": run.pool_returns if run.backend == "processes" else None,
            "parser": run.parser,
            "machine": machine(),
            "hostname": this_host(),
            "pid": os.getpid(),
            "state": "running",
            "pages": 0,
            "fetches": 0,
            "errors": 0,
        },
    ).scalar_one()


def _end_run(conn, crawl_id: int, run_id: int, values: dict, crawl_done: bool) -> None:
    """The run's cost, and how it ended, unless the others have declared it dead meanwhile:
    that stays what it was to them."""
    values = dict(values)
    state = values.pop("state")
    r = runs_t.c
    conn.execute(update(runs_t).where(r.id == run_id).values(**values))
    conn.execute(update(runs_t).where(r.id == run_id, r.state == "running").values(state=state))
    if crawl_done:
        conn.execute(
            update(crawls_t)
            .where(crawls_t.c.id == crawl_id)
            .values(state="finished", finished_at=utcnow())
        )


def _reclaim_dead_runs(engine: Engine, frontier: Frontier) -> int:
    """Runs on this host whose process is gone hold leases nobody will complete: take them
    back now instead of waiting for them to lapse."""
    host = this_host()
    candidates = retrying(
        engine,
        lambda conn: conn.execute(
            select(runs_t.c.id, runs_t.c.pid, runs_t.c.started_at).where(
                runs_t.c.crawl_id == frontier.crawl_id,
                runs_t.c.state == "running",
                runs_t.c.hostname == host,
                runs_t.c.id != frontier.run_id,
            )
        ).all(),
        read_only=True,
    )
    dead = [r.id for r in candidates if not process_alive(r.pid, r.started_at)]
    if not dead:
        return 0
    retrying(
        engine,
        lambda conn: conn.execute(update(runs_t).where(runs_t.c.id.in_(dead)).values(state="dead")),
    )
    return frontier.release(dead, refund=False)
