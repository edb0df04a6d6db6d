"""The named experiments: each puts one or more of the usual claims about threads, processes
and asyncio to a measured test. An experiment says which fixture site to serve, which runs to
make (full size, or `--quick` for CI), and how its verdicts are computed from the runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from crawler.model import PARSERS
from crawler.report import verdicts
from crawler.report.reading import count_all
from crawler.report.summary import Group
from crawler.report.verdicts import Verdict


@dataclass(frozen=True, slots=True)
class Cell:
    """One combination to run: a frontend at a concurrency, what a pool child sends back, and
    the parser."""

    backend: str
    concurrency: int
    variant: str = "pages"
    parser: str = PARSERS[0]

    def name(self, repeat: int) -> str:
        variant = f"-{self.variant}" if self.variant != "pages" else ""
        parser = f"-{self.parser}" if self.parser != PARSERS[0] else ""
        return f"{self.backend}{variant}{parser}-c{self.concurrency}-r{repeat}"


@dataclass(frozen=True, slots=True)
class Size:
    site: tuple[str, ...]  # fixture server flags
    cells: tuple[Cell, ...]
    repeat: int
    # max_pages = this × concurrency (at least min_pages): enough URLs that every thread, task
    # or process has one in flight at once, and not many more (the site is breadth-first)
    pages_per_unit: float | None = None
    min_pages: int = 0

    def max_pages(self, concurrency: int) -> int | None:
        if self.pages_per_unit is None:
            return None
        return max(self.min_pages, int(self.pages_per_unit * concurrency))


@dataclass(frozen=True, slots=True)
class Experiment:
    name: str
    title: str
    claims: tuple[int, ...]
    measures: str  # what is measured, in one sentence
    full: Size
    quick: Size
    judge: Callable[[list[Group]], list[Verdict]]
    chart: str  # which chart the report draws (see crawler.report.charts)
    latency_s: float = 0.0

    def size(self, quick: bool) -> Size:
        return self.quick if quick else self.full


def _grid(backends: tuple[str, ...], levels: tuple[int, ...], variant="pages") -> tuple:
    return tuple(Cell(backend, level, variant) for level in levels for backend in backends)


def _heavy_pages(pages: int) -> tuple[str, ...]:
    """A site with no latency and 64 KiB pages of 20 links: parsing is the work."""
    return ("--pages", str(pages), "--page-kb", "64", "--links", "20")


SLOW_LATENCY_S = 0.5
EXPERIMENTS: dict[str, Experiment] = {
    experiment.name: experiment
    for experiment in (
        Experiment(
            name="memory",
            title="Memory per unit of concurrency",
            claims=(1,),
            measures="peak RSS (summed over the process tree), PSS and virtual memory of "
            "each frontend with every thread, task or process busy on a slow site",
            full=Size(
                site=("--pages", "12000", "--latency-ms", "1000", "--page-kb", "2"),
                cells=_grid(("threads", "asyncio"), (16, 250, 1000, 5000))
                + _grid(("processes",), (2, 8, 16)),
                repeat=1,
                pages_per_unit=1.3,
                min_pages=120,
            ),
            quick=Size(
                site=("--pages", "400", "--latency-ms", "100", "--page-kb", "2"),
                cells=_grid(("threads", "asyncio"), (4, 40)) + _grid(("processes",), (1, 2)),
                repeat=1,
                pages_per_unit=2,
                min_pages=10,
            ),
            judge=verdicts.memory,
            chart="memory",
        ),
        Experiment(
            name="slow-connections",
            title="Many slow connections",
            claims=(2, 3, 4),
            measures="pages/s against the ideal (concurrency ÷ latency), context switches and "
            f"CPU per page on a site that answers every page after {SLOW_LATENCY_S * 1000:.0f} ms",
            full=Size(
                site=("--pages", "20000", "--latency-ms", "500", "--page-kb", "2"),
                cells=_grid(("threads", "asyncio"), (100, 1000, 5000))
                + _grid(("processes",), (16,)),
                repeat=1,
                pages_per_unit=2,
                min_pages=300,
            ),
            quick=Size(
                site=("--pages", "400", "--latency-ms", "500", "--page-kb", "2"),
                cells=_grid(("threads", "asyncio"), (10, 50)) + _grid(("processes",), (2,)),
                repeat=1,
                pages_per_unit=2,
                min_pages=10,
            ),
            judge=lambda groups: verdicts.slow_connections(groups, SLOW_LATENCY_S),
            chart="throughput",
            latency_s=SLOW_LATENCY_S,
        ),
        Experiment(
            name="cpu-parsing",
            title="CPU-bound parsing",
            claims=(5, 6),
            measures="pages/s and cores used (CPU seconds per wall second) when nothing waits: "
            "no latency, heavy pages, so parsing is the work",
            full=Size(
                site=_heavy_pages(600),
                cells=(
                    Cell("threads", 4),
                    Cell("asyncio", 4),
                    Cell("processes", 2),
                    Cell("processes", 4),
                ),
                repeat=3,
            ),
            quick=Size(
                site=_heavy_pages(60),
                cells=(Cell("threads", 2), Cell("asyncio", 2), Cell("processes", 2)),
                repeat=1,
            ),
            judge=verdicts.cpu_bound,
            chart="cores",
        ),
        Experiment(
            name="moving-data",
            title="The cost of moving data between processes",
            claims=(6,),
            measures="bytes over the pipe and CPU per page when the pool sends back parsed "
            "pages or whole bodies for the parent to parse",
            full=Size(
                site=_heavy_pages(600),
                cells=(Cell("processes", 2), Cell("processes", 2, "bodies")),
                repeat=3,
            ),
            quick=Size(
                site=_heavy_pages(60),
                cells=(Cell("processes", 2), Cell("processes", 2, "bodies")),
                repeat=1,
            ),
            judge=verdicts.moving_data,
            chart="moving",
        ),
        Experiment(
            name="how-each-reads",
            title="How each frontend reads",
            claims=(7,),
            measures="lines of code and synchronisation primitives of each frontend and its "
            "fetcher, counted from this crawler's source; lightness from the memory experiment",
            full=Size(site=(), cells=(), repeat=0),
            quick=Size(site=(), cells=(), repeat=0),
            judge=lambda groups: verdicts.how_each_reads(count_all(), groups),
            chart="reading",
        ),
    )
}


def experiment_of(label: str) -> Experiment | None:
    """The experiment a comparison's label (`memory-20261201-170000`) belongs to."""
    for name, experiment in EXPERIMENTS.items():
        if label.startswith(f"{name}-") and label[len(name) + 1 :][:1].isdigit():
            return experiment
    return None
