"""`crawler compare`: the same site crawled by every combination of frontend and concurrency,
each run its own crawl in its own interpreter, in an interleaved order so that whatever else
the machine does hits all combinations alike; then the runs' figures, read back from the
database, and the verdicts of an experiment.

Crawls are named `LABEL/BACKEND-cN-rR` (`compare-20261201-170000/asyncio-c64-r2`), so a
comparison's runs can be reported again later with `crawler report 'LABEL/*'`.
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from time import perf_counter
from typing import Any

from sqlalchemy import Connection, func, select

from crawler.errors import CrawlerError, Interrupted, UsageError
from crawler.model import PARSERS
from crawler.report.assembly import Report, assemble
from crawler.report.experiments import EXPERIMENTS, Cell, Experiment
from crawler.report.figures import load_figures
from crawler.settings import RunSettings
from crawler.store.queries import find_crawl_by_name
from crawler.store.tables import crawls_t, pages_t

POLL_S = 0.5
STOP_WAIT_S = 30.0


@dataclass(frozen=True, slots=True)
class CompareProgress:
    """Where a comparison is, for the progress display."""

    run: int  # 1-based
    runs: int
    name: str
    pages: int  # stored so far by this run
    expected: int | None  # pages this run should store, once known
    elapsed_s: float  # since the comparison started
    left_s: float | None  # estimated, None until a run has finished


@dataclass(frozen=True, slots=True)
class Comparison:
    label: str
    db: str | None
    experiment: str | None
    crawls: list[str]  # the runs' crawls (and for how-each-reads, the memory runs it reads)
    failures: list[str]  # runs that did not finish, with why
    report: Report


def interleaved(cells: Sequence[Cell], repeat: int) -> list[tuple[int, Cell]]:
    """Each repeat runs every cell once, the order rotated by one each time, so that no
    combination always goes first or last (with two cells: a b, b a, a b, ...)."""
    order = []
    for number in range(1, repeat + 1):
        shift = (number - 1) % len(cells)
        order += [(number, cell) for cell in [*cells[shift:], *cells[:shift]]]
    return order


def cells_of(
    backends: Sequence[str], levels: Sequence[int], parsers: Sequence[str] = PARSERS[:1]
) -> list[Cell]:
    """Every combination, each checked as a crawl would check it (a bad one fails now, not
    halfway through the comparison)."""
    cells = []
    for parser in parsers:
        for level in levels:
            for backend in backends:
                RunSettings.checked(backend=backend, concurrency=level, parser=parser)
                cells.append(Cell(backend, level, parser=parser))
    return cells


def new_label(prefix: str) -> str:
    return f"{prefix}-{datetime.now():%Y%m%d-%H%M%S}"


@contextmanager
def reading(db: str | None) -> Iterator[Connection]:
    """A read-only connection to `db` (nothing migrated or created), closed afterwards."""
    from crawler.api import open_db_read_only

    engine = open_db_read_only(db)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def _stop(child: subprocess.Popen) -> None:
    """A run still going when the comparison stops (Ctrl-C, a failure here) is asked to stop
    as Ctrl-C asks a crawl (what finished is stored), then killed if it will not."""
    if child.poll() is not None:
        return
    child.send_signal(signal.SIGINT)
    try:
        child.wait(STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _ended(child: subprocess.Popen) -> bool:
    """Whether the run has ended, after waiting up to POLL_S for it."""
    try:
        child.wait(POLL_S)
    except subprocess.TimeoutExpired:
        return False
    return True


def _pages_so_far(engine, name: str) -> int:
    with engine.connect() as conn:
        row = find_crawl_by_name(conn, name)
        if row is None:
            return 0
        return conn.execute(select(func.count()).where(pages_t.c.crawl_id == row.id)).scalar_one()


def _left(durations: list[float], runs_after: int, elapsed: float, done: float) -> float | None:
    """Seconds left: this run's rest at its own pace, the runs after it at the median pace."""
    if not durations:
        return None
    typical = statistics.median(durations)
    this_run = elapsed * (1 / done - 1) if done > 0.05 else max(typical - elapsed, 0.0)
    return this_run + runs_after * typical


def run_comparison(
    seeds: Sequence[str],
    cells: Sequence[Cell],
    *,
    repeat: int,
    db: str | None,
    label: str,
    settings: dict[str, Any],
    max_pages_for: Callable[[int], int | None] | None = None,
    on_progress: Callable[[CompareProgress], None] | None = None,
) -> tuple[list[str], list[str]]:
    """Run every (repeat, cell) in interleaved order; returns the crawls that finished and
    the failures. Ctrl-C stops after the run in progress is stored as interrupted."""
    from crawler.api import open_db, open_db_read_only

    open_db(db).dispose()  # created and migrated once, before any run races to do it
    reader = open_db_read_only(db)
    plan = interleaved(cells, repeat)
    crawls, failures, durations = [], [], []
    expected: int | None = None
    started = perf_counter()
    try:
        for number, (repeat_number, cell) in enumerate(plan, 1):
            name = f"{label}/{cell.name(repeat_number)}"
            spec = {
                "seeds": list(seeds),
                "backend": cell.backend,
                "concurrency": cell.concurrency,
                "db": db,
                "name": name,
                **settings,
            }
            if cell.variant != "pages":
                spec["pool_returns"] = cell.variant
            if cell.parser != PARSERS[0]:
                spec["parser"] = cell.parser
            limit = max_pages_for(cell.concurrency) if max_pages_for else None
            if limit is not None:
                spec["max_pages"] = limit
            run_started = perf_counter()
            with tempfile.TemporaryFile("w+") as err:
                child = subprocess.Popen(
                    [sys.executable, "-m", "crawler.report.one_run", json.dumps(spec)],
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )
                try:
                    while not _ended(child):
                        if on_progress is not None:
                            pages = _pages_so_far(reader, name)
                            want = limit if limit is not None else expected
                            elapsed = perf_counter() - run_started
                            done = min(pages / want, 1.0) if want else 0.0
                            left = _left(durations, len(plan) - number, elapsed, done)
                            on_progress(
                                CompareProgress(
                                    number,
                                    len(plan),
                                    name,
                                    pages,
                                    want,
                                    perf_counter() - started,
                                    left,
                                )
                            )
                finally:
                    _stop(child)  # on Ctrl-C, or if following it failed
                durations.append(perf_counter() - run_started)
                err.seek(0)
                problem = [line for line in err.read().splitlines() if line.strip()]
            if child.returncode == 0:
                crawls.append(name)
                if limit is None:
                    expected = _pages_so_far(reader, name)
            else:
                why = problem[-1] if problem else f"exit status {child.returncode}"
                why = why.removeprefix("crawler: ")
                if number == 1:  # the site is down or the settings are wrong: all would fail
                    raise CrawlerError(f"the first run ({name}) failed, so none other ran: {why}")
                failures.append(f"{name}: {why}")
    except KeyboardInterrupt:
        raise Interrupted(
            f"comparison stopped; {len(crawls)} finished runs are stored as crawls {label}/*: "
            f"report them with `crawler report '{label}/*' --html report.html`"
        ) from None
    finally:
        reader.dispose()
    return crawls, failures


def judged(
    db: str | None,
    label: str,
    experiment: Experiment | None,
    crawls: list[str],
    failures: list[str],
) -> Comparison:
    """The comparison's stored runs read back, grouped and (for an experiment) judged; the
    runs that failed are named in the report's notes."""
    figures = []
    if crawls:
        with reading(db) as conn:
            figures = load_figures(conn, crawls)
    is_reading = experiment is not None and experiment.name == "how-each-reads"
    report = assemble(figures, reading=is_reading, notes=[f"failed: {f}" for f in failures])
    name = experiment.name if experiment else None
    return Comparison(label, db, name, crawls, failures, report)


def latest_runs_of(db: str | None, experiment: str) -> list[str]:
    """The crawls of the newest comparison of `experiment` in `db` (none, or no database: [])."""
    try:
        with reading(db) as conn:
            names = conn.execute(
                select(crawls_t.c.name)
                .where(crawls_t.c.name.like(f"{experiment}-%/%"), crawls_t.c.state == "finished")
                .order_by(crawls_t.c.id)
            ).scalars()
            labels: dict[str, list[str]] = {}
            for name in names:
                labels.setdefault(name.rsplit("/", 1)[0], []).append(name)
    except CrawlerError:  # no database yet: nothing to read the lightness from
        return []
    return list(labels.values())[-1] if labels else []


def compare(
    seeds: Sequence[str],
    *,
    backends: Sequence[str],
    concurrency: Sequence[int],
    parsers: Sequence[str] = PARSERS[:1],
    repeat: int = 1,
    db: str | None,
    settings: dict[str, Any] | None = None,
    on_progress: Callable[[CompareProgress], None] | None = None,
) -> Comparison:
    if repeat < 1:
        raise UsageError("--repeat must be 1 or more")
    cells = cells_of(backends, concurrency, parsers)
    label = new_label("compare")
    crawls, failures = run_comparison(
        seeds,
        cells,
        repeat=repeat,
        db=db,
        label=label,
        settings=settings or {},
        on_progress=on_progress,
    )
    return judged(db, label, None, crawls, failures)


def run_experiment(
    name: str,
    *,
    quick: bool,
    db: str | None,
    repeat: int | None = None,
    on_progress: Callable[[CompareProgress], None] | None = None,
) -> Comparison:
    """One named experiment, against its own fixture server."""
    from fixtures.server import ServerProcess

    if name not in EXPERIMENTS:
        raise UsageError(f"no experiment {name!r}; `crawler compare --list-experiments` names them")
    experiment = EXPERIMENTS[name]
    size = experiment.size(quick)
    label = new_label(name)
    if not size.cells:  # counted from our source; lightness from the memory runs, if any
        return judged(db, label, experiment, latest_runs_of(db, "memory"), [])
    with ServerProcess(*size.site) as site:
        crawls, failures = run_comparison(
            [site.url],
            size.cells,
            repeat=repeat or size.repeat,
            db=db,
            label=label,
            settings={},
            max_pages_for=size.max_pages,
            on_progress=on_progress,
        )
    return judged(db, label, experiment, crawls, failures)
