"""The command line: argument parsing, progress display, exit codes. The only module that prints.

Exit codes: 0 the command did its job (page errors are data), 1 the crawler failed,
2 bad usage, 130 interrupted (the crawl can be resumed).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
from dataclasses import asdict
from time import perf_counter
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

import crawler
from crawler.frontends import BACKENDS
from crawler.model import CrawlSummary

if TYPE_CHECKING:
    from crawler.frontier import Progress

err = Console(stderr=True)
# A table piped to a file or a test is not cut to 80 columns.
out = Console() if Console().is_terminal else Console(width=120)


def _number(convert, what: str, ok, must: str):
    """An argparse type: `convert` the text, then check it, with a message saying why not."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text!r} must be {must}")
        return value

    return parse


_positive_int = _number(int, "a whole number", lambda v: v >= 1, "at least 1")
_non_negative_int = _number(int, "a whole number", lambda v: v >= 0, "0 or more")
_seconds = _number(
    float,
    "a number of seconds",
    lambda v: math.isfinite(v) and v > 0,
    "a number of seconds more than 0",
)
_non_negative_seconds = _number(
    float,
    "a number of seconds",
    lambda v: math.isfinite(v) and v >= 0,
    "a number of seconds, 0 or more",
)


def _add_db(parser: argparse.ArgumentParser) -> None:
    from crawler.store.engine import DEFAULT_DB  # here, not at import: pool children import us

    parser.add_argument(
        "--db",
        help=f"database URL (default: $CRAWLER_DB, else {DEFAULT_DB})",
    )


def _add_frontend(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default="threads", help=f"one of {', '.join(BACKENDS)}")
    parser.add_argument("--concurrency", type=_positive_int, default=16, metavar="N")
    parser.add_argument("--json", action="store_true", help="end with one JSON line on stdout")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crawler", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    crawl = commands.add_parser("crawl", help="crawl from seed URLs to completion")
    crawl.add_argument("seeds", nargs="+", metavar="SEED")
    _add_frontend(crawl)
    crawl.add_argument("--max-pages", type=_positive_int, metavar="N")
    crawl.add_argument("--max-depth", type=_non_negative_int, metavar="N")
    crawl.add_argument("--allow-host", action="append", default=[], metavar="HOST")
    crawl.add_argument("--timeout", type=_seconds, default=30.0, metavar="S")
    crawl.add_argument("--user-agent", metavar="UA")
    crawl.add_argument("--name", help="a unique name to resume the crawl by")
    crawl.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        default=5 * 1024 * 1024,
        metavar="N",
        help="decoded bytes read of one page before it is refused (default 5 MiB)",
    )
    polite = crawl.add_argument_group("politeness and retries")
    polite.add_argument(
        "--ignore-robots", action="store_true", help="do not obey robots.txt (recorded)"
    )
    polite.add_argument(
        "--sitemaps", action="store_true", help="also seed from robots.txt Sitemap: lines"
    )
    polite.add_argument(
        "--per-host-concurrency",
        type=_positive_int,
        metavar="N",
        help="most requests in flight to one host (default 8; no cap on loopback)",
    )
    polite.add_argument(
        "--per-host-delay",
        type=_non_negative_seconds,
        metavar="S",
        help="least seconds between requests to one host (default 0; Crawl-delay raises it)",
    )
    polite.add_argument("--max-pages-per-host", type=_positive_int, metavar="N")
    polite.add_argument(
        "--max-attempts", type=_positive_int, default=3, metavar="N", help="fetches per URL"
    )
    polite.add_argument(
        "--retry-backoff",
        type=_non_negative_seconds,
        default=1.0,
        metavar="S",
        help="wait before the first retry, doubled after (default 1)",
    )
    polite.add_argument(
        "--max-retry-after",
        type=_non_negative_seconds,
        default=120.0,
        metavar="S",
        help="ceiling on a server's Retry-After (default 120)",
    )
    polite.add_argument(
        "--breaker-threshold",
        type=_non_negative_int,
        default=10,
        metavar="N",
        help="connection failures in a row that rest a host (0: never; default 10)",
    )
    polite.add_argument(
        "--breaker-cooldown",
        type=_non_negative_seconds,
        default=30.0,
        metavar="S",
        help="how long a failing host rests, doubled each time (default 30)",
    )
    _add_db(crawl)

    resume = commands.add_parser("resume", help="continue an interrupted crawl")
    resume.add_argument("crawl", metavar="CRAWL", help="crawl id or name")
    _add_frontend(resume)
    _add_db(resume)

    export = commands.add_parser("export", help="one record per fetched URL, to stdout")
    export.add_argument("crawl", metavar="CRAWL", help="crawl id or name")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    _add_db(export)

    crawls = commands.add_parser("crawls", help="list the crawls in a database")
    crawls.add_argument("--json", action="store_true")
    _add_db(crawls)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    _add_db(db_commands.add_parser("upgrade", help="bring the schema to the newest version"))

    fixtures = commands.add_parser(
        "fixtures", help="the local fixture site: `crawler fixtures serve --help`", add_help=False
    )
    fixtures.add_argument("fixture_args", nargs=argparse.REMAINDER)
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
    for s in summaries:
        table.add_row(
            s.backend,
            str(s.concurrency),
            str(s.pages),
            str(s.fetches),
            str(s.errors),
            f"{s.elapsed_s:.2f}",
            f"{s.pages_per_s:.1f}",
            f"{s.cpu_s:.2f}",
            f"{s.peak_rss_kb / 1024:.1f}",
        )
    return table


def _print_summary(summary: CrawlSummary, as_json: bool) -> None:
    if as_json:
        print(json.dumps(asdict(summary)), flush=True)
        return
    out.print(summary_table([summary]))
    state = "finished" if summary.state == "finished" else f"stopped with {summary.queued} queued"
    print(
        f"crawl {summary.name} (id {summary.crawl_id}) {state}; "
        f"export it with `crawler export {summary.name}`"
    )


def _run(args: argparse.Namespace) -> int:
    if args.command == "crawl":
        with ProgressLine(err.is_terminal and not args.json) as show:
            summary = crawler.crawl(
                args.seeds,
                backend=args.backend,
                concurrency=args.concurrency,
                db=args.db,
                name=args.name,
                max_pages=args.max_pages,
                max_depth=args.max_depth,
                allow_hosts=args.allow_host,
                timeout=args.timeout,
                user_agent=args.user_agent,
                ignore_robots=args.ignore_robots,
                sitemaps=args.sitemaps,
                per_host_concurrency=args.per_host_concurrency,
                per_host_delay=args.per_host_delay,
                max_pages_per_host=args.max_pages_per_host,
                max_attempts=args.max_attempts,
                retry_backoff=args.retry_backoff,
                max_retry_after=args.max_retry_after,
                breaker_threshold=args.breaker_threshold,
                breaker_cooldown=args.breaker_cooldown,
                max_body_bytes=args.max_body_bytes,
                on_progress=show,
            )
        _print_summary(summary, args.json)
    elif args.command == "resume":
        with ProgressLine(err.is_terminal and not args.json) as show:
            summary = crawler.resume(
                args.crawl,
                backend=args.backend,
                concurrency=args.concurrency,
                db=args.db,
                on_progress=show,
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
            for column in (
                "id",
                "name",
                "state",
                "pages",
                "fetches",
                "errors",
                "queued",
                "skipped",
                "created",
            ):
                table.add_column(column)
            for r in rows:
                table.add_row(
                    str(r["id"]),
                    r["name"],
                    r["state"],
                    str(r["pages"]),
                    str(r["fetches"]),
                    str(r["errors"]),
                    str(r["queued"]),
                    str(r["skipped"]),
                    r["created_at"],
                )
            out.print(table)
    elif args.command == "db":
        print(f"database {crawler.upgrade_db(args.db)} is at the newest schema")
    elif args.command == "fixtures":
        from fixtures.server import main as fixtures_main

        if args.fixture_args[:1] != ["serve"]:
            print("usage: crawler fixtures serve [--help] [options]", file=sys.stderr)
            return 2
        return fixtures_main(args.fixture_args[1:], prog="crawler fixtures serve")
    return 0


def _stop_on_sigterm(_signum, _frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return _run(args)
    except crawler.CrawlerError as exc:
        print(f"crawler: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(
            "crawler: interrupted; what finished is stored, continue with `crawler resume`",
            file=sys.stderr,
        )
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
