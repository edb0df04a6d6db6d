"""Runs of the same frontend, concurrency and variant, summed up: the median and the range
over repeats of every figure, so that one noisy run cannot make a claim."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from crawler.model import PARSERS
from crawler.report.figures import RunFigures

# (figure, column heading) in the order tables show them
METRICS: tuple[tuple[str, str], ...] = (
    ("pages", "pages"),
    ("pages_per_s", "pages/s"),
    ("cpu_ms_per_page", "CPU ms/page"),
    ("cores_used", "cores used"),
    ("peak_rss_mib", "peak RSS MiB"),
    ("peak_pss_mib", "peak PSS MiB"),
    ("peak_vms_mib", "virtual MiB"),
    ("startup_s", "start-up s"),
    ("crawl_s", "crawl s"),
    ("ctx_switches", "context switches"),
    ("ctx_per_page", "switches/page"),
    ("ipc_bytes_per_page", "IPC bytes/page"),
    ("fetch_p50_ms", "fetch p50 ms"),
    ("fetch_p95_ms", "fetch p95 ms"),
    ("fetch_p99_ms", "fetch p99 ms"),
    ("errors", "errors"),
)


@dataclass(frozen=True, slots=True)
class Spread:
    median: float | None
    low: float | None
    high: float | None
    missing: int = 0  # runs that did not measure it (stored before schema 0005, not Linux)


@dataclass(frozen=True, slots=True)
class Group:
    """The runs of one combination (frontend, concurrency, variant, parser) on one site."""

    backend: str
    concurrency: int
    variant: str
    parser: str
    runs: int
    crawls: tuple[str, ...]
    figures: dict[str, Spread]

    @property
    def label(self) -> str:
        variant = f" ({self.variant})" if self.variant and self.variant != "pages" else ""
        parser = f", {self.parser}" if self.parser != PARSERS[0] else ""
        return f"{self.backend}{variant}{parser}"

    def median(self, metric: str) -> float:
        """The median of `metric`, 0 when no run measured it (see `measured`)."""
        return self.figures[metric].median or 0.0

    def measured(self, metric: str) -> bool:
        """Whether every run of the group measured `metric`."""
        spread = self.figures[metric]
        return spread.median is not None and not spread.missing


def spread(values: list[float | None]) -> Spread:
    known = [value for value in values if value is not None]
    missing = len(values) - len(known)
    if not known:
        return Spread(None, None, None, missing)
    return Spread(round(statistics.median(known), 3), min(known), max(known), missing)


def group_runs(figures: list[RunFigures]) -> list[Group]:
    """One group per (frontend, concurrency, variant, parser), in the order backends were
    first seen, then by parser, variant and concurrency: runs that parsed differently are never
    summed up together."""
    keyed: dict[tuple[str, int, str, str], list[RunFigures]] = {}
    for run in figures:
        keyed.setdefault((run.backend, run.concurrency, run.variant, run.parser), []).append(run)
    first_seen = {key[0]: i for i, key in reversed(list(enumerate(keyed)))}
    groups = [
        Group(
            backend=backend,
            concurrency=concurrency,
            variant=variant,
            parser=parser,
            runs=len(runs),
            crawls=tuple(run.crawl for run in runs),
            figures={
                metric: spread([getattr(run, metric) for run in runs]) for metric, _ in METRICS
            },
        )
        for (backend, concurrency, variant, parser), runs in keyed.items()
    ]
    order = {parser: i for i, parser in enumerate(PARSERS)}
    return sorted(
        groups, key=lambda g: (first_seen[g.backend], order[g.parser], g.variant, g.concurrency)
    )
