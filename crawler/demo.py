"""`make demo`: serve the fixture sites, crawl them with every frontend, print them side by side,
and write the HTML report of those crawls.

First the hand-written site (correctness: the three must agree), then a generated site with
latency, where the three ways of waiting for I/O start to differ.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import crawler
from crawler.cli import out as console
from crawler.cli import summary_table
from crawler.frontends import BACKENDS
from fixtures.server import ServerProcess

GENERATED = ["--pages", "2000", "--latency-ms", "20", "--page-kb", "8"]
CONCURRENCY = 32


def crawl_with_each(url: str, db: str, name: str) -> list:
    return [
        crawler.crawl(
            [url], backend=backend, concurrency=CONCURRENCY, db=db, name=f"{name}-{backend}"
        )
        for backend in BACKENDS
    ]


def main() -> int:
    folder = Path(os.environ.get("DEMO_DIR", ".demo"))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    db = f"sqlite:///{folder / 'demo.db'}"
    for title, flags, name in (
        ("the hand-written fixture site", [], "handwritten"),
        ("a generated site: 2,000 pages, 20 ms latency", GENERATED, "generated"),
    ):
        with ServerProcess(*flags) as site:
            console.print(f"\n[bold]{title}[/bold] at {site.url}, concurrency {CONCURRENCY}")
            table = summary_table(crawl_with_each(site.url, db, name))
            table.title = title
            console.print(table)
    report = crawler.make_report(
        ["handwritten-*", "generated-*"], db=db, html=folder / "report.html"
    )
    console.print(
        f"\n[bold]report[/bold] of these crawls (charts, memory as RSS, PSS and virtual size): "
        f"{(folder / 'report.html').resolve()}  ({len(report.groups)} runs compared)",
        highlight=False,
    )
    console.print(
        f"stored in {db}; look inside with\n"
        f"  .venv/bin/crawler crawls --db {db}\n"
        f"  .venv/bin/crawler status handwritten-threads --db {db}\n"
        f"  .venv/bin/crawler links handwritten-threads --broken --db {db}\n"
        f"  .venv/bin/crawler browse --db {db}\n"
        "and put the usual claims about threads, processes and asyncio to a test with\n"
        "  .venv/bin/crawler compare --list-experiments"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
