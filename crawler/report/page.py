"""The report as one self-contained HTML file: styles inline, charts as inline SVG, no script
and nothing fetched, so it opens the same from a disk, a mail or an archive. First what was
run and on what machine, then the claims with their verdicts, a summary table, and one section
per comparison or experiment."""

from __future__ import annotations

from html import escape
from pathlib import Path

from crawler.report import charts
from crawler.report.assembly import Report, Section
from crawler.report.summary import METRICS, Group, Spread

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; color: #222; margin: 0; background: #fafafa; }
main { max-width: 76rem; margin: 0 auto; padding: 1rem 2rem 4rem; background: #fff; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; } h2 { margin-top: 2.5rem; border-bottom: 1px
solid #ddd; } .lede { color: #555; } .scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: .6rem 0; font-size: 13px; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #eee; text-align: right;
vertical-align: top; } th { background: #f3f3f3; } td.text, th.text { text-align: left; }
.range { color: #888; font-size: 11px; white-space: nowrap; }
.verdict { font-weight: 600; padding: .05rem .45rem; border-radius: .3rem; white-space: nowrap; }
.supported { background: #d9f2d9; } .not-supported { background: #f8d7d7; }
.mixed { background: #fdf0c8; } .not-measured { background: #e8e8e8; }
figure { margin: 1rem 0; } figure svg { max-width: 100%; height: auto; }
.rule { color: #666; font-size: 13px; } code { background: #f3f3f3; padding: 0 .2rem; }
"""


def _cell(spread: Spread, runs: int) -> str:
    if spread.median is None:
        return "<td>–</td>"
    text = f"{spread.median:,.4g}"
    if runs > 1 and spread.low != spread.high:
        text += f'<br><span class="range">{spread.low:,.4g}–{spread.high:,.4g}</span>'
    return f"<td>{text}</td>"


def groups_table(groups: list[Group], *, with_section: list[str] | None = None) -> str:
    head = "".join(f"<th>{escape(title)}</th>" for _, title in METRICS)
    first = '<th class="text">comparison</th>' if with_section else ""
    rows = []
    for index, group in enumerate(groups):
        section = f'<td class="text">{escape(with_section[index])}</td>' if with_section else ""
        cells = "".join(_cell(group.figures[metric], group.runs) for metric, _ in METRICS)
        rows.append(
            f'<tr>{section}<td class="text">{escape(group.label)}</td><td>{group.concurrency:,}'
            f"</td><td>{group.runs}</td>{cells}</tr>"
        )
    return (
        f'<div class="scroll"><table><thead><tr>{first}<th class="text">frontend</th>'
        f"<th>concurrency</th><th>runs</th>{head}</tr></thead><tbody>{''.join(rows)}"
        "</tbody></table></div>"
    )


def _badge(outcome: str) -> str:
    return f'<span class="verdict {outcome.replace(" ", "-")}">{escape(outcome)}</span>'


def _machines(report: Report) -> str:
    if not report.machines:
        return "<p>No run recorded its machine (runs stored before schema 0005).</p>"
    rows = []
    for machine in report.machines:
        libraries = ", ".join(f"{k} {v}" for k, v in machine.get("libraries", {}).items())
        rows.append(
            "<tr>"
            + "".join(
                f'<td class="text">{escape(str(value))}</td>'
                for value in (
                    machine.get("hostname"),
                    f"{machine.get('cpus')} ({machine.get('usable_cpus')} usable)",
                    f"{machine.get('memory_mib', 0):,} MiB",
                    f"{machine.get('implementation', '')} {machine.get('python')}",
                    machine.get("system"),
                    libraries,
                )
            )
            + "</tr>"
        )
    head = "".join(
        f'<th class="text">{h}</th>'
        for h in ("machine", "CPUs", "memory", "Python", "system", "libraries")
    )
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(rows)}</table></div>'


def _what_ran(report: Report) -> str:
    items = []
    for section in report.sections:
        if not section.figures:
            continue
        combos = ", ".join(f"{g.label} at {g.concurrency:,}" for g in section.groups)
        repeats = max(g.runs for g in section.groups)
        items.append(
            f"<li><b>{escape(section.title)}</b> (<code>{escape(section.label)}</code>): "
            f"{len(section.figures)} runs of {escape(', '.join(section.sites))}; {escape(combos)}"
            f"; up to {repeats} repeat{'s' if repeats > 1 else ''} each</li>"
        )
    return f"<ul>{''.join(items)}</ul>" if items else ""


def _notes(report: Report) -> str:
    if not report.notes:
        return ""
    items = "".join(f"<li>{escape(note)}</li>" for note in report.notes)
    return f"<p>Not in the figures below:</p><ul>{items}</ul>"


def _verdicts_table(report: Report) -> str:
    rows = [
        f"<tr><td>{v.claim}</td><td class='text'>{escape(v.text)}</td><td class='text'>"
        f"{_badge(v.outcome)}</td><td class='text'>{escape(v.evidence)}</td></tr>"
        for v in sorted(report.verdicts, key=lambda v: v.claim)
    ]
    if not rows:
        return "<p>These runs are not an experiment: no claim is judged on them.</p>"
    return (
        "<table><tr><th>#</th><th class='text'>claim</th><th class='text'>verdict</th>"
        f"<th class='text'>the numbers</th></tr>{''.join(rows)}</table>"
    )


def _chart(section: Section, report: Report) -> str:
    experiment = section.experiment
    if experiment is None:
        return charts.overview(section.groups) if section.groups else ""
    if experiment.chart == "reading":
        return charts.reading(report.reading)
    if not section.groups:
        return ""
    if experiment.chart == "throughput":
        return charts.throughput(section.groups, experiment.latency_s)
    return getattr(charts, experiment.chart)(section.groups)


def _section(section: Section, report: Report, anchor: str) -> str:
    parts = [f'<section id="{anchor}"><h2>{escape(section.title)}</h2>']
    experiment = section.experiment
    if experiment is not None:
        for claim in experiment.claims:
            parts.append(f"<p><b>Claim {claim}:</b> “{escape(report.claims[claim])}”</p>")
        parts.append(f"<p>Measured: {escape(experiment.measures)}.</p>")
    if section.figures:
        parts.append(
            f"<p>Site {escape(', '.join(section.sites))}; crawls "
            f"<code>{escape(section.label)}/*</code>.</p>"
        )
    svg = _chart(section, report)
    if svg:
        parts.append(f"<figure>{svg}</figure>")
    if section.groups:
        parts.append(groups_table(section.groups))
    if experiment is not None and experiment.chart == "reading":
        parts.append(_reading_table(report))
    for verdict in section.verdicts:
        parts.append(
            f"<p>Claim {verdict.claim}{escape(f' ({verdict.part})' if verdict.part else '')}: "
            f"{_badge(verdict.outcome)} {escape(verdict.evidence)}."
            f'<br><span class="rule">Rule: {escape(verdict.rule)}.</span></p>'
        )
    parts.append("</section>")
    return "".join(parts)


def _reading_table(report: Report) -> str:
    rows = []
    for count in report.reading:
        kinds = ", ".join(f"{k} {n}" for k, n in count.primitives.items() if n) or "none"
        rows.append(
            f"<tr><td class='text'>{count.frontend}</td><td>{count.frontend_lines}</td>"
            f"<td>{count.lines}</td><td class='text'>{escape(kinds)}</td>"
            f"<td>{count.yield_points}</td><td class='text'>{escape(', '.join(count.files))}"
            "</td></tr>"
        )
    return (
        "<table><tr><th class='text'>frontend</th><th>lines</th><th>with its fetcher</th>"
        "<th class='text'>synchronisation calls</th><th>await points</th>"
        f"<th class='text'>files</th></tr>{''.join(rows)}</table>"
    )


def render(report: Report) -> str:
    sections = "".join(
        _section(section, report, f"section-{n}") for n, section in enumerate(report.sections, 1)
    )
    labels = [s.label for s in report.sections for _ in s.groups]
    argued = "".join(
        f"<li><b>{escape(claim)}</b>: {escape(why)}</li>" for claim, why in report.argued
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Threads, processes and asyncio, measured</title><style>{STYLE}</style></head>
<body><main>
<h1>Threads, processes and asyncio, measured</h1>
<p class="lede">Written {escape(report.created_at)}. Every figure was read back from the crawl
database; every verdict is computed from those figures by the rule printed with it. Rates
are over crawl time (start-up is shown apart); ranges are min–max over repeats.</p>
<section id="setup"><h2>What was run, and on what machine</h2>{_machines(report)}
{_what_ran(report)}{_notes(report)}</section>
<section id="claims"><h2>The claims and what the data say</h2>{_verdicts_table(report)}</section>
<section id="summary"><h2>Summary</h2>
{groups_table(report.groups, with_section=labels) if report.groups else "<p>No runs.</p>"}
</section>
{sections}
<section id="argued"><h2>Argued, not measured</h2>
<p>No crawl can show these either way; they are listed, not judged.</p><ul>{argued}</ul>
</section>
</main></body></html>
"""


def write_report(report: Report, path: Path) -> Path:
    """Written whole to PATH.partial, then renamed: a reader never sees half a report."""
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(render(report), encoding="utf-8")
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path
