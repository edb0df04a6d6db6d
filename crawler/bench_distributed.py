"""`make bench` (distributed part): how far one frontier database carries a shared crawl.

    python -m crawler.bench_distributed [--quick]

1. Claims per second, no HTTP at all: a crawl with `--queued` URLs over `--hosts` hosts,
   and K claimer processes, each its own run with its own connection, that lease URLs
   (16 at a time, as a worker at concurrency 16 keeps ahead) and store each lease's results
   at once, for `--seconds`. A claim is one URL leased and stored done: the whole frontier
   work of one page but the links. On PostgreSQL and on SQLite.
2. Workers on a slow site: 1, 2 and 4 `crawler worker` processes (asyncio, concurrency 16
   each) on one crawl of a generated site with 200 ms of latency per page, in PostgreSQL.
   Pages per second run from the first run's start to the last run's end (the runs' own
   rows, so interpreter start-up is left out); 4 workers should reach 3.5 times one.

Figures from one run on a shared machine; the claimers and the database share its cores.
"""

from __future__ import annotations

import argparse
import multiprocessing
import subprocess
import sys
import time
from time import perf_counter

from rich.console import Console
from rich.table import Table
from sqlalchemy import insert, select, text

from crawler.bench_frontier import databases, populate
from crawler.frontier.repository import Frontier
from crawler.model import FetchResult, Timings
from crawler.policy.rules import CrawlRules
from crawler.store import make_engine
from crawler.store.models import Run
from crawler.urls import Scope

LEASE = 16
runs_t = Run.__table__


def _claimer(url: str, crawl_id: int, seeds: list[str], seconds: float, start_at: float, out):
    """One claimer process: its own run row and engine (nothing crosses the fork)."""
    engine = make_engine(url)
    with engine.begin() as conn:
        run_id = conn.execute(
            insert(runs_t).returning(runs_t.c.id),
            {
                "crawl_id": crawl_id,
                "frontend": "bench",
                "concurrency": LEASE,
                "hostname": "bench",
                "pid": 0,
                "state": "running",
                "pages": 0,
                "fetches": 0,
                "errors": 0,
            },
        ).scalar_one()
    rules = CrawlRules(Scope.for_seeds(seeds))
    frontier = Frontier(engine, crawl_id, run_id, rules)
    while time.time() < start_at:
        time.sleep(0.001)
    claimed = leases = 0
    ends = perf_counter() + seconds
    while perf_counter() < ends:
        tasks = frontier.lease(LEASE, {}).tasks
        leases += 1
        if not tasks:
            continue
        now = time.time()
        frontier.store(
            [
                FetchResult(task=t, worker="bench", started_at=now, status=200, timings=Timings())
                for t in tasks
            ]
        )
        claimed += len(tasks)
    engine.dispose()
    out.put((claimed, leases))


def claims_per_second(url: str, crawl_id: int, seeds: list[str], claimers: int, seconds: float):
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    start_at = time.time() + 3.0  # every claimer connected and ready
    procs = [
        context.Process(target=_claimer, args=(url, crawl_id, seeds, seconds, start_at, out))
        for _ in range(claimers)
    ]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=seconds + 120) for _ in procs]
    for proc in procs:
        proc.join()
    claimed = sum(r[0] for r in results)
    return claimed / seconds, sum(r[1] for r in results) / seconds


def bench_claims(args, console: Console) -> None:
    table = Table(title=f"frontier claims per second (lease {LEASE}, store at once; no HTTP)")
    for column in ("database", "claimers", "URLs claimed and stored /s", "lease transactions /s"):
        table.add_column(column, justify="right")
    with databases(args.db.split(",")) as fresh:
        for kind in args.db.split(","):
            counts = [int(k) for k in args.claimers.split(",")]
            if kind == "sqlite":
                counts = [k for k in counts if k <= 4]  # one writer at a time: more only wait
            for claimers in counts:
                engine = fresh(kind)
                crawl_id, _, seeds = populate(engine, args.queued, args.hosts)
                url = engine.url.render_as_string(hide_password=False)
                engine.dispose()
                rate, leases = claims_per_second(url, crawl_id, seeds, claimers, args.seconds)
                table.add_row(kind, str(claimers), f"{rate:,.0f}", f"{leases:,.0f}")
                console.print(f"{kind}, {claimers} claimers: {rate:,.0f} claims/s")
    console.print(table)


def _workers_once(cluster_url: str, site_url: str, workers: int, n: int) -> tuple[float, int]:
    """Submit a crawl and run `workers` workers on it; pages/s from the runs' own rows."""
    name = f"w{workers}-{n}"
    db = cluster_url
    crawler = [sys.executable, "-m", "crawler"]
    subprocess.run(
        [*crawler, "submit", site_url, "--name", name, "--db", db], check=True, capture_output=True
    )
    procs = [
        subprocess.Popen(
            [*crawler, "worker", name, "--backend", "asyncio", "--concurrency", "16", "--db", db],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(workers)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"a worker failed: {err.decode()[-500:]}")
    engine = make_engine(db)
    with engine.connect() as conn:
        crawl_id = conn.execute(text("SELECT id FROM crawls WHERE name = :n"), {"n": name}).scalar()
        first, last, pages = conn.execute(
            select(
                text("min(extract(epoch from started_at))"),
                text("max(extract(epoch from finished_at))"),
                text("sum(pages)"),
            )
            .select_from(runs_t)
            .where(runs_t.c.crawl_id == crawl_id)
        ).one()
    engine.dispose()
    return float(pages) / (float(last) - float(first)), int(pages)


def bench_workers(args, console: Console) -> None:
    from fixtures.postgres import Cluster
    from fixtures.server import ServerProcess

    cluster = Cluster()
    cluster.start()
    flags = ["--pages", str(args.pages), "--page-kb", "4", "--latency-ms", "200", "--workers", "2"]
    rates: dict[int, list[float]] = {1: [], 2: [], 4: []}
    try:
        with ServerProcess(*flags) as site:
            subprocess.run(
                [sys.executable, "-m", "crawler", "db", "upgrade", "--db", cluster.url],
                check=True,
                capture_output=True,
            )
            for n in range(args.rounds):
                for workers in (1, 2, 4):
                    rate, pages = _workers_once(cluster.url, site.url, workers, n)
                    rates[workers].append(rate)
                    console.print(
                        f"round {n + 1}: {workers} worker(s), {pages} pages, {rate:.1f}/s"
                    )
    finally:
        cluster.stop()
    table = Table(
        title=f"workers on one crawl ({args.pages:,} pages, 200 ms each; asyncio, c16 each)"
    )
    for column in ("workers", "pages/s (median)", "rounds", "× one worker"):
        table.add_column(column, justify="right")
    one = sorted(rates[1])[len(rates[1]) // 2]
    for workers, values in rates.items():
        median = sorted(values)[len(values) // 2]
        table.add_row(
            str(workers),
            f"{median:.1f}",
            ", ".join(f"{v:.1f}" for v in values),
            f"{median / one:.2f}×",
        )
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crawler.bench_distributed", description=__doc__
    )
    parser.add_argument("--queued", type=int, default=200_000)
    parser.add_argument("--hosts", type=int, default=2_000)
    parser.add_argument("--claimers", default="1,2,4,8,16")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--db", default="postgresql,sqlite")
    parser.add_argument("--pages", type=int, default=4_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smaller: for a first look")
    parser.add_argument("--only", choices=("claims", "workers"))
    args = parser.parse_args(argv)
    if args.quick:
        args.queued, args.seconds, args.pages, args.rounds = 50_000, 5.0, 1_500, 1
    console = Console()
    if args.only in (None, "claims"):
        bench_claims(args, console)
    if args.only in (None, "workers"):
        bench_workers(args, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
