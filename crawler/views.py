"""How the answers to questions about a crawl look on a terminal: rich tables built from our
dataclasses (the command line prints them; `--json` prints the dataclasses themselves)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from crawler.query.results import (
    CrawlInfo,
    CrawlStatus,
    ErrorCount,
    GroupCounts,
    HostInfo,
    LinkInfo,
    PageInfo,
    URLStory,
)

Column = tuple[str, Callable[[Any], Any]]  # header, value of a row


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value)


# Columns of free text, which wrap; the others (numbers, states, times) stay on one line.
WRAPPING = {
    "name",
    "url",
    "title",
    "example",
    "message",
    "text",
    "on page",
    "to",
    "reason",
    "to / message",
    "host",
    "breaker",
    "backends",
    "target",
}


MIN_WIDTH = {"url": 30, "on page": 24, "to": 24, "host": 15, "example": 24, "name": 10}


def table(title: str | None, columns: Sequence[Column], rows: Sequence[Any]) -> Table:
    view = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        title_justify="left",
        pad_edge=False,
        collapse_padding=True,
    )
    for header, _ in columns:
        if header in WRAPPING:
            view.add_column(header, overflow="fold", min_width=MIN_WIDTH.get(header, 8))
        else:
            view.add_column(header, no_wrap=True, min_width=len(header))
    for row in rows:
        view.add_row(*(_cell(value(row)) for _, value in columns))
    return view


def _left(c: CrawlInfo) -> int:
    return c.urls.left


CRAWL_COLUMNS: list[Column] = [
    ("id", lambda c: c.crawl_id),
    ("name", lambda c: c.name),
    ("state", lambda c: c.state),
    ("URLs", lambda c: c.urls.total),
    ("left", _left),
    ("done", lambda c: c.urls.done),
    ("failed", lambda c: c.urls.failed),
    ("skipped", lambda c: c.urls.skipped),
    ("pages", lambda c: c.pages),
    ("failed tries", lambda c: f"{c.failed_fetches}/{c.fetches}"),
    ("live runs", lambda c: c.live_runs),
    ("backends", lambda c: ",".join(c.backends)),
    ("secs", lambda c: c.elapsed_s),
    ("last active", lambda c: (c.last_activity_at or "")[:16].replace("T", " ")),
]
NARROW = ("id", "name", "state", "URLs", "left", "failed", "pages", "failed tries", "last active")


def crawls_table(crawls: list[CrawlInfo], width: int = 160) -> Table:
    """Every column on a wide terminal; on a narrow one those that matter most (`--json` and
    `status` have the rest)."""
    columns = CRAWL_COLUMNS
    if width < 130:
        columns = [column for column in CRAWL_COLUMNS if column[0] in NARROW]
    return table("crawls", columns, crawls)


def _groups(title: str, groups: list[GroupCounts]) -> Table:
    columns: list[Column] = [(title, lambda g: g.key)] + [
        (name.replace("_", " "), lambda g, name=name: getattr(g, name))
        for name in ("queued", "in_flight", "retry", "done", "failed", "skipped")
    ]
    return table(f"URLs by {title}", columns, groups)


RUN_COLUMNS: list[Column] = [
    ("run", lambda r: r.run_id),
    ("backend", lambda r: r.backend),
    ("conc", lambda r: r.concurrency),
    ("state", lambda r: r.state),
    ("host:pid", lambda r: f"{r.hostname}:{r.pid}"),
    ("started", lambda r: r.started_at[5:19].replace("T", " ")),
    ("beat", lambda r: None if r.heartbeat_s_ago is None else f"{r.heartbeat_s_ago:.0f}s ago"),
    ("pages", lambda r: r.pages),
    ("secs", lambda r: r.wall_s),
    ("pages/s", lambda r: r.pages_per_s),
    ("CPU s", lambda r: r.cpu_s),
    ("RSS MiB", lambda r: None if r.peak_rss_kb is None else r.peak_rss_kb / 1024),
]

ERROR_COLUMNS: list[Column] = [
    ("kind", lambda e: e.kind),
    ("attempts", lambda e: e.attempts),
    ("URLs ending so", lambda e: e.urls),
    ("example", lambda e: e.example_url),
    ("message", lambda e: e.example_message),
]


def errors_table(errors: list[ErrorCount]) -> Table:
    columns = ERROR_COLUMNS
    if all(error.urls is None for error in errors):  # not counted (status)
        columns = [column for column in ERROR_COLUMNS if column[0] != "URLs ending so"]
    return table("failures by kind", columns, errors)


def status_view(status: CrawlStatus) -> Group:
    c = status.crawl
    head = Text.assemble(
        (f"crawl {c.name} (id {c.crawl_id}): ", "bold"),
        status.verdict,
        f"\nseeds {' '.join(c.seeds)}; created {c.created_at}, last activity "
        f"{c.last_activity_at or 'none'}, {c.elapsed_s or 0:,.1f} s elapsed\n"
        f"{c.urls.total} URLs: {c.urls.queued} queued, {c.urls.in_flight} in flight, "
        f"{c.urls.retry} waiting to retry, {c.urls.done} done, {c.urls.failed} failed, "
        f"{c.urls.skipped} skipped; {c.pages} pages; {c.failed_fetches} of {c.fetches} "
        "attempts failed",
    )
    parts: list[Any] = [head, table("runs", RUN_COLUMNS, status.runs)]
    if status.oldest_lease:
        lease = status.oldest_lease
        when = (
            f"lapses in {lease.expires_in_s:.0f} s"
            if lease.expires_in_s >= 0
            else f"lapsed {-lease.expires_in_s:.0f} s ago"
        )
        parts.append(
            Text(f"oldest lease: {lease.url}, run {lease.run_id}, attempt {lease.attempt}, {when}")
        )
    parts += [_groups("host", status.by_host), _groups("depth", status.by_depth)]
    if status.errors:
        parts.append(errors_table(status.errors))
    if status.skipped:
        parts.append(
            table(
                "skipped URLs by reason",
                [
                    ("reason", lambda s: s.reason),
                    ("URLs", lambda s: s.urls),
                    ("example", lambda s: s.example_url),
                ],
                status.skipped,
            )
        )
    if status.rate:
        parts.append(
            table(
                "responses over time",
                [
                    ("from", lambda r: r.started_at[:19].replace("T", " ")),
                    ("secs", lambda r: r.seconds),
                    ("responses", lambda r: r.responses),
                    ("per s", lambda r: r.per_s),
                ],
                status.rate,
            )
        )
    return Group(*parts)


PAGE_COLUMNS: list[Column] = [
    ("url", lambda p: p.url),
    ("state", lambda p: p.state),
    ("status", lambda p: p.status),
    ("error", lambda p: p.error_kind or p.skip_reason),
    ("depth", lambda p: p.depth),
    ("tries", lambda p: p.attempts),
    ("ms", lambda p: p.total_ms),
    ("bytes", lambda p: p.bytes),
    ("title", lambda p: p.title),
]


def pages_table(pages: list[PageInfo]) -> Table:
    return table(None, PAGE_COLUMNS, pages)


def _target(link: LinkInfo) -> str:
    if link.target_state is None:
        return "not crawled" if not link.followed else ""
    answer = link.target_error or (str(link.target_status) if link.target_status else "")
    return f"{link.target_state} {answer}".strip()


LINK_COLUMNS: list[Column] = [
    ("on page", lambda link: link.from_url),
    ("to", lambda link: link.to_url),
    ("text", lambda link: link.anchor_text),
    ("target", _target),
    ("nofollow", lambda link: link.nofollow),
]


def links_table(links: list[LinkInfo]) -> Table:
    return table(None, LINK_COLUMNS, links)


HOST_COLUMNS: list[Column] = [
    ("host", lambda h: h.host),
    ("URLs", lambda h: h.urls),
    ("done", lambda h: h.done),
    ("failed", lambda h: h.failed),
    ("skipped", lambda h: h.skipped),
    ("median ms", lambda h: h.median_ms),
    ("p95 ms", lambda h: h.p95_ms),
    ("robots", lambda h: h.robots),
    ("breaker", lambda h: h.breaker),
    ("delay s", lambda h: h.delay_s),
]


def hosts_table(hosts: list[HostInfo]) -> Table:
    return table(None, HOST_COLUMNS, hosts)


ATTEMPT_COLUMNS: list[Column] = [
    ("#", lambda a: a.attempt),
    ("started", lambda a: a.started_at[11:19]),
    ("status", lambda a: a.status),
    ("error", lambda a: a.error_kind),
    ("wait", lambda a: a.queue_wait_ms),
    ("connect", lambda a: a.connect_ms),
    ("1st byte", lambda a: a.first_byte_ms),
    ("download", lambda a: a.download_ms),
    ("parse", lambda a: a.parse_ms),
    ("total ms", lambda a: a.total_ms),
    ("to / message", lambda a: a.location or a.error_message),
]


def story_view(story: URLStory) -> Group:
    lines = [f"{story.url}", f"state {story.state}, depth {story.depth}, host {story.host}"]
    if story.skip_reason:
        lines.append(f"skipped: {story.skip_reason}")
    if story.found_on:
        lines.append(f"found on {story.found_on}")
    if story.redirected_from:
        lines.append("redirected from " + " -> ".join(story.redirected_from))
    if story.redirects_to:
        lines.append("redirects to " + " -> ".join(story.redirects_to))
    if story.title is not None:
        lines.append(f"title {story.title!r}")
    if story.canonical:
        lines.append(f"canonical {story.canonical}")
    parts: list[Any] = [Text("\n".join(lines))]
    if story.attempts:
        parts.append(table("attempts", ATTEMPT_COLUMNS, story.attempts))
    if story.links_out:
        parts.append(
            table(f"links out ({len(story.links_out)} shown)", LINK_COLUMNS, story.links_out)
        )
    if story.links_in:
        shown = f"links in ({len(story.links_in)} of {story.links_in_total} shown)"
        parts.append(table(shown, LINK_COLUMNS, story.links_in))
    return Group(*parts)


def comparison_tables(report) -> Group:
    """A report on a terminal: per section, one row per frontend and concurrency (medians,
    with the min–max of repeats under the pages/s), then the verdicts."""
    parts: list[Any] = []
    for section in report.sections:
        if section.groups:
            shown = Table(
                title=f"{section.title} ({section.label})",
                box=box.SIMPLE_HEAD,
                pad_edge=False,
                collapse_padding=True,
            )
            shown.add_column("frontend", no_wrap=True)
            for heading in COMPARISON_COLUMNS:
                shown.add_column(heading, justify="right")
            for group in section.groups:
                shown.add_row(group.label, *_comparison_row(group))
            parts.append(shown)
        for verdict in section.verdicts:
            parts.append(
                Text.assemble(
                    (
                        f"claim {verdict.claim}{f' ({verdict.part})' if verdict.part else ''}: ",
                        "bold",
                    ),
                    (verdict.outcome, VERDICT_STYLES.get(verdict.outcome, "")),
                    f" — {verdict.evidence}",
                )
            )
    return Group(*parts)


COMPARISON_COLUMNS = (
    "conc",
    "runs",
    "pages",
    "pages/s",
    "CPU ms/page",
    "RSS MiB",
    "PSS MiB",
    "virt MiB",
    "start s",
    "switches",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "errors",
)
VERDICT_STYLES = {"supported": "green", "not supported": "red", "mixed": "yellow"}


def _figure(group, metric: str, digits: int = 1, with_range: bool = False) -> str:
    spread = group.figures[metric]
    if spread.median is None:
        return ""
    text = f"{spread.median:,.{digits}f}"
    if with_range and group.runs > 1:
        text += f"\n{spread.low:,.{digits}f}–{spread.high:,.{digits}f}"
    return text


def _comparison_row(group) -> list[str]:
    return [
        f"{group.concurrency:,}",
        str(group.runs),
        _figure(group, "pages", 0),
        _figure(group, "pages_per_s", 1, with_range=True),
        _figure(group, "cpu_ms_per_page", 2, with_range=True),
        _figure(group, "peak_rss_mib", 0),
        _figure(group, "peak_pss_mib", 0),
        _figure(group, "peak_vms_mib", 0),
        _figure(group, "startup_s", 2),
        _figure(group, "ctx_switches", 0),
        _figure(group, "fetch_p50_ms", 1),
        _figure(group, "fetch_p95_ms", 1),
        _figure(group, "fetch_p99_ms", 1),
        _figure(group, "errors", 0),
    ]
