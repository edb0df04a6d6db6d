"""Where a crawl stands: its state (submitted, running, finished, interrupted, stuck), its URLs
by state, its runs, and `crawler status`'s view in depth.

A crawl's row says only running or finished: a run that was stopped by Ctrl-C or killed leaves
it "running". So the state shown is worked out from the runs and the leases: a run is live
while its heartbeat is younger than the crawl's worker timeout (and, on this machine, its
process is there; before schema 0007, a run elsewhere while it holds a lease that has not
lapsed or has stored an attempt within a lease's time). A crawl no run has joined yet is
submitted; one no live run works on is interrupted, or stuck when leases have lapsed that
nobody will take back until it is resumed.
"""

from __future__ import annotations

import shlex
from collections import defaultdict

from sqlalchemy import Connection, func, select

from crawler.policy.liveness import is_silent
from crawler.query.common import epoch, iso
from crawler.query.results import (
    CrawlInfo,
    RunInfo,
    URLCounts,
)
from crawler.runs import process_alive, this_host
from crawler.settings import CrawlSettings
from crawler.store.clock import DatabaseClock
from crawler.store.models import DONE, FAILED, QUEUED, RETRY, SKIPPED
from crawler.store.tables import crawls_t, fetches_t, frontier_t, hosts_t, leases_t, pages_t, runs_t


def url_counts(conn: Connection, crawl_id: int) -> URLCounts:
    """The crawl's URLs by state, from one index; those in flight are the leases."""
    f = frontier_t.c
    by_state = dict(
        conn.execute(
            select(f.state, func.count()).where(f.crawl_id == crawl_id).group_by(f.state)
        ).all()
    )
    in_flight = conn.execute(
        select(func.count()).where(leases_t.c.crawl_id == crawl_id)
    ).scalar_one()
    return URLCounts(
        queued=by_state.get(QUEUED, 0) - in_flight,
        in_flight=in_flight,
        retry=by_state.get(RETRY, 0),
        done=by_state.get(DONE, 0),
        failed=by_state.get(FAILED, 0),
        skipped=by_state.get(SKIPPED, 0),
    )


def _live_elsewhere(conn: Connection, crawl_id: int, run_id: int, now: float, window: float):
    """A run on another machine, whose process cannot be seen from here, is live while it
    holds a lease that has not lapsed or stored an attempt within a lease's time."""
    lc, fe = leases_t.c, fetches_t.c
    holding = conn.execute(
        select(lc.frontier_id)
        .where(lc.crawl_id == crawl_id, lc.run_id == run_id, lc.expires_at >= now)
        .limit(1)
    ).first()
    if holding is not None:
        return True
    newest = conn.execute(
        select(fe.started_at).where(fe.run_id == run_id).order_by(fe.id.desc()).limit(1)
    ).scalar()
    return newest is not None and now - newest < window


def runs_of(conn: Connection, crawl_row, now: float) -> list[RunInfo]:
    """The crawl's runs, oldest first. A running one is dead when its heartbeat is older than
    the crawl's worker timeout, or its process is gone (on this machine); before schema 0007
    (no heartbeat), when it has shown no sign of life for a lease's time (elsewhere)."""
    crawl_id = crawl_row.id
    settings = CrawlSettings.from_json(crawl_row.settings)
    window = settings.lease_seconds
    r = runs_t.c
    rows = conn.execute(select(runs_t).where(r.crawl_id == crawl_id).order_by(r.id)).all()
    host = this_host()
    runs = []

    for row in rows:
        state, beat_ago = row.state, None
        if row.heartbeat_at is not None and state in ("running", "dead"):  # schema 0007 on
            beat_ago = round(max(0.0, now - row.heartbeat_at), 1)
        if state == "running":
            if beat_ago is not None:  # the heartbeat says
                alive = not is_silent(beat_ago, settings.worker_timeout)
            else:
                alive = _live_elsewhere(conn, crawl_id, row.id, now, window)
            if row.hostname == host:
                alive = alive and process_alive(row.pid, row.started_at)
            state = "running" if alive else "dead"
        cpu = None
        if row.user_cpu_s is not None:
            cpu = round(row.user_cpu_s + (row.system_cpu_s or 0.0), 3)
        runs.append(
            RunInfo(
                run_id=row.id,
                backend=row.frontend,
                concurrency=row.concurrency,
                hostname=row.hostname,
                pid=row.pid,
                state=state,
                started_at=iso(row.started_at) or "",
                wall_s=None if row.wall_s is None else round(row.wall_s, 3),
                pages=row.pages,
                fetches=row.fetches,
                errors=row.errors,
                pages_per_s=round(row.pages / row.wall_s, 2) if row.wall_s else None,
                cpu_s=cpu,
                peak_rss_kb=row.peak_rss_kb,
                error=row.error,
                heartbeat_s_ago=beat_ago,
            )
        )
    return runs


def _state(crawl_row, runs: list[RunInfo], lapsed: int) -> str:
    if crawl_row.state == "finished":
        return "finished"
    if any(run.state == "running" for run in runs):
        return "running"
    if not runs:
        return "submitted"  # by `crawler submit`: waiting for its first worker
    if lapsed:
        return "stuck"
    return "interrupted"


def _next_step(name: str, state: str, urls: URLCounts, db: str | None) -> str | None:
    where = f" --db {shlex.quote(db)}" if db else ""
    if state == "submitted":
        return f"crawler worker {shlex.quote(name)}{where}"
    if state in ("interrupted", "stuck"):
        return f"crawler resume {shlex.quote(name)}{where}"
    if state == "finished" and urls.left:
        return f"crawler resume {shlex.quote(name)} --max-pages N{where}"
    return None


def _last_activity(conn: Connection, crawl_id: int, crawl_row) -> float | None:
    """When the crawl last moved: its last lease (the hosts say when), or a run's end. Not
    its newest attempt: that would read every attempt of the crawl."""
    last_lease = conn.execute(
        select(func.max(hosts_t.c.leased_at)).where(hosts_t.c.crawl_id == crawl_id)
    ).scalar()
    ends = [epoch(crawl_row.finished_at)]
    ends += [epoch(r) for r in _run_ends(conn, crawl_id)]
    known = [moment for moment in (last_lease or None, *ends) if moment is not None]
    return max(known) if known else None


def _run_ends(conn: Connection, crawl_id: int):
    return conn.execute(
        select(runs_t.c.finished_at).where(
            runs_t.c.crawl_id == crawl_id, runs_t.c.finished_at.is_not(None)
        )
    ).scalars()


def crawl_info(
    conn: Connection,
    crawl_row,
    *,
    db: str | None = None,
    now: float | None = None,
    urls: URLCounts | None = None,
    runs: list[RunInfo] | None = None,
) -> CrawlInfo:
    """One crawl as `crawler crawls` lists it; `db`: the --db to name in the next step;
    `urls` and `runs`: its URL counts and its runs, when the caller has them already."""
    now = DatabaseClock().read(conn) if now is None else now
    crawl_id = crawl_row.id
    urls = url_counts(conn, crawl_id) if urls is None else urls
    runs = runs_of(conn, crawl_row, now) if runs is None else runs
    lapsed = conn.execute(
        select(func.count()).where(leases_t.c.crawl_id == crawl_id, leases_t.c.expires_at < now)
    ).scalar_one()
    state = _state(crawl_row, runs, lapsed)
    fe = fetches_t.c
    fetches = conn.execute(select(func.count()).where(fe.crawl_id == crawl_id)).scalar_one()
    failed = conn.execute(
        select(func.count()).where(fe.crawl_id == crawl_id, fe.error_kind.is_not(None))
    ).scalar_one()
    failed += conn.execute(
        select(func.count()).where(
            fe.crawl_id == crawl_id, fe.status >= 400, fe.error_kind.is_(None)
        )
    ).scalar_one()
    pages = conn.execute(select(func.count()).where(pages_t.c.crawl_id == crawl_id)).scalar_one()
    last = _last_activity(conn, crawl_id, crawl_row)
    created = epoch(crawl_row.created_at)
    end = now if state == "running" else (last or created)
    return CrawlInfo(
        crawl_id=crawl_id,
        name=crawl_row.name,
        state=state,
        seeds=list(crawl_row.seeds),
        urls=urls,
        pages=pages,
        fetches=fetches,
        failed_fetches=failed,
        live_runs=sum(run.state == "running" for run in runs),
        backends=sorted({run.backend for run in runs}),
        created_at=iso(crawl_row.created_at) or "",
        last_activity_at=iso(last),
        elapsed_s=None if created is None else round(max(0.0, end - created), 1),
        next_step=_next_step(crawl_row.name, state, urls, db),
    )


def list_crawls(conn: Connection, *, db: str | None = None) -> list[CrawlInfo]:
    rows = conn.execute(select(crawls_t).order_by(crawls_t.c.id)).all()
    now = DatabaseClock().read(conn)  # the clock the leases were written on
    return [crawl_info(conn, row, db=db, now=now) for row in rows]


STATE_NAMES = ("queued", "in_flight", "retry", "done", "failed", "skipped")


def counts_by_host_and_depth(conn: Connection, crawl_id: int) -> tuple[dict, dict]:
    """The crawl's URLs by state for each host and for each depth, in one pass over the index
    (crawl_id, state, host, depth), grouped in its own order, so that nothing is sorted:
    ({host: {state: n}}, {depth: {state: n}}), with in_flight from the leases."""
    f = frontier_t.c
    by_host: dict = defaultdict(lambda: dict.fromkeys(STATE_NAMES, 0))
    by_depth: dict = defaultdict(lambda: dict.fromkeys(STATE_NAMES, 0))
    for state, host, depth, count in conn.execute(
        select(f.state, f.host, f.depth, func.count())
        .where(f.crawl_id == crawl_id)
        .group_by(f.state, f.host, f.depth)
    ):
        by_host[host][state] += count
        by_depth[depth][state] += count
    lc = leases_t.c
    for host, depth, count in conn.execute(
        select(lc.host, lc.depth, func.count())
        .where(lc.crawl_id == crawl_id)
        .group_by(lc.host, lc.depth)
    ):
        for group in (by_host[host], by_depth[depth]):
            group["in_flight"] += count
            group["queued"] -= count
    return by_host, by_depth
