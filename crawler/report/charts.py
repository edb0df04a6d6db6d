"""The report's charts: matplotlib figures written as SVG text, to be embedded in the page (no
image files, nothing fetched when the page is opened). One function per kind of chart; each
takes a section's groups and returns the SVG."""

from __future__ import annotations

import io
from collections.abc import Callable

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, NullFormatter

from crawler.report.reading import KINDS, SourceCount
from crawler.report.summary import Group

matplotlib.use("Agg")  # no display: the charts only ever become SVG text

matplotlib.rcParams.update(
    {
        "svg.fonttype": "none",  # text stays text: smaller, selectable, the page's own font
        "font.family": "sans-serif",
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
    }
)
PLAIN = FuncFormatter(lambda value, _: f"{value:,.0f}" if value >= 1 else f"{value:g}")
COLOURS = {"threads": "#1f77b4", "processes": "#d62728", "asyncio": "#2ca02c"}


def _svg(figure) -> str:
    buffer = io.StringIO()
    try:
        figure.tight_layout()
        figure.savefig(buffer, format="svg")
    finally:
        plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # no XML prolog or doctype inside an HTML page


def _colour(group: Group) -> str:
    return COLOURS.get(group.backend, "#7f7f7f")


def _series(groups: list[Group]) -> dict[str, list[Group]]:
    lines: dict[str, list[Group]] = {}
    for group in groups:
        lines.setdefault(group.label, []).append(group)
    return {label: sorted(gs, key=lambda g: g.concurrency) for label, gs in lines.items()}


def _by_concurrency(axes, groups: list[Group], metric: str, title: str, log_y=False) -> None:
    for label, series in _series(groups).items():
        xs = [g.concurrency for g in series]
        ys = [g.median(metric) for g in series]
        lows = [g.median(metric) - (g.figures[metric].low or 0) for g in series]
        highs = [(g.figures[metric].high or 0) - g.median(metric) for g in series]
        axes.errorbar(
            xs,
            ys,
            yerr=[lows, highs],
            marker="o",
            label=label,
            color=_colour(series[0]),
            capsize=3,
        )
    axes.set_xscale("log")
    if log_y:
        axes.set_yscale("log")
    for axis in (axes.xaxis, axes.yaxis) if log_y else (axes.xaxis,):
        axis.set_major_formatter(PLAIN)  # 1,000, not 10³
        axis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("concurrency (threads, tasks or processes)")
    axes.set_title(title)


def _bars(axes, groups: list[Group], metric: str, title: str) -> None:
    labels = [f"{g.label}\nc{g.concurrency}" for g in groups]
    values = [g.median(metric) for g in groups]
    bars = axes.bar(labels, values, color=[_colour(g) for g in groups])
    axes.bar_label(bars, fmt="%.3g", fontsize=8)
    axes.set_title(title)


def memory(groups: list[Group]) -> str:
    figure, panels = plt.subplots(1, 3, figsize=(11, 3.6))
    for axes, (metric, title) in zip(
        panels,
        (
            ("peak_rss_mib", "peak RSS, summed (MiB)"),
            ("peak_pss_mib", "peak PSS (MiB)"),
            ("peak_vms_mib", "peak virtual memory (MiB)"),
        ),
        strict=True,
    ):
        _by_concurrency(axes, groups, metric, title, log_y=True)
    panels[0].legend()
    return _svg(figure)


def throughput(groups: list[Group], latency_s: float) -> str:
    figure, panels = plt.subplots(1, 3, figsize=(11, 3.6))
    _by_concurrency(panels[0], groups, "pages_per_s", "pages/s", log_y=True)
    if latency_s:
        levels = sorted({g.concurrency for g in groups})
        panels[0].plot(
            levels, [c / latency_s for c in levels], "k--", label="ideal: concurrency ÷ latency"
        )
    panels[0].legend()
    _by_concurrency(panels[1], groups, "ctx_per_page", "context switches per page")
    _by_concurrency(panels[2], groups, "cpu_ms_per_page", "CPU ms per page")
    return _svg(figure)


def _bar_panels(groups: list[Group], panels: tuple[tuple[str, str], ...]) -> str:
    """One bar chart per (metric, title), side by side."""
    figure, axes = plt.subplots(1, len(panels), figsize=(11, 3.6))
    for each, (metric, title) in zip(axes, panels, strict=True):
        _bars(each, groups, metric, title)
    return _svg(figure)


def cores(groups: list[Group]) -> str:
    return _bar_panels(
        groups,
        (
            ("pages_per_s", "pages/s"),
            ("cores_used", "cores used (CPU s per wall s)"),
            ("cpu_ms_per_page", "CPU ms per page"),
        ),
    )


def moving(groups: list[Group]) -> str:
    return _bar_panels(
        groups,
        (
            ("ipc_bytes_per_page", "bytes over the pipe per page"),
            ("cpu_ms_per_page", "CPU ms per page"),
            ("pages_per_s", "pages/s"),
        ),
    )


def reading(counts: list[SourceCount]) -> str:
    figure, panels = plt.subplots(1, 2, figsize=(11, 3.6))
    names = [count.frontend for count in counts]
    colours = [COLOURS[name] for name in names]
    frontend = panels[0].bar(
        names, [c.frontend_lines for c in counts], color=colours, label="frontend"
    )
    fetcher = panels[0].bar(
        names,
        [c.lines - c.frontend_lines for c in counts],
        bottom=[c.frontend_lines for c in counts],
        color=colours,
        alpha=0.4,
        label="its fetcher",
    )
    panels[0].bar_label(frontend, label_type="center", fontsize=8)
    panels[0].bar_label(fetcher, label_type="center", fontsize=8)
    panels[0].set_title("lines of code")
    panels[0].legend()
    bottom = [0] * len(counts)
    for kind in (*KINDS, "await points"):
        values = [c.yield_points if kind == "await points" else c.primitives[kind] for c in counts]
        if any(values):
            panels[1].bar(names, values, bottom=bottom, label=kind)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    panels[1].set_title("synchronisation calls and await points")
    panels[1].legend(fontsize=7)
    return _svg(figure)


def overview(groups: list[Group]) -> str:
    """Runs made by hand or by `crawler compare`: lines over concurrency when there are
    several levels, bars otherwise."""
    several = len({g.concurrency for g in groups}) > 1
    draw: Callable = _by_concurrency if several else _bars
    figure, panels = plt.subplots(1, 3, figsize=(11, 3.6))
    draw(panels[0], groups, "pages_per_s", "pages/s")
    draw(panels[1], groups, "cpu_ms_per_page", "CPU ms per page")
    draw(panels[2], groups, "peak_pss_mib", "peak PSS (MiB)")
    if several:
        panels[0].legend()
    return _svg(figure)
