"""Comparing the frontends from Python, as the command line does:

import crawler
comparison = crawler.compare(["http://127.0.0.1:8000/"], concurrency=[16, 64], repeat=3)
crawler.experiment("memory", quick=True, report="memory.html")
crawler.make_report(["compare-*"], html="report.html")
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from crawler.errors import UsageError
from crawler.frontends import BACKENDS
from crawler.model import PARSERS
from crawler.report import compare as comparing
from crawler.report.assembly import Report, assemble
from crawler.report.compare import CompareProgress, Comparison
from crawler.report.experiments import EXPERIMENTS, Experiment
from crawler.report.figures import load_figures
from crawler.settings import CrawlSettings

OnProgress = Callable[[CompareProgress], None]
ALL = "all"  # --experiment all: every experiment in turn, one report


def _writable(path: str | os.PathLike | None) -> Path | None:
    """The report's path, checked before an hour of crawling rather than after."""
    if path is None:
        return None
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"cannot write the report to {target}: no folder {folder}")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"cannot write the report to {target}: {folder} is not writable")
    if target.is_dir():
        raise UsageError(f"cannot write the report to {target}: it is a folder; name a file")
    return target


def _written(comparison: Comparison, path: Path | None) -> Comparison:
    if path is not None:
        from crawler.report.page import write_report

        write_report(comparison.report, path)
    return comparison


def compare(
    seeds: Sequence[str],
    *,
    backends: Sequence[str] = BACKENDS,
    concurrency: Sequence[int] = (16, 64, 256),
    parsers: Sequence[str] = PARSERS[:1],
    repeat: int = 1,
    db: str | None = None,
    report: str | os.PathLike | None = None,
    on_progress: OnProgress | None = None,
    **settings: Any,
) -> Comparison:
    """Crawl `seeds` once per frontend, concurrency, parser and repeat, each run its own crawl
    with the same `settings` (CrawlSettings fields); `report`: also write the HTML report
    there."""
    if not seeds:
        raise UsageError("give the seed URL of the site to compare on, or --experiment NAME")
    if not backends or not concurrency or not parsers:
        raise UsageError("give at least one backend, concurrency level and parser")
    CrawlSettings.checked(**settings)  # a bad setting fails now, not in every run
    path = _writable(report)
    comparison = comparing.compare(
        seeds,
        backends=backends,
        concurrency=concurrency,
        parsers=parsers,
        repeat=repeat,
        db=db,
        settings=settings,
        on_progress=on_progress,
    )
    return _written(comparison, path)


def experiment(
    name: str,
    *,
    quick: bool = False,
    db: str | None = None,
    repeat: int | None = None,
    report: str | os.PathLike | None = None,
    on_progress: OnProgress | None = None,
) -> Comparison:
    """Run one named experiment (see `experiments()`) against its own fixture site, or
    "all" of them in turn, reported together."""
    if repeat is not None and repeat < 1:
        raise UsageError("--repeat must be 1 or more")
    path = _writable(report)
    if name != ALL:
        comparison = comparing.run_experiment(
            name, quick=quick, db=db, repeat=repeat, on_progress=on_progress
        )
        return _written(comparison, path)
    crawls: list[str] = []
    failures: list[str] = []
    for each in EXPERIMENTS:
        part = comparing.run_experiment(
            each, quick=quick, db=db, repeat=repeat, on_progress=on_progress
        )
        crawls += [crawl for crawl in part.crawls if crawl not in crawls]
        failures += part.failures
    label = comparing.new_label(ALL)
    return _written(comparing.judged(db, label, None, crawls, failures), path)


def experiments() -> list[Experiment]:
    return list(EXPERIMENTS.values())


def make_report(
    crawls: Sequence[str], *, db: str | None = None, html: str | os.PathLike | None = None
) -> Report:
    """The report of stored runs: crawl names, `#N`, or patterns such as 'memory-*'."""
    if not crawls:
        raise UsageError("name the crawls to report: names, #N, or a pattern such as 'compare-*'")
    path = _writable(html)
    skipped: list[str] = []
    with comparing.reading(db) as conn:
        assembled = assemble(load_figures(conn, list(crawls), skipped), notes=skipped)
    if path is not None:
        from crawler.report.page import write_report

        write_report(assembled, path)
    return assembled
