"""The command line: argument parsing, progress display, exit codes. The only module that prints.

Exit codes: 0 the command did its job (page errors are data), 1 the crawler failed,
2 bad usage, 130 interrupted (the crawl can be resumed).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from dataclasses import asdict, replace
from time import perf_counter
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

import crawler
from crawler.model import CrawlSummary
from crawler.settings import (
    RESUME_BUDGETS,
    CrawlSettings,
    Option,
    RunSettings,
    help_text,
    options,
)

if TYPE_CHECKING:
    from crawler.coordinator import Progress

err = Console(stderr=True)
# A table piped to a file or a test is not cut to 80 columns.
out = Console() if Console().is_terminal else Console(width=120)

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
  crawler export demo --format csv > demo.csv          one record per fetched URL

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

    export = commands.add_parser(
        "export",
        help="one record per fetched URL, to stdout",
        description="One record per fetched URL (its last attempt). Read-only.",
    )
    export.add_argument("crawl", metavar="CRAWL", help="crawl name, or #N for the crawl with id N")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    _add_db(export)

    crawls = commands.add_parser(
        "crawls",
        help="list the crawls in a database",
        description="The crawls in a database with their counts. Read-only.",
    )
    crawls.add_argument("--json", action="store_true", help="one JSON line per crawl")
    _add_db(crawls)

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
    for command in (crawl, resume, export, crawls, db, fixtures):
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


def _print_summary(summary: CrawlSummary, as_json: bool) -> None:
    if as_json:
        print(json.dumps(asdict(summary)), flush=True)
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
    if not getattr(args, "json", False) or args.command not in ("crawl", "resume"):
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
    names = ("backend", "concurrency")
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
    elif args.command == "export":
        crawler.export(args.crawl, sys.stdout, format=args.format, db=args.db)
    elif args.command == "crawls":
        rows = crawler.list_crawls(args.db)
        if args.json:
            for row in rows:
                print(json.dumps(row))
        else:
            table = Table(title="crawls")
            columns = (
                "crawl_id",
                "name",
                "state",
                "pages",
                "fetches",
                "errors",
                "queued",
                "skipped",
            )
            for column in ("id", *columns[1:], "created"):
                table.add_column(column)
            for r in rows:
                table.add_row(*(str(r[c]) for c in columns), r["created_at"])
            out.print(table)
    elif args.command == "db":
        print(f"database {crawler.upgrade_db(args.db)} is at the newest schema")
    elif args.command == "fixtures":
        from fixtures.server import main as fixtures_main

        return fixtures_main(args.fixture_args, prog="crawler fixtures serve")
    return 0


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
        _print_failure(args, state, str(exc), exc.summary)
        return exc.exit_code
    except KeyboardInterrupt:
        message = "interrupted; what finished is stored, continue with `crawler resume`"
        print(f"crawler: {message}", file=sys.stderr)
        _print_failure(args, "interrupted", message, None)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
