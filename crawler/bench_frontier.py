"""`make bench` (frontier part): what leasing and storing cost per URL as the queue grows.

    python -m crawler.bench_frontier [--queued 10000,1000000] [--hosts 1000] [--urls 5000]

For each database (SQLite, and a private PostgreSQL cluster) and each queue length, a crawl
is set up with that many URLs queued over `--hosts` hosts, then leased and completed 100 at
a time (the coordinator's batch), `--urls` URLs in all, as one run does: no fetching, only
the frontier's own work. Host-first leasing reads hosts rows and each host's index, never
the queue, so the cost per URL should not follow the queue's length: the last column is the
ratio of each queue's median to the shortest queue's. The sizes are measured in turn,
`--repeat` times (a queue too short for another window is set up afresh), so that the
machine's drift hits them alike. Figures from one run on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, insert

from crawler.frontier.repository import Frontier
from crawler.frontier.tables import insert_with_ids
from crawler.model import FetchResult, Timings
from crawler.policy.rules import CrawlRules
from crawler.store import make_engine, migrate
from crawler.store.models import Crawl, FrontierEntry, Host, ReadyURL, Run
from crawler.urls import Scope, url_key

OUT = Path("bench-out")
BATCH = 100
CHUNK = 20_000


def bench_run(conn, crawl_id: int, concurrency: int) -> int:
    """A `runs` row for a benchmark's claimer, which fetches nothing."""
    return conn.execute(
        insert(Run.__table__).returning(Run.__table__.c.id),
        {
            "crawl_id": crawl_id,
            "frontend": "bench",
            "concurrency": concurrency,
            "hostname": "bench",
            "pid": 0,
            "state": "running",
            "pages": 0,
            "fetches": 0,
            "errors": 0,
        },
    ).scalar_one()


def populate(engine: Engine, queued: int, hosts: int) -> tuple[int, int, list[str]]:
    """A crawl with `queued` URLs at depth 1 spread over `hosts` hosts, and one run."""
    names = [f"h{n:04d}.bench.test" for n in range(hosts)]
    with engine.begin() as conn:
        crawl_id = conn.execute(
            insert(Crawl.__table__).returning(Crawl.__table__.c.id),
            {"name": "bench", "seeds": [], "settings": {}, "state": "running", "urls_started": 0},
        ).scalar_one()
        run_id = bench_run(conn, crawl_id, BATCH)
        conn.execute(
            insert(Host.__table__),
            [
                {
                    "crawl_id": crawl_id,
                    "host": name,
                    "next_fetch_at": 0.0,
                    "failures": 0,
                    "breaker_until": 0.0,
                    "breaker_trips": 0,
                    "urls_started": 0,
                    "queued": queued // hosts + (n < queued % hosts),
                }
                for n, name in enumerate(names)
            ],
        )
    for start in range(0, queued, CHUNK):
        rows = []
        for n in range(start, min(queued, start + CHUNK)):
            host = names[n % hosts]
            url = f"http://{host}/page/{n}.html"
            rows.append(
                {
                    "crawl_id": crawl_id,
                    "url": url,
                    "url_key": url_key(url),
                    "host": host,
                    "depth": 1,
                    "redirect_hops": 0,
                    "state": "queued",
                    "attempts": 0,
                    "next_attempt_at": 0.0,
                }
            )
        with engine.begin() as conn:
            ids = insert_with_ids(conn, FrontierEntry.__table__, rows)
            conn.execute(
                insert(ReadyURL.__table__),
                [
                    {
                        "crawl_id": crawl_id,
                        "host": row["host"],
                        "depth": 1,
                        "url_key": row["url_key"],
                        "frontier_id": id_,
                        "url": row["url"],
                        "attempts": 0,
                        "redirect_hops": 0,
                    }
                    for id_, row in zip(ids, rows, strict=True)
                ],
            )
    return crawl_id, run_id, [f"http://{name}/" for name in names]


def measure(frontier: Frontier, queued: int, urls: int) -> dict:
    """Lease and store `urls` URLs (after a warm-up of 5 batches) from `frontier`."""
    lease_s = store_s = 0.0
    done = 0
    warm_up = 5 * BATCH
    while done < urls + warm_up:
        t0 = perf_counter()
        tasks = frontier.lease(BATCH, {}).tasks
        t1 = perf_counter()
        now = time.time()
        frontier.store(
            [
                FetchResult(
                    task=task,
                    worker="bench",
                    started_at=now,
                    status=200,
                    timings=Timings(total=0.001),
                )
                for task in tasks
            ]
        )
        t2 = perf_counter()
        if not tasks:
            raise RuntimeError("the frontier ran dry: queue more URLs than --urls")
        if done >= warm_up:
            lease_s += t1 - t0
            store_s += t2 - t1
        done += len(tasks)
    measured = done - warm_up
    return {
        "queued": queued,
        "urls": measured,
        "lease_us_per_url": round(lease_s / measured * 1e6, 1),
        "store_us_per_url": round(store_s / measured * 1e6, 1),
        "us_per_url": round((lease_s + store_s) / measured * 1e6, 1),
    }


@contextmanager
def databases(kinds: list[str]) -> Iterator[Iterator[tuple[str, Engine]]]:
    """Fresh databases of each kind, one per measurement."""
    with tempfile.TemporaryDirectory(prefix="crawler-bench-frontier-") as scratch:
        cluster = None
        if "postgresql" in kinds:
            from fixtures.postgres import Cluster

            cluster = Cluster()
            cluster.start()
        counter = iter(range(1_000_000))

        def fresh(kind: str) -> Engine:
            n = next(counter)
            if kind == "sqlite":
                engine = make_engine(f"sqlite:///{Path(scratch) / f'b{n}.db'}")
            else:
                import psycopg

                plain = cluster.url.replace("postgresql+psycopg://", "postgresql://")
                with psycopg.connect(plain, autocommit=True) as conn:
                    conn.execute(f"CREATE DATABASE b{n}")
                engine = make_engine(cluster.url.rsplit("/", 1)[0] + f"/b{n}")
            migrate.upgrade(engine)
            return engine

        try:
            yield fresh
        finally:
            if cluster is not None:
                cluster.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crawler.bench_frontier", description=__doc__)
    parser.add_argument("--queued", default="10000,1000000")
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--urls", type=int, default=5_000, help="measured on each queue")
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    sizes = [int(v) for v in args.queued.split(",")]
    if min(sizes) < args.urls + 5 * BATCH:  # one window each, at least
        parser.error("every --queued size must hold --urls and a warm-up of 500 more")
    kinds = args.db.split(",")
    console = Console(width=120)
    rows = []
    used = args.urls + 5 * BATCH
    with databases(kinds) as fresh:
        for kind in kinds:
            crawls: dict[int, tuple[Engine, Frontier, int]] = {}  # size -> engine, frontier, left
            for _ in range(args.repeat):
                for queued in sizes:
                    engine, frontier, left = crawls.get(queued, (None, None, 0))
                    if left < used:
                        if engine is not None:
                            engine.dispose()
                        engine = fresh(kind)
                        started = perf_counter()
                        crawl_id, run_id, seeds = populate(engine, queued, args.hosts)
                        console.print(
                            f"{kind}: {queued:,} URLs queued in {perf_counter() - started:.1f} s"
                        )
                        rules = CrawlRules(Scope.for_seeds(seeds))
                        frontier = Frontier(engine, crawl_id, run_id, rules)
                        left = queued
                    row = {"db": kind, **measure(frontier, queued, args.urls)}
                    crawls[queued] = (engine, frontier, left - used)
                    rows.append(row)
                    console.print(json.dumps(row), highlight=False)
            for engine, _frontier, _left in crawls.values():
                engine.dispose()
    table = Table(
        title=f"frontier: lease and store, {args.hosts:,} hosts, batches of {BATCH}, "
        f"medians of {args.repeat}"
    )
    columns = (
        "db",
        "queued",
        "lease µs/URL",
        "store µs/URL",
        "µs/URL",
        "min-max",
        f"× {sizes[0]:,}",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "db" else "right")

    def median(kind: str, queued: int, field: str) -> float:
        return statistics.median(
            r[field] for r in rows if r["db"] == kind and r["queued"] == queued
        )

    for kind in kinds:
        for queued in sizes:
            totals = [r["us_per_url"] for r in rows if r["db"] == kind and r["queued"] == queued]
            table.add_row(
                kind,
                f"{queued:,}",
                f"{median(kind, queued, 'lease_us_per_url'):.0f}",
                f"{median(kind, queued, 'store_us_per_url'):.0f}",
                f"{median(kind, queued, 'us_per_url'):.0f}",
                f"{min(totals):.0f}-{max(totals):.0f}",
                f"{median(kind, queued, 'us_per_url') / median(kind, sizes[0], 'us_per_url'):.2f}",
            )
    console.print(table)
    OUT.mkdir(exist_ok=True)
    (OUT / "frontier.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
