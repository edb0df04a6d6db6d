"""`make bench` (frontends part): the three frontends on one generated site, at several
latencies and concurrencies, each run's cost read from its `runs` row.

    python -m crawler.bench [--pages 5000] [--latency-ms 0,50] [--concurrency 16,64,256]
                            [--parser beautifulsoup|lxml]

Every run crawls the same site from a fresh database in a child process; the table and
bench-out/frontends.json keep pages/s, CPU ms per page, peak RSS (children included) and
the pool's start-up. Figures from one run on a shared machine: compare ratios, not values.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

from crawler.frontends import BACKENDS
from crawler.model import PARSERS
from fixtures.server import ServerProcess

OUT = Path("bench-out")
CHILD_MIB = 45  # a pool child's resident size (RSS; most of it shared with the fork server)


def crawl(url: str, backend: str, concurrency: int, folder: Path, parser: str) -> dict:
    db = folder / f"{backend}-{concurrency}.db"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "crawler",
            "crawl",
            url,
            "--backend",
            backend,
            "--concurrency",
            str(concurrency),
            "--parser",
            parser,
            "--json",
            "--db",
            f"sqlite:///{db}",
        ],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1:]}
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    with sqlite3.connect(db) as conn:
        user, system, rss, pss, startup, store, voluntary, involuntary, ipc = conn.execute(
            "SELECT user_cpu_s, system_cpu_s, peak_rss_kb, peak_pss_kb, startup_s, store_s,"
            " ctx_voluntary, ctx_involuntary, ipc_bytes FROM runs"
        ).fetchone()
    db.unlink()
    pages = max(summary["pages"], 1)
    return {
        "pages": summary["pages"],
        "errors": summary["errors"],
        "seconds": summary["run"]["elapsed_s"],
        "pages_per_s": summary["run"]["pages_per_s"],
        "cpu_ms_per_page": round((user + system) * 1000 / pages, 2),
        "peak_rss_mib": round(rss / 1024, 1),
        "peak_pss_mib": round(pss / 1024, 1) if pss is not None else None,
        "startup_s": round(startup or 0.0, 2),
        "store_s": round(store or 0.0, 2),
        "ctx_switches": voluntary + involuntary,
        "ipc_bytes": ipc,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crawler.bench", description=__doc__)
    parser.add_argument("--pages", type=int, default=5000)
    parser.add_argument("--latency-ms", default="0,50")
    parser.add_argument("--concurrency", default="16,64,256")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--parser", default=PARSERS[0], choices=PARSERS)
    args = parser.parse_args(argv)
    latencies = [int(v) for v in args.latency_ms.split(",")]
    levels = [int(v) for v in args.concurrency.split(",")]
    console = Console(width=120)
    rows = []
    with tempfile.TemporaryDirectory(prefix="crawler-bench-") as scratch:
        for latency in latencies:
            flags = ["--pages", str(args.pages), "--latency-ms", str(latency)]
            with ServerProcess(*flags) as server:
                url = server.url
                for concurrency in levels:
                    for backend in args.backends.split(","):
                        needed = concurrency * CHILD_MIB * 1.5
                        free = psutil.virtual_memory().available / 2**20
                        if backend == "processes" and needed > free:
                            row = {"error": f"skipped: needs ~{needed:,.0f} MiB, {free:,.0f} free"}
                        else:
                            row = crawl(url, backend, concurrency, Path(scratch), args.parser)
                        row = {
                            "latency_ms": latency,
                            "backend": backend,
                            "concurrency": concurrency,
                            **row,
                        }
                        rows.append(row)
                        console.print(json.dumps(row), highlight=False)
    table = Table(title=f"the three frontends on a {args.pages:,}-page generated site")
    for column in (
        "latency",
        "backend",
        "conc",
        "pages/s",
        "CPU ms/page",
        "peak RSS MiB",
        "peak PSS MiB",
        "start-up s",
        "errors",
    ):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for row in rows:
        if "error" in row:
            table.add_row(
                f"{row['latency_ms']} ms",
                row["backend"],
                str(row["concurrency"]),
                "-",
                "-",
                "-",
                "-",
                "-",
                str(row["error"]),
            )
            continue
        table.add_row(
            f"{row['latency_ms']} ms",
            row["backend"],
            str(row["concurrency"]),
            f"{row['pages_per_s']:.0f}",
            f"{row['cpu_ms_per_page']:.2f}",
            f"{row['peak_rss_mib']:.0f}",
            f"{row['peak_pss_mib'] or 0:.0f}",
            f"{row['startup_s']:.2f}",
            str(row["errors"]),
        )
    console.print(table)
    OUT.mkdir(exist_ok=True)
    (OUT / "frontends.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
