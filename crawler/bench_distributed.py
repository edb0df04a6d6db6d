"""`make bench` (distributed part): how far one frontier database carries a shared crawl.

    python -m crawler.bench_distributed [--quick]

1. Claims per second, no HTTP at all: a crawl with `--queued` URLs over `--hosts` hosts,
   and K claimer processes, each its own run with its own connection, that lease URLs
   (16 at a time, as a worker at concurrency 16 keeps ahead) and store each lease's results
   at once, for `--seconds`. A claim is one URL leased and stored done: the whole frontier
   work of one page but the links. On PostgreSQL and on SQLite.
2. Workers on a slow site: 1, 2 and 4 `crawler worker` processes (asyncio, concurrency 16
   each; with BeautifulSoup, then lxml) on one crawl of a generated site with 200 ms of
   latency per page, in PostgreSQL, the rounds interleaved.
   Pages per second run from the first run's start to the last run's end (the runs' own
   rows, so interpreter start-up is left out); 4 workers should reach 3.5 times one.

Figures from one run on a shared machine; the claimers and the database share its cores.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import statistics
import subprocess
import sys
import time
from time import perf_counter

import psutil
from rich.console import Console
from rich.table import Table
from sqlalchemy import select, text

from crawler.bench_frontier import bench_run, databases, populate
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
        run_id = bench_run(conn, crawl_id, LEASE)
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


def server_cpu_s(pid: int | None) -> float:
    """CPU seconds the database server has used: the postmaster, its live backends and those
    it has reaped (0 for SQLite, which runs inside the claimers)."""
    if pid is None:
        return 0.0
    postmaster = psutil.Process(pid)
    times = postmaster.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in postmaster.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            child_times = child.cpu_times()
            total += child_times.user + child_times.system
    return total


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
    return claimed, sum(r[1] for r in results)


def bench_claims(args, console: Console) -> None:
    table = Table(
        title=f"frontier claims per second ({args.queued:,} URLs queued on {args.hosts:,} hosts; "
        f"lease {LEASE}, store at once; no HTTP)"
    )
    columns = ("database", "claimers", "claims /s", "leases /s", "server CPU ms / claim")
    for column in columns:
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
                server = _postmaster(engine) if kind == "postgresql" else None
                engine.dispose()
                cpu_before = server_cpu_s(server)
                claimed, leases = claims_per_second(url, crawl_id, seeds, claimers, args.seconds)
                cpu_ms = (server_cpu_s(server) - cpu_before) * 1000 / max(claimed, 1)
                rate = claimed / args.seconds
                table.add_row(
                    kind,
                    str(claimers),
                    f"{rate:,.0f}",
                    f"{leases / args.seconds:,.0f}",
                    f"{cpu_ms:.2f}" if server else "in the claimers",
                )
                console.print(f"{kind}, {claimers} claimers: {rate:,.0f} claims/s")
    console.print(table)


def _postmaster(engine) -> int:
    with engine.connect() as conn:
        data_dir = conn.execute(text("SHOW data_directory")).scalar()
    with open(f"{data_dir}/postmaster.pid") as pid_file:
        return int(pid_file.readline())


def _workers_once(
    cluster_url: str, site_url: str, workers: int, n: int, parser: list[str]
) -> tuple[float, int]:
    """Submit a crawl and run `workers` workers on it; pages/s from the runs' own rows."""
    name = f"w{workers}-{n}-{parser[-1]}"
    db = cluster_url
    crawler = [sys.executable, "-m", "crawler"]
    subprocess.run(
        [*crawler, "submit", site_url, "--name", name, "--db", db], check=True, capture_output=True
    )
    procs = [
        subprocess.Popen(
            [
                *crawler,
                "worker",
                name,
                "--backend",
                "asyncio",
                "--concurrency",
                "16",
                *parser,
                "--db",
                db,
            ],
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
    """Rounds interleaved: each round runs 1, 2 and 4 workers with each parser in turn."""
    from fixtures.postgres import Cluster
    from fixtures.server import ServerProcess

    cluster = Cluster()
    cluster.start()
    flags = ["--pages", str(args.pages), "--page-kb", "4", "--latency-ms", "200", "--workers", "2"]
    flags += ["--hosts", str(args.site_hosts)]
    parsers = args.parser.split(",")
    rates: dict[tuple[str, int], list[float]] = {(p, w): [] for p in parsers for w in (1, 2, 4)}
    try:
        with ServerProcess(*flags) as site:
            subprocess.run(
                [sys.executable, "-m", "crawler", "db", "upgrade", "--db", cluster.url],
                check=True,
                capture_output=True,
            )
            for n in range(args.rounds):
                for parser, workers in rates:
                    run = (workers, n, ["--parser", parser])
                    rate, pages = _workers_once(cluster.url, site.url, *run)
                    rates[parser, workers].append(rate)
                    console.print(
                        f"round {n + 1}: {workers} worker(s), {parser}, {pages} pages, {rate:.1f}/s"
                    )
    finally:
        cluster.stop()
    table = Table(
        title=f"workers on one crawl ({args.pages:,} pages, 200 ms each; asyncio, c16 each)"
    )
    for column in ("parser", "workers", "pages/s (median)", "rounds", "× one worker"):
        table.add_column(column, justify="right")
    for (parser, workers), values in rates.items():
        one = statistics.median(rates[parser, 1])
        median = statistics.median(values)
        table.add_row(
            parser,
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
    parser.add_argument(
        "--parser", default="beautifulsoup,lxml", help="the workers' parsers, each in turn"
    )
    parser.add_argument("--site-hosts", type=int, default=1, help="hosts the site is spread on")
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
