"""`make bench` (frontier part): what leasing and storing cost per URL as the queue grows.

    python -m crawler.bench_frontier [--queued 10000,1000000] [--hosts 1000] [--urls 5000]

For each database (SQLite, and a private PostgreSQL cluster) and each queue length, a crawl
is set up with that many URLs queued over `--hosts` hosts, then leased and completed 100 at
a time (the coordinator's batch), `--urls` URLs in all, as one run does: no fetching, only
the frontier's own work. Host-first leasing reads hosts rows and each host's index, never
the queue, so the cost per URL should not follow the queue's length: the last column is the
ratio of the longest queue to the shortest. Figures from one run on a shared machine.
"""

from __future__ import annotations

import argparse
import json
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
from crawler.model import FetchResult, Timings
from crawler.policy.rules import CrawlRules
from crawler.store import make_engine, migrate
from crawler.store.models import Crawl, FrontierEntry, Host, Run
from crawler.urls import Scope, url_key

OUT = Path("bench-out")
BATCH = 100
CHUNK = 20_000


def populate(engine: Engine, queued: int, hosts: int) -> tuple[int, int, list[str]]:
    """A crawl with `queued` URLs at depth 1 spread over `hosts` hosts, and one run."""
    names = [f"h{n:04d}.bench.test" for n in range(hosts)]
    with engine.begin() as conn:
        crawl_id = conn.execute(
            insert(Crawl.__table__).returning(Crawl.__table__.c.id),
            {"name": "bench", "seeds": [], "settings": {}, "state": "running", "urls_started": 0},
        ).scalar_one()
        run_id = conn.execute(
            insert(Run.__table__).returning(Run.__table__.c.id),
            {
                "crawl_id": crawl_id,
                "frontend": "bench",
                "concurrency": BATCH,
                "hostname": "bench",
                "pid": 0,
                "state": "running",
                "pages": 0,
                "fetches": 0,
                "errors": 0,
            },
        ).scalar_one()
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
            conn.execute(insert(FrontierEntry.__table__), rows)
    return crawl_id, run_id, [f"http://{name}/" for name in names]


def measure(engine: Engine, queued: int, hosts: int, urls: int) -> dict:
    started = perf_counter()
    crawl_id, run_id, seeds = populate(engine, queued, hosts)
    setup_s = perf_counter() - started
    frontier = Frontier(engine, crawl_id, run_id, CrawlRules(Scope.for_seeds(seeds)))
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
        "hosts": hosts,
        "urls": measured,
        "setup_s": round(setup_s, 1),
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
    args = parser.parse_args(argv)
    sizes = [int(v) for v in args.queued.split(",")]
    if min(sizes) < args.urls + 5 * BATCH:
        parser.error("every --queued size must hold --urls and a warm-up of 500 more")
    kinds = args.db.split(",")
    console = Console(width=120)
    rows = []
    with databases(kinds) as fresh:
        for kind in kinds:
            for queued in sizes:
                engine = fresh(kind)
                row = {"db": kind, **measure(engine, queued, args.hosts, args.urls)}
                engine.dispose()
                rows.append(row)
                console.print(json.dumps(row), highlight=False)
    table = Table(title=f"frontier: lease and store, {args.hosts:,} hosts, batches of {BATCH}")
    for column in ("db", "queued", "lease µs/URL", "store µs/URL", "µs/URL", f"× {sizes[0]:,}"):
        table.add_column(column, justify="left" if column == "db" else "right")
    for row in rows:
        base = next(r for r in rows if r["db"] == row["db"] and r["queued"] == sizes[0])
        table.add_row(
            row["db"],
            f"{row['queued']:,}",
            f"{row['lease_us_per_url']:.0f}",
            f"{row['store_us_per_url']:.0f}",
            f"{row['us_per_url']:.0f}",
            f"{row['us_per_url'] / base['us_per_url']:.2f}",
        )
    console.print(table)
    OUT.mkdir(exist_ok=True)
    (OUT / "frontier.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
