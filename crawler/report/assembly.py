"""A report's content, apart from how it looks: the runs split into sections (one per
comparison, or per site for crawls made by hand), each section's groups and verdicts, and
the machines the runs ran on. The command line's tables, `--json` and the HTML page are all
made from this one object."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from crawler.report.experiments import EXPERIMENTS, Experiment, experiment_of
from crawler.report.figures import RunFigures
from crawler.report.reading import SourceCount, count_all
from crawler.report.summary import Group, group_runs
from crawler.report.verdicts import ARGUED, CLAIMS, Verdict

READING = EXPERIMENTS["how-each-reads"]


@dataclass(frozen=True, slots=True)
class Section:
    label: str  # the comparison's label, or the site for crawls made one by one
    experiment: Experiment | None
    sites: tuple[str, ...]
    figures: list[RunFigures]
    groups: list[Group]
    verdicts: list[Verdict]

    @property
    def title(self) -> str:
        return self.experiment.title if self.experiment else f"Runs on {', '.join(self.sites)}"


@dataclass(frozen=True, slots=True)
class Report:
    created_at: str
    machines: list[dict[str, Any]]
    sections: list[Section]
    reading: list[SourceCount] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # runs that failed or were left out
    argued: tuple[tuple[str, str], ...] = ARGUED
    claims: dict[int, str] = field(default_factory=lambda: dict(CLAIMS))

    @property
    def verdicts(self) -> list[Verdict]:
        return [verdict for section in self.sections for verdict in section.verdicts]

    @property
    def groups(self) -> list[Group]:
        return [group for section in self.sections for group in section.groups]


def label_of(run: RunFigures) -> str:
    """`compare-…/asyncio-c16-r1` belongs to `compare-…`; a crawl named otherwise to its site."""
    return run.crawl.rsplit("/", 1)[0] if "/" in run.crawl else run.site


def _machines(figures: list[RunFigures]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for run in figures:
        if run.machine:
            key = repr(sorted((k, repr(v)) for k, v in run.machine.items()))
            seen.setdefault(key, run.machine)
    return list(seen.values())


def assemble(
    figures: list[RunFigures], *, reading: bool = False, notes: list[str] | None = None
) -> Report:
    """Sections in the order their first run was stored. How each frontend reads is added
    when asked for or when any section is an experiment; its lightness half is judged on the
    memory experiment's groups, if the report has them."""
    by_label: dict[str, list[RunFigures]] = {}
    for run in sorted(figures, key=lambda r: r.run_id):
        by_label.setdefault(label_of(run), []).append(run)
    sections = []
    for label, runs in by_label.items():
        experiment = experiment_of(label)
        groups = group_runs(runs)
        sites = tuple(dict.fromkeys(run.site for run in runs))
        verdicts = experiment.judge(groups) if experiment else []
        sections.append(Section(label, experiment, sites, runs, groups, verdicts))
    counts: list[SourceCount] = []
    if reading or any(section.experiment for section in sections):
        counts = count_all()
        memory = [s for s in sections if s.experiment and s.experiment.name == "memory"]
        memory_groups = memory[-1].groups if memory else []
        verdicts = READING.judge(memory_groups)
        sections.append(Section("how-each-reads", READING, (), [], [], verdicts))
    return Report(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        machines=_machines(figures),
        sections=sections,
        reading=counts,
        notes=list(notes or []),
    )


def as_json(report: Report) -> dict[str, Any]:
    """The report as plain data, for `--json`: the same runs, groups and verdicts as the
    tables and the page."""
    return {
        "created_at": report.created_at,
        "machines": report.machines,
        "sections": [
            {
                "label": section.label,
                "title": section.title,
                "experiment": section.experiment.name if section.experiment else None,
                "claims": list(section.experiment.claims) if section.experiment else [],
                "sites": list(section.sites),
                "runs": [asdict(run) for run in section.figures],
                "groups": [asdict(group) for group in section.groups],
                "verdicts": [
                    {**asdict(verdict), "claim_text": verdict.text} for verdict in section.verdicts
                ],
            }
            for section in report.sections
        ],
        "reading": [asdict(count) for count in report.reading],
        "notes": report.notes,
        "argued": [{"claim": claim, "why": why} for claim, why in report.argued],
    }
