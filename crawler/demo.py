"""`make demo`: serve the fixture site, crawl it with every frontend, print them side by side."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import crawler
from crawler.cli import out as console
from crawler.cli import summary_table
from crawler.frontends import BACKENDS, BackendUnavailable, load


def available_backends() -> list[str]:
    names = []
    for name in BACKENDS:
        try:
            load(name)
        except BackendUnavailable:
            continue
        names.append(name)
    return names


def main() -> int:
    folder = Path(os.environ.get("DEMO_DIR", ".demo"))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    db = f"sqlite:///{folder / 'demo.db'}"
    port = os.environ.get("DEMO_PORT", "0")
    server = subprocess.Popen(
        [sys.executable, "-m", "crawler", "fixtures", "serve", "--port", port],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline()
        if not line.startswith("serving fixture site on "):
            console.print(f"the fixture server did not start: {line!r}")
            return 1
        url = line.split(" on ", 1)[1].strip()
        console.print(f"fixture site at {url}; crawling it into {db}")
        summaries = []
        for backend in available_backends():
            summary = crawler.crawl(
                [url], backend=backend, concurrency=16, db=db, name=f"demo-{backend}"
            )
            summaries.append(summary)
        console.print(summary_table(summaries))
        missing = [b for b in BACKENDS if b not in available_backends()]
        if missing:
            console.print(f"not available yet: {', '.join(missing)}")
        console.print(
            f"look inside: .venv/bin/crawler crawls --db {db}\n"
            f"             .venv/bin/crawler export demo-threads --db {db} | head"
        )
        return 0
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
