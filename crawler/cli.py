"""The command line: argument parsing, progress display, exit codes. The only module that prints.

Exit codes: 0 the command did its job (page errors are data), 1 the crawler failed,
2 bad usage, 130 interrupted (the crawl can be resumed).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import logging
import os
import shlex
import signal
import sys
from dataclasses import asdict, replace
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.live import Live
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

import crawler
from crawler import views
from crawler.frontends import BACKENDS
from crawler.model import PARSERS, CrawlSummary
from crawler.query.options import (
    BROWSE_PORT,
    DEFAULT_LIMIT,
    FORMATS,
    SHOW_LIMIT,
    STATUS_LIMIT,
    TABLES,
)
from crawler.settings import (
    RESUME_BUDGETS,
    CrawlSettings,
    Option,
    RunSettings,
    help_text,
    options,
)
from crawler.states import STATES

if TYPE_CHECKING:
    from crawler.coordinator import Progress

err = Console(stderr=True)


def _width() -> int:
    """Columns for a table written to a pipe or a file: $COLUMNS if it is a number, else 160
    (not cut to 80 columns)."""
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else 160


# A table piped to a file or a test is not cut to 80 columns.
out = Console() if Console().is_terminal else Console(width=_width())

DESCRIPTION = """\
A web crawler built three ways: a thread pool with requests, a multiprocessing pool, and an
aiohttp event loop, on one shared core (WHATWG URLs, robots.txt, politeness, retries, and a
durable frontier in SQLite or PostgreSQL). Every page, link and per-request timing is stored,
and every run records what it cost, so the three ways of waiting for I/O can be compared on
identical work."""

EPILOG = """\
examples:
  crawler fixtures serve --port 8000 &                 a local site to crawl
  crawler crawl http://127.0.0.1:8000/ --name demo     crawl it (threads, 16 at once)
  crawler crawl http://127.0.0.1:8000/ --backend asyncio --concurrency 64 --name demo2
  crawler resume demo                                  continue an interrupted crawl
  crawler crawls                                       what the database holds
  crawler status demo                                  where a crawl stands, what next
  crawler links demo --broken                          broken links and their pages
  crawler export demo --format csv -o demo.csv         one record per URL

--db defaults to $CRAWLER_DB, else sqlite:///crawl.db in the current folder.
Exit codes: 0 done (page errors are data), 1 the crawler failed, 2 bad usage, 130 interrupted."""

_WHAT = {int: "a whole number", float: "a number of seconds", str: "text"}


def _argument_type(option: Option):
    """An argparse type: the setting's own conversion, with a message naming what it wants;
    the range is checked by CrawlSettings.checked, the same for every caller."""

    def parse(text: str) -> Any:
        try:
            return option.parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {_WHAT.get(option.parse, 'valid')}"
            ) from None

    return parse


def _add_settings(
    parser: argparse.ArgumentParser,
    settings_class: type,
    only: tuple[str, ...] | None = None,
    inherited: str | None = None,
) -> None:
    """The settings' options (`only` some of them); `inherited`: where a default comes from
    when it is not the setting's own (a resume's)."""
    groups: dict[str, Any] = {
        "crawl": parser,
        "run": parser,
        "politeness": parser.add_argument_group("politeness and retries"),
    }
    for name, default, option in options(settings_class):
        if only is not None and name not in only:
            continue
        group = groups[option.group]
        flag = option.flag(name)
        if option.parse is None:
            group.add_argument(flag, action="store_true", help=help_text(default, option))
        elif option.repeat:
            group.add_argument(
                flag.removesuffix("s"),
                dest=name,
                action="append",
                type=_argument_type(option),
                metavar=option.metavar,
                help=help_text(default, option) + "; give it once per host",
            )
        else:
            shown = help_text(default, option)
            if inherited is not None:
                shown = f"{option.help} (default: {inherited})"
            group.add_argument(
                flag,
                dest=name,
                type=_argument_type(option),
                metavar=option.metavar,
                help=shown,
            )


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="URL",
        help="database URL: sqlite:///FILE (?timeout=S: wait for another writer's lock) or "
        "postgresql+psycopg://user:pass@host/dbname (default: $CRAWLER_DB, else "
        "sqlite:///crawl.db)",
    )


def _add_crawl(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("crawl", metavar="CRAWL", help="crawl name, or #N for the crawl with id N")


def _add_listing(
    parser: argparse.ArgumentParser,
    *,
    limit: bool = True,
    default_limit: int = DEFAULT_LIMIT,
    what: str = "rows shown",
) -> None:
    """--json, --limit and --db, as every question takes them."""
    parser.add_argument(
        "--json", action="store_true", help='JSON for scripts (README, "JSON output")'
    )
    if limit:
        parser.add_argument(
            "--limit",
            type=int,
            default=default_limit,
            metavar="N",
            help=f"{what} (default: {default_limit})",
        )
    _add_db(parser)


def _add_run(parser: argparse.ArgumentParser, inherited: str | None = None) -> None:
    _add_settings(parser, RunSettings, inherited=inherited)
    parser.add_argument("--json", action="store_true", help="end with one JSON line on stdout")


def _add_verbose(parser: argparse.ArgumentParser, default: Any = argparse.SUPPRESS) -> None:
    """-v/-vv before or after the command: a command's own flag counts on from the top one
    (SUPPRESS keeps an absent one from resetting it)."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default,
        help="log the crawler's own messages to stderr: -v info, -vv debug",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crawler",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_verbose(parser, default=0)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    crawl = commands.add_parser(
        "crawl",
        help="crawl from seed URLs to completion",
        description="Crawl from the seed URLs until nothing in scope is left (or a limit).",
    )
    crawl.add_argument("seeds", nargs="+", metavar="SEED", help="http(s) URL to start from")
    _add_run(crawl)
    crawl.add_argument("--name", help="a unique name to resume the crawl by (default: made up)")
    _add_settings(crawl, CrawlSettings)
    _add_db(crawl)

    resume = commands.add_parser(
        "resume",
        help="continue an interrupted crawl",
        description="Continue a crawl that was interrupted, with the settings it was started "
        "with and the backend and concurrency it last ran with (unless given here); leases of a "
        "run whose process is gone are taken back at once. New budgets are stored with the "
        "crawl; a finished crawl with nothing left under them starts no run.",
    )
    resume.add_argument("crawl", metavar="CRAWL", help="crawl name, or #N for the crawl with id N")
    _add_run(resume, inherited="as the crawl last ran")
    _add_settings(resume, CrawlSettings, only=RESUME_BUDGETS, inherited="the crawl's own")
    _add_db(resume)

    submit = commands.add_parser(
        "submit",
        help="create a crawl for workers to join, without running it",
        description="Create a crawl (its seeds and settings) without running it; "
        "`crawler worker NAME` joins it, on any machine that reaches the database, with any "
        "frontend. `crawler crawl` is submit plus one local worker.",
    )
    submit.add_argument("seeds", nargs="+", metavar="SEED", help="http(s) URL to start from")
    submit.add_argument("--name", required=True, help="the unique name workers join it by")
    submit.add_argument(
        "--exists-ok",
        action="store_true",
        help="a crawl of that name with the same seeds and settings is fine (exit 0)",
    )
    submit.add_argument("--json", action="store_true", help="one JSON line on stdout")
    _add_settings(submit, CrawlSettings)
    _add_db(submit)

    worker = commands.add_parser(
        "worker",
        help="join a crawl and work on it until it is finished",
        description="Join a crawl made by `crawler submit` (or `crawl`) and work on it with "
        "this frontend until nothing is queued and no live worker holds a lease; then exit 0. "
        "Any number of workers, on any machines and with any frontends, share one crawl "
        "through the database (PostgreSQL across machines). A worker silent for longer than "
        "the crawl's --worker-timeout is dead to the others, which take its URLs back; if it "
        "wakes, it stops with exit code 3.",
    )
    _add_crawl(worker)
    _add_run(worker)
    _add_db(worker)

    crawls = commands.add_parser(
        "crawls",
        help="list the crawls in a database and where each stands",
        description="The crawls in a database: state (running, finished, interrupted, stuck), "
        "URLs by state, failed URLs apart from failed attempts, live runs, backends, elapsed "
        "time and last activity. Read-only.",
    )
    _add_listing(crawls, limit=False)
    status = commands.add_parser(
        "status",
        help="one crawl in depth, and what to run next",
        description="One crawl in depth: whether it is finished, running, interrupted or stuck "
        "and what to run next; URLs by state, host and depth; its runs and their cost; the "
        "oldest lease; failures by kind; skipped URLs by reason; responses per second over "
        "time. Read-only.",
    )
    _add_crawl(status)
    _add_listing(status, default_limit=STATUS_LIMIT, what="rows in each table")
    pages = commands.add_parser(
        "pages",
        help="the crawl's URLs with their last answer, filtered",
        description="The crawl's URLs in the order they were found (with --status or --error: "
        "in the order of their last attempts), each with its state and "
        "last answer; the filters narrow them (all must hold). Read-only.",
    )
    _add_crawl(pages)
    pages.add_argument("--status", type=int, metavar="CODE", help="last answer's HTTP status")
    pages.add_argument(
        "--error", metavar="KIND", help="last attempt's error kind, e.g. read_timeout"
    )
    pages.add_argument("--host", metavar="HOST", help="host[:port], e.g. 127.0.0.1:8000")
    pages.add_argument("--depth", type=int, metavar="N", help="links from a seed")
    pages.add_argument("--state", metavar="STATE", help=f"one of {', '.join(STATES)}")
    pages.add_argument("--title-contains", metavar="TEXT", help="in the page title, any case")
    _add_listing(pages)
    links = commands.add_parser(
        "links",
        help="links of the crawl's pages: to a URL, from a page, or broken",
        description="Links of the crawl's pages with what became of each target. --broken: "
        "links whose target failed or answered 4xx/5xx, with the pages they are on. Read-only.",
    )
    _add_crawl(links)
    which = links.add_mutually_exclusive_group()
    which.add_argument("--to", metavar="URL", help="links pointing at URL")
    which.add_argument("--from", dest="from_", metavar="URL", help="links on the page at URL")
    which.add_argument("--broken", action="store_true", help="links to failed or 4xx/5xx URLs")
    _add_listing(links)
    errors = commands.add_parser(
        "errors",
        help="failures by kind and status, with examples",
        description="Failed attempts by error kind and by 4xx/5xx status: how many attempts, "
        "how many URLs ended so, and an example. Read-only.",
    )
    _add_crawl(errors)
    _add_listing(errors)
    hosts = commands.add_parser(
        "hosts",
        help="per host: URLs, failures, fetch times, robots.txt, breaker",
        description="Each host of the crawl, the largest first: URLs by outcome, attempts, "
        "median and 95th percentile fetch time, robots.txt verdict, breaker and delay. "
        "Read-only.",
    )
    _add_crawl(hosts)
    _add_listing(hosts)
    show = commands.add_parser(
        "show",
        help="everything about one URL",
        description="Everything stored about one URL: every attempt with its timings, its "
        "redirects, the page it was found on, its links in and out, why it was skipped. "
        "Read-only.",
    )
    _add_crawl(show)
    show.add_argument("url", metavar="URL", help="the URL, as crawled or as linked")
    _add_listing(show, default_limit=SHOW_LIMIT, what="links in and out shown")
    export = commands.add_parser(
        "export",
        help="stream a crawl's records as JSON lines, CSV or JSON",
        description="Stream one record per URL of the frontier (skipped and failed included, "
        "with its state, skip reason, the page it was found on and its last attempt), or the "
        "rows of one table, in constant memory. Read-only.",
    )
    _add_crawl(export)
    export.add_argument("--format", choices=FORMATS, default="jsonl")
    export.add_argument(
        "--table", choices=TABLES, default="urls", help="what to export (default: urls)"
    )
    export.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE (with a progress bar), not stdout"
    )
    _add_db(export)

    sql = commands.add_parser(
        "sql",
        help="run one read-only SQL statement",
        description="Run one SQL statement on a read-only connection (SQLite opened read-only, "
        "PostgreSQL in a READ ONLY transaction): a statement that would write is refused by "
        "the database. The README has example queries.",
    )
    sql.add_argument("statement", metavar="SQL", help='e.g. "SELECT url, title FROM pages"')
    sql_format = sql.add_mutually_exclusive_group()
    sql_format.add_argument("--json", action="store_true", help="one JSON object per row")
    sql_format.add_argument("--csv", action="store_true", help="CSV with a header row")
    sql.add_argument(
        "--limit",
        type=int,
        default=1000,
        metavar="N",
        help="rows shown in the table (default: 1000; --json and --csv print them all)",
    )
    _add_db(sql)

    browse = commands.add_parser(
        "browse",
        help="explore the database in a browser (Datasette)",
        description="Serve the crawl database read-only through Datasette, with saved queries "
        "for broken links, errors by kind, slowest hosts and one URL's story. SQLite only.",
    )
    browse.add_argument(
        "--port", type=int, default=BROWSE_PORT, help=f"port to serve on (default {BROWSE_PORT})"
    )
    browse.add_argument("--host", default="127.0.0.1", help="address to serve on")
    _add_db(browse)

    compare = commands.add_parser(
        "compare",
        help="crawl one site with each frontend and concurrency, and compare them",
        description="Crawl the same site once per frontend, concurrency and repeat (each run "
        "its own crawl, in a fresh interpreter, in an interleaved order), then compare: "
        "pages/s, CPU per page, memory (RSS, PSS, virtual), start-up, context switches, fetch "
        "times, errors; medians and ranges over repeats. --experiment runs a named experiment "
        "on its own fixture site and judges the claim it tests. Crawls are named LABEL/..., "
        "so `crawler report 'LABEL/*'` reports them again.",
    )
    compare.add_argument("seeds", nargs="*", metavar="SEED", help="http(s) URL to start from")
    compare.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        metavar="LIST",
        help=f"frontends to compare, comma-separated (default: {','.join(BACKENDS)})",
    )
    compare.add_argument(
        "--parsers",
        default=PARSERS[0],
        metavar="LIST",
        help="parsers to compare each frontend with, comma-separated: beautifulsoup, lxml "
        "(default: beautifulsoup)",
    )
    compare.add_argument(
        "--concurrency",
        default="16,64,256",
        metavar="LIST",
        help="concurrency levels, comma-separated (default: 16,64,256)",
    )
    compare.add_argument(
        "--repeat", type=int, metavar="R", help="runs of each combination (default: 1)"
    )
    compare.add_argument(
        "--experiment",
        metavar="NAME",
        help="run a named experiment (--list-experiments), or all of them",
    )
    compare.add_argument(
        "--quick", action="store_true", help="the experiment at a size that takes seconds"
    )
    compare.add_argument(
        "--list-experiments", action="store_true", help="name the experiments and their claims"
    )
    compare.add_argument("--report", metavar="FILE", help="also write the HTML report to FILE")
    compare.add_argument("--json", action="store_true", help="the comparison as one JSON object")
    _add_settings(compare, CrawlSettings)
    _add_db(compare)

    report = commands.add_parser(
        "report",
        help="compare stored runs: tables, verdicts, an HTML report",
        description="The comparison of stored runs (any crawls: names, #N, or patterns such "
        "as 'compare-*' or 'memory-20261201-170000/*'): a table per comparison, the verdicts "
        "of experiments, and with --html one self-contained page with charts. Read-only.",
    )
    report.add_argument(
        "crawls", nargs="+", metavar="CRAWL", help="crawl name, #N, or a shell pattern"
    )
    report.add_argument("--html", metavar="FILE", help="write the HTML report to FILE")
    report.add_argument("--json", action="store_true", help="the report as one JSON object")
    _add_db(report)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    _add_db(db_commands.add_parser("upgrade", help="bring the schema to the newest version"))

    fixtures = commands.add_parser(
        "fixtures",
        help="the local fixture site to crawl",
        description="A local site to crawl, with latency and faults to dial in.",
    )
    fixture_commands = fixtures.add_subparsers(
        dest="fixtures_command", required=True, metavar="COMMAND"
    )
    serve = fixture_commands.add_parser(
        "serve",
        help="serve the site: `crawler fixtures serve --help` lists its options",
        add_help=False,  # its own parser answers --help
    )
    serve.add_argument("fixture_args", nargs=argparse.REMAINDER)
    for command in (
        crawl,
        resume,
        submit,
        worker,
        crawls,
        status,
        pages,
        links,
        errors,
        hosts,
        show,
        export,
        sql,
        browse,
        compare,
        report,
        db,
        fixtures,
    ):
        _add_verbose(command)
    return parser


class ProgressLine:
    """A live one-line display on stderr: pages, queued, errors, rate."""

    def __init__(self, enabled: bool) -> None:
        self.live = Live(Text(""), console=err, transient=True) if enabled else None
        self.last = 0.0
        self.started = perf_counter()

    def __enter__(self) -> ProgressLine:
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.live.__exit__(*exc)

    def __call__(self, progress: Progress) -> None:
        now = perf_counter()
        if not self.live or now - self.last < 0.2:
            return
        self.last = now
        rate = progress.pages / max(now - self.started, 1e-9)
        self.live.update(
            Text(
                f"pages {progress.pages}  fetched {progress.fetches}  queued {progress.queued}  "
                f"errors {progress.errors}  {rate:.1f} pages/s"
            )
        )


def summary_table(summaries: list[CrawlSummary]) -> Table:
    """One row per run, so frontends can be read side by side (fits 80 columns)."""
    table = Table(title="crawl summary", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("backend", no_wrap=True)
    for column in ("conc", "pages", "fetches", "errors", "secs", "pages/s", "CPU s", "RSS MiB"):
        table.add_column(column, justify="right", no_wrap=True, min_width=len(column))
    for run in (s.run for s in summaries if s.run is not None):
        table.add_row(
            run.backend,
            str(run.concurrency),
            str(run.pages),
            str(run.fetches),
            str(run.errors),
            f"{run.elapsed_s:.2f}",
            f"{run.pages_per_s:.1f}",
            f"{run.cpu_s:.2f}",
            f"{run.peak_rss_kb / 1024:.1f}",
        )
    return table


def _print_summary(summary: CrawlSummary, as_json: bool, command: str = "crawl") -> None:
    if as_json:
        print(json.dumps(asdict(summary)), flush=True)
        return
    if summary.run is None and command == "worker":
        print(
            f"crawl {summary.name} (id {summary.crawl_id}) is finished: {summary.pages} pages; "
            "nothing for a worker to do"
        )
        return
    if summary.run is None:
        print(
            f"crawl {summary.name} (id {summary.crawl_id}) is finished: {summary.pages} pages, "
            f"{summary.queued} URLs left past its budgets; nothing to resume (a larger "
            "--max-pages goes on)"
        )
        return
    out.print(summary_table([summary]))
    state = "finished" if summary.state == "finished" else f"stopped with {summary.queued} queued"
    print(
        f"crawl {summary.name} (id {summary.crawl_id}) {state}: {summary.pages} pages in all; "
        f"export it with `crawler export {summary.name}`"
    )


def _print_failure(args: argparse.Namespace, state: str, error: str, summary) -> None:
    """With --json, a crawl or resume says how it ended on stdout too, whatever ended it."""
    if not getattr(args, "json", False) or args.command not in ("crawl", "resume", "worker"):
        return
    if summary is None:  # no run had started
        summary = CrawlSummary(None, None, state, None, None, None, None, None, run=None)
    print(json.dumps(asdict(replace(summary, state=state, error=error))), flush=True)


def _given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The crawl settings given on the command line; the rest keep their defaults."""
    given = {}
    for name, _default, option in options(CrawlSettings):
        value = getattr(args, name, None)  # resume takes only the budgets
        if option.parse is None:
            if value:
                given[name] = True
        elif value is not None:
            given[name] = tuple(value) if option.repeat else value
    return given


def _given_run(args: argparse.Namespace) -> dict[str, Any]:
    names = ("backend", "concurrency", "pool_returns", "parser")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _run(args: argparse.Namespace) -> int:
    if args.command == "crawl":
        with ProgressLine(err.is_terminal and not args.json) as show:
            summary = crawler.crawl(
                args.seeds,
                **_given_run(args),
                db=args.db,
                name=args.name,
                on_progress=show,
                **_given_settings(args),
            )
        _print_summary(summary, args.json)
    elif args.command == "resume":
        with ProgressLine(err.is_terminal and not args.json) as show:
            summary = crawler.resume(
                args.crawl,
                **_given_run(args),
                db=args.db,
                on_progress=show,
                **_given_settings(args),
            )
        _print_summary(summary, args.json)
    elif args.command == "submit":
        submitted = crawler.submit(
            args.seeds,
            name=args.name,
            db=args.db,
            exists_ok=args.exists_ok,
            **_given_settings(args),
        )
        if args.json:
            print(_json(submitted))
        else:
            made = "submitted" if submitted.created else "exists already, the same"
            where = f" --db {shlex.quote(args.db)}" if args.db else ""
            print(
                f"crawl {submitted.name} (id {submitted.crawl_id}) {made}: "
                f"{len(submitted.seeds)} seed(s); start workers with "
                f"`crawler worker {shlex.quote(submitted.name)}{where}`"
            )
    elif args.command == "worker":
        with ProgressLine(err.is_terminal and not args.json) as show:
            summary = crawler.worker(args.crawl, **_given_run(args), db=args.db, on_progress=show)
        _print_summary(summary, args.json, "worker")
    elif args.command in QUESTIONS:
        _answer(args)
    elif args.command == "export":
        _export(args)
    elif args.command == "sql":
        _print_sql(args)
    elif args.command == "browse":
        from crawler.query.browse import serve

        return serve(
            args.db, port=args.port, host=args.host, on_ready=lambda line: print(line, flush=True)
        )
    elif args.command == "compare":
        return _compare(args)
    elif args.command == "report":
        _report(args)
    elif args.command == "db":
        print(f"database {crawler.upgrade_db(args.db)} is at the newest schema")
    elif args.command == "fixtures":
        from fixtures.server import main as fixtures_main

        return fixtures_main(args.fixture_args, prog="crawler fixtures serve")
    return 0


def _json(value: Any) -> str:
    return json.dumps(asdict(value), ensure_ascii=False)


def _ask(args: argparse.Namespace):
    """The answer to the question the command asks, from the Python API."""
    db, limit = args.db, getattr(args, "limit", None)
    if args.command == "crawls":
        return crawler.crawls(db)
    if args.command == "status":
        return crawler.status(args.crawl, db=db, limit=limit)
    if args.command == "pages":
        return crawler.pages(
            args.crawl,
            db=db,
            status=args.status,
            error=args.error,
            host=args.host,
            depth=args.depth,
            state=args.state,
            title_contains=args.title_contains,
            limit=limit,
        )
    if args.command == "links":
        return crawler.links(
            args.crawl, db=db, to=args.to, from_=args.from_, broken=args.broken, limit=limit
        )
    if args.command == "errors":
        return crawler.error_counts(args.crawl, db=db, limit=limit)
    if args.command == "hosts":
        return crawler.hosts(args.crawl, db=db, limit=limit)
    return crawler.show(args.crawl, args.url, db=db, limit=limit)


QUESTIONS = {
    "crawls": lambda crawls: views.crawls_table(crawls, out.width),
    "status": views.status_view,
    "pages": views.pages_table,
    "links": views.links_table,
    "errors": views.errors_table,
    "hosts": views.hosts_table,
    "show": views.story_view,
}


def _answer(args: argparse.Namespace) -> None:
    """A list is a table, or one JSON line per row; a single answer one JSON line."""
    answer = _ask(args)
    if args.json:
        for item in answer if isinstance(answer, list) else [answer]:
            print(_json(item))
        return
    if isinstance(answer, list) and not answer:
        err.print("nothing matches" if args.command != "crawls" else "no crawls yet")
        return
    out.print(QUESTIONS[args.command](answer))
    limit = getattr(args, "limit", None)
    if isinstance(answer, list) and limit is not None and len(answer) == limit:
        err.print(f"the first {limit} shown; --limit N shows more")


def _export(args: argparse.Namespace) -> None:
    """To stdout, or to a file through FILE.partial (renamed when complete, so a file is never
    half an export) with a progress bar on a terminal."""
    if args.output is None:
        crawler.export(args.crawl, sys.stdout, format=args.format, table=args.table, db=args.db)
        return
    target = Path(args.output)
    partial = target.with_name(target.name + ".partial")
    try:
        with (
            partial.open("w", encoding="utf-8", newline="") as handle,
            Progress(console=err, disable=not err.is_terminal, transient=True) as bar,
        ):
            task = bar.add_task(f"exporting {args.table}", total=None)
            written = crawler.export(
                args.crawl,
                handle,
                format=args.format,
                table=args.table,
                db=args.db,
                on_total=lambda total: bar.update(task, total=total),
                on_record=lambda: bar.advance(task),
            )
        partial.replace(target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise crawler.CrawlerError(
            f"cannot write {target}: {exc.strerror or exc}; choose another -o FILE"
        ) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    err.print(f"{written} records written to {target}")


def _print_sql(args: argparse.Namespace) -> None:
    from crawler.query.sql import read_only_statement

    if args.limit < 1:
        raise crawler.UsageError(f"--limit takes 1 or more, not {args.limit}")
    from crawler.api import open_db_read_only

    engine = open_db_read_only(args.db)
    try:
        with read_only_statement(engine, args.statement) as result:
            if args.json:
                for row in result.rows:
                    print(json.dumps(dict(zip(result.columns, row, strict=True)), default=str))
            elif args.csv:
                writer = csv.writer(sys.stdout)
                writer.writerow(result.columns)
                writer.writerows(result.rows)
            else:
                table = Table(box=box.SIMPLE_HEAD)
                for column in result.columns:
                    table.add_column(column)
                shown = 0
                for row in itertools.islice(result.rows, args.limit):
                    table.add_row(*("" if v is None else str(v) for v in row))
                    shown += 1
                out.print(table)
                more = next(result.rows, None) is not None
                if more:
                    err.print(f"first {shown} rows shown; --limit N shows more, --csv all")
    finally:
        engine.dispose()


def _levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        levels = []
    if not levels or min(levels) < 1:
        raise crawler.UsageError(
            f"--concurrency takes whole numbers of 1 or more, comma-separated, not {text!r}"
        )
    return list(dict.fromkeys(levels))


class CompareLine:
    """Which run of a comparison is going, how far it is, and the time left: a live line on
    a terminal, one line per run elsewhere (a log keeps those)."""

    def __init__(self, enabled: bool) -> None:
        self.live = Live(Text(""), console=err, transient=True) if err.is_terminal else None
        self.enabled = enabled
        self.run = 0

    def __enter__(self) -> CompareLine:
        if self.live and self.enabled:
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live and self.enabled:
            self.live.__exit__(*exc)

    def __call__(self, progress) -> None:
        if not self.enabled:
            return
        left = "" if progress.left_s is None else f", about {_duration(progress.left_s)} left"
        pages = f"{progress.pages:,}" + (f"/{progress.expected:,}" if progress.expected else "")
        line = (
            f"run {progress.run}/{progress.runs} {progress.name}: {pages} pages, "
            f"{_duration(progress.elapsed_s)} in{left}"
        )
        if self.live:
            self.live.update(Text(line))
        elif progress.run != self.run:
            err.print(line, highlight=False, soft_wrap=True)
        self.run = progress.run


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}"


def _compare(args: argparse.Namespace) -> int:
    from crawler.report.assembly import as_json

    if args.list_experiments:
        for experiment in crawler.experiments():
            claims = ", ".join(str(claim) for claim in experiment.claims)
            out.print(
                f"[bold]{experiment.name}[/bold] (claim {claims}): {experiment.title}; "
                f"measures {experiment.measures}",
                highlight=False,
            )
        out.print("[bold]all[/bold]: each of them in turn, reported together", highlight=False)
        return 0
    if args.quick and not args.experiment:
        raise crawler.UsageError("--quick sizes an experiment: give --experiment NAME too")
    with CompareLine(not args.json) as show:
        if args.experiment:
            if args.seeds:
                raise crawler.UsageError(
                    "an experiment serves its own fixture site: give --experiment or seeds"
                )
            comparison = crawler.experiment(
                args.experiment,
                quick=args.quick,
                db=args.db,
                repeat=args.repeat,
                report=args.report,
                on_progress=show,
            )
        else:
            comparison = crawler.compare(
                args.seeds,
                backends=[b.strip() for b in args.backends.split(",") if b.strip()],
                concurrency=_levels(args.concurrency),
                parsers=[p.strip() for p in args.parsers.split(",") if p.strip()],
                repeat=1 if args.repeat is None else args.repeat,
                db=args.db,
                report=args.report,
                on_progress=show,
                **_given_settings(args),
            )
    if args.json:
        answer = {
            "label": comparison.label,
            "experiment": comparison.experiment,
            "crawls": comparison.crawls,
            "failures": comparison.failures,
            "report_file": args.report,
            **as_json(comparison.report),
        }
        print(json.dumps(answer, ensure_ascii=False))
    else:
        out.print(views.comparison_tables(comparison.report))
        sys.stdout.flush()  # the table before the notes on stderr
        for note in comparison.report.notes:
            err.print(note, highlight=False, soft_wrap=True)
        if args.report:
            err.print(f"report written to {args.report}", highlight=False)
        elif comparison.crawls:
            label = comparison.crawls[0].rsplit("/", 1)[0]
            err.print(
                f"report these runs with `crawler report '{label}/*' --html report.html`",
                highlight=False,
            )
    return 1 if comparison.failures else 0


def _report(args: argparse.Namespace) -> None:
    from crawler.report.assembly import as_json

    report = crawler.make_report(args.crawls, db=args.db, html=args.html)
    if args.json:
        print(json.dumps(as_json(report), ensure_ascii=False))
        return
    out.print(views.comparison_tables(report))
    sys.stdout.flush()  # the table before the notes on stderr
    for note in report.notes:
        err.print(f"left out: {note}", highlight=False, soft_wrap=True)
    if args.html:
        err.print(f"report written to {args.html}", highlight=False)


def _before_fixture_args(argv: list[str]) -> list[str]:
    """`argv` up to `fixtures serve`: what follows (--help included) is the fixture server's
    own, and argparse's REMAINDER would refuse an option in first place."""
    for at in range(len(argv) - 1):
        if argv[at : at + 2] == ["fixtures", "serve"]:
            return argv[: at + 2]
        if not argv[at].startswith("-"):
            break
    return argv


def _stop_on_sigterm(_signum, _frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours = _before_fixture_args(argv)
    args = build_parser().parse_args(ours)
    if args.command == "fixtures":
        args.fixture_args = argv[len(ours) :]
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    # Our own loggers only: the libraries' (Alembic says 11 lines on every start) stay at
    # warnings.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("crawler").setLevel(
        {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    )
    try:
        return _run(args)
    except crawler.CrawlerError as exc:
        print(f"crawler: error: {exc}", file=sys.stderr)
        state = "interrupted" if isinstance(exc, crawler.Interrupted) else "failed"
        state = "dead" if isinstance(exc, crawler.DeclaredDead) else state
        _print_failure(args, state, str(exc), exc.summary)
        return exc.exit_code
    except KeyboardInterrupt:
        message = "interrupted"
        if args.command in ("crawl", "resume"):
            message = "interrupted; what finished is stored, continue with `crawler resume`"
        elif args.command == "worker":
            message = "interrupted; what finished is stored, rejoin with `crawler worker`"
        print(f"crawler: {message}", file=sys.stderr)
        _print_failure(args, "interrupted", message, None)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
