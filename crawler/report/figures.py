"""What each stored run measured, read back from `runs` and `fetches`: the numbers every table,
chart and verdict of the comparison is made of, so that they are only ever computed from what
was stored.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select

from crawler.errors import UsageError
from crawler.model import PARSERS
from crawler.query.common import ranked
from crawler.store.queries import find_crawl
from crawler.store.tables import crawls_t, fetches_t, runs_t

PERCENTILES = (0.50, 0.95, 0.99)


@dataclass(frozen=True, slots=True)
class RunFigures:
    """One finished run of one crawl. Rates are over the crawl's own time: start-up (the pool
    or loop coming up) is kept apart."""

    crawl: str
    crawl_id: int
    run_id: int
    backend: str
    concurrency: int
    variant: str  # what a pool child sent back ("pages" or "bodies"); "" for one process
    parser: str  # beautifulsoup or lxml
    site: str  # the first seed
    pages: int
    fetches: int
    errors: int
    wall_s: float
    startup_s: float
    crawl_s: float
    pages_per_s: float
    cpu_ms_per_page: float
    cores_used: float  # CPU seconds per second of wall time, children included
    peak_rss_mib: float | None  # None: not recorded (older rows), never guessed as 0
    peak_pss_mib: float | None
    peak_vms_mib: float | None
    ctx_switches: int
    ctx_voluntary: int
    ctx_involuntary: int
    ctx_per_page: float
    ipc_bytes_per_page: float
    fetch_p50_ms: float | None
    fetch_p95_ms: float | None
    fetch_p99_ms: float | None
    workers: int | None
    machine: dict[str, Any]


def matching_crawls(conn: Connection, patterns: list[str]) -> list[tuple[Any, bool]]:
    """(crawl row, named exactly) by name, `#N`, or a shell pattern on names (`memory-*`), in
    the order given and then by id; a name or pattern that matches nothing is an error."""
    found: dict[int, tuple[Any, bool]] = {}
    for pattern in patterns:
        if any(char in pattern for char in "*?["):
            rows = [
                row
                for row in conn.execute(select(crawls_t).order_by(crawls_t.c.id))
                if fnmatch.fnmatchcase(row.name, pattern)
            ]
            exact = False
        else:
            row = find_crawl(conn, pattern)
            rows, exact = ([row] if row is not None else []), True
        if not rows:
            raise UsageError(
                f"no crawl matches {pattern!r}; list them with `crawler crawls` (a pattern "
                "such as 'compare-*' takes many)"
            )
        found.update((row.id, (row, exact)) for row in rows)
    return list(found.values())


def _percentiles(conn: Connection, run_id: int) -> list[float | None]:
    """Nearest-rank fetch times of one run, in ms, sorted by the database."""
    fe = fetches_t.c
    timed = [fe.run_id == run_id, fe.total_s.is_not(None)]
    count = conn.execute(select(func.count()).where(*timed)).scalar_one()
    values = [ranked(conn, fe.total_s, timed, count, fraction) for fraction in PERCENTILES]
    return [None if seconds is None else round(seconds * 1000, 2) for seconds in values]


def _mib(kb: int | None) -> float | None:
    return None if kb is None else round(kb / 1024, 1)


def run_figures(conn: Connection, crawl_row, run) -> RunFigures:
    pages = run.pages or 0
    per_page = max(pages, 1)
    wall = run.wall_s or 0.0
    startup = run.startup_s or 0.0
    crawl_s = max(wall - startup, 1e-9)
    cpu = (run.user_cpu_s or 0.0) + (run.system_cpu_s or 0.0)
    switches = (run.ctx_voluntary or 0) + (run.ctx_involuntary or 0)
    p50, p95, p99 = _percentiles(conn, run.id)
    return RunFigures(
        crawl=crawl_row.name,
        crawl_id=crawl_row.id,
        run_id=run.id,
        backend=run.frontend,
        concurrency=run.concurrency,
        # rows from before schema 0005 say nothing: their pools sent pages, as all did then
        variant=run.pool_returns or ("pages" if run.frontend == "processes" else ""),
        parser=run.parser or PARSERS[0],  # before schema 0006: BeautifulSoup, the only one
        site=(crawl_row.seeds or [""])[0],
        pages=pages,
        fetches=run.fetches or 0,
        errors=run.errors or 0,
        wall_s=round(wall, 3),
        startup_s=round(startup, 3),
        crawl_s=round(crawl_s, 3),
        pages_per_s=round(pages / crawl_s, 2),
        cpu_ms_per_page=round(cpu * 1000 / per_page, 3),
        cores_used=round(cpu / wall, 3) if wall else 0.0,
        peak_rss_mib=_mib(run.peak_rss_kb),
        peak_pss_mib=_mib(run.peak_pss_kb),
        peak_vms_mib=_mib(run.peak_vms_kb),
        ctx_switches=switches,
        ctx_voluntary=run.ctx_voluntary or 0,
        ctx_involuntary=run.ctx_involuntary or 0,
        ctx_per_page=round(switches / per_page, 2),
        ipc_bytes_per_page=round((run.ipc_bytes or 0) / per_page, 1),
        fetch_p50_ms=p50,
        fetch_p95_ms=p95,
        fetch_p99_ms=p99,
        workers=run.workers,
        machine=run.machine or {},
    )


def load_figures(
    conn: Connection, patterns: list[str], skipped: list[str] | None = None
) -> list[RunFigures]:
    """The figures of every finished run of the crawls `patterns` name: an interrupted or
    failed run's figures would compare a part with a whole. A crawl named exactly with no
    finished run is an error; one a pattern took is left out and named in `skipped`."""
    figures = []
    for crawl_row, exact in matching_crawls(conn, patterns):
        runs = conn.execute(
            select(runs_t)
            .where(runs_t.c.crawl_id == crawl_row.id, runs_t.c.state == "finished")
            .order_by(runs_t.c.id)
        ).all()
        if not runs and not exact:
            if skipped is not None:
                skipped.append(f"{crawl_row.name}: no finished run")
            continue
        if not runs:
            raise UsageError(
                f"crawl {crawl_row.name!r} has no finished run to report; finish it with "
                f"`crawler resume {crawl_row.name}` or leave it out"
            )
        figures += [run_figures(conn, crawl_row, run) for run in runs]
    return figures
