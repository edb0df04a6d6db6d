"""`make bench` (query part): the read-side questions on a crawl of 1,000,000 URLs.

    python -m crawler.bench_query [--urls 1000000] [--quick] [--repeat 5] [--pg URL|private]

A crawl database is generated through our schema (`open_db` creates and migrates it, then
rows are written in bulk): ~200 hosts of unequal size, depths 0 to 8, ~90% of the URLs done,
3% failed, 5% skipped, 2% queued (a few leased) and a few waiting to retry; a fetch per
attempt (5% of the URLs needed a second), a page per 200 and five links per page. It is kept
in .bench/ and reused by the next run with the same --urls. Then each question of the
read-only API is asked `--repeat` times (median and max, in ms; over 500 ms is SLOW, and its
slowest statements are shown with their query plans), and `crawler export` runs as a child
process at two sizes (--urls and a tenth of it) for its wall time, records/s and peak RSS,
which should not grow with the crawl. Figures from one run on a shared machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from bisect import bisect
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, event, insert, text

import crawler
from crawler.api import open_db, open_db_read_only
from crawler.store.models import Crawl, Host, Robots, Run
from crawler.urls import canonicalize, host_of, url_key

OUT = Path("bench-out")
DATA = Path(".bench")
VERSION = 2  # of the generator and the schema: a new one makes new files
SLOW_MS = 500.0
HOSTS = 200
DEPTH_WEIGHTS = (2, 5, 10, 16, 20, 20, 15, 12)  # of the URLs below the seeds, depth 1 to 8
CHUNK = 50_000  # frontier rows per transaction, with their fetches, pages and links
LEASED = 48
TOPICS = (
    "Pricing", "Docs", "Blog", "About", "Careers", "Contact", "Support", "Release notes",
    "Security", "Changelog", "Team", "Partners", "Press", "Events", "Webinars", "Guides",
    "Tutorials", "API reference", "Status", "Legal", "Privacy", "Terms", "Download", "Forum",
    "Community", "Roadmap", "Customers", "Case study", "Integrations", "Features", "Compare",
    "FAQ", "Glossary", "Sitemap", "Archive", "Newsletter", "Jobs", "Investors", "Brand", "Shop",
)  # fmt: skip
RARE = "Quasar"  # in about one title in 100,000
SKIP_ROBOTS = "disallowed by robots.txt"
SKIP_LIMIT = "host page limit (5000)"
SKIP_UNAVAILABLE = "robots.txt unavailable"
SKIP_BREAKER = "host failing: breaker opened 3 times"
FAILURES = (  # (error_kind, status, message, weight) of the URLs that failed
    ("read_timeout", None, "no byte for 10.0 s", 35),
    ("reset", None, "Connection reset by peer", 20),
    ("connect", None, "[Errno 111] Connection refused", 15),
    ("connect_timeout", None, "no connection after 5.0 s", 10),
    (None, 503, None, 12),
    (None, 500, None, 8),
)
FIRST_FAILURES = FAILURES[:2] + FAILURES[4:5]  # a first attempt that the second made good
DONE_STATUSES = ((200, 920), (301, 30), (404, 35), (403, 8), (410, 7))
QUEUED, RETRY, DONE, FAILED, SKIPPED = range(5)
STATE_NAMES = ("queued", "retry", "done", "failed", "skipped")


# Generation ------------------------------------------------------------------------------


@dataclass
class Shape:
    """Pass one: where each URL stands, in compact arrays indexed by frontier row (id - 1)."""

    n: int
    host: array = field(default_factory=lambda: array("H"))
    depth: array = field(default_factory=lambda: array("B"))
    state: array = field(default_factory=lambda: array("B"))
    found: array = field(default_factory=lambda: array("l"))  # row, or -1 for a seed
    hops: array = field(default_factory=lambda: array("B"))
    outcome: array = field(default_factory=lambda: array("B"))  # DONE_STATUSES/FAILURES index
    retried: array = field(default_factory=lambda: array("B"))  # a done URL's failed attempts


def host_name(h: int) -> str:
    return f"h{h}.example"


def url_of(h: int, row: int) -> str:
    return f"http://{host_name(h)}/" if row == h else f"http://{host_name(h)}/p/{row}.html"


def shape(n: int, rng: random.Random) -> Shape:
    """Seeds first (a home page per host), then each depth in turn, as a breadth-first crawl
    finds them; each URL on a host drawn by weight, found on a page of that host one level up;
    a 301's target is the next row, on its host, at its depth, one hop further."""
    s = Shape(n)
    hosts = min(HOSTS, n)
    weights = [1 / (k + 1) ** 0.5 for k in range(hosts)]  # the largest host: ~4% of URLs
    cumulative = [sum(weights[: k + 1]) for k in range(hosts)]
    below = n - hosts
    total_w = sum(DEPTH_WEIGHTS)
    starts = [hosts]
    for w in DEPTH_WEIGHTS:
        starts.append(starts[-1] + below * w // total_w)
    starts[-1] = n
    level: list[list[int]] = [[h] for h in range(hosts)]  # rows of the previous depth by host
    current: list[list[int]] = [[] for _ in range(hosts)]
    current_depth = 1
    failure_cum = _cumulative(weight for *_, weight in FAILURES)
    done_cum = _cumulative(weight for _, weight in DONE_STATUSES)
    for i in range(n):
        if i < hosts:
            s.host.append(i)
            s.depth.append(0)
            s.found.append(-1)
            s.hops.append(0)
            s.state.append(DONE)
            s.outcome.append(0)
            s.retried.append(0)
            continue
        d = min(bisect(starts, i), len(DEPTH_WEIGHTS))
        if d != current_depth:
            level, current, current_depth = current, [[] for _ in range(hosts)], d
        if s.state[i - 1] == DONE and DONE_STATUSES[s.outcome[i - 1]][0] == 301:
            h, d, found, hops = s.host[i - 1], s.depth[i - 1], i - 1, s.hops[i - 1] + 1
        else:
            h = bisect(cumulative, rng.random() * cumulative[-1])
            parents = level[h] or level[rng.randrange(hosts)] or [h]
            found, hops = rng.choice(parents), 0
        current[h].append(i)
        s.host.append(h)
        s.depth.append(d)
        s.found.append(found)
        s.hops.append(hops)
        r = rng.random()
        retried = 0
        if r < 0.02:
            state, outcome = QUEUED, 0
        elif r < 0.022:
            state, outcome = RETRY, bisect(failure_cum, rng.random() * failure_cum[-1])
        elif r < 0.052:
            state, outcome = FAILED, bisect(failure_cum, rng.random() * failure_cum[-1])
        elif r < 0.102:
            state, outcome = SKIPPED, 0
        else:
            state = DONE
            outcome = bisect(done_cum, rng.random() * done_cum[-1])
            if i == n - 1 and DONE_STATUSES[outcome][0] == 301:
                outcome = 0  # a redirect needs a next row to lead to
            retried = 1 if rng.random() < 0.05 else 0
        s.state.append(state)
        s.outcome.append(outcome)
        s.retried.append(retried)
    return s


def _cumulative(weights: Iterable[int]) -> list[int]:
    out, total = [], 0
    for w in weights:
        total += w
        out.append(total)
    return out


def skip_reason(h: int, rng: random.Random) -> str:
    if h % 20 == 7:
        return SKIP_UNAVAILABLE
    if h % 25 == 3:
        return SKIP_BREAKER
    return SKIP_ROBOTS if rng.random() < 0.6 else SKIP_LIMIT


FRONTIER_COLS = (
    "id, crawl_id, url, url_key, host, depth, redirect_hops, state, attempts, "
    "next_attempt_at, found_from, skip_reason"
)
FETCH_COLS = (
    "id, crawl_id, frontier_id, run_id, worker, url, host, attempt, started_at, status, "
    "content_type, body_bytes, location, error_kind, error_message, queue_wait_s, connect_s, "
    "first_byte_s, download_s, parse_s, total_s"
)
PAGE_COLS = "id, crawl_id, frontier_id, fetch_id, url, title, canonical, charset, link_count, "
PAGE_COLS += "content_hash"
LINK_COLS = "id, page_id, position, url, anchor_text, rel, nofollow, followed"
READY_COLS = "crawl_id, host, depth, url_key, frontier_id, url, attempts, redirect_hops"
LEASE_COLS = (
    "frontier_id, crawl_id, host, depth, url_key, url, attempt, redirect_hops, run_id, token, "
    "expires_at"
)
TABLE_COLS = {
    "frontier": FRONTIER_COLS,
    "fetches": FETCH_COLS,
    "pages": PAGE_COLS,
    "links": LINK_COLS,
    "ready": READY_COLS,
    "leases": LEASE_COLS,
}


@dataclass
class Ids:
    """The next id of each table (ids are given, not left to the database, so that a page can
    name its fetch and a link its page in the same batch)."""

    frontier: int = 1
    fetches: int = 1
    pages: int = 1
    links: int = 1


def rows(
    s: Shape, crawl_id: int, run_ids: list[int], t0: float, span: float, rng: random.Random
) -> Iterator[dict[str, list[tuple]]]:
    """Pass two: the rows of each table, CHUNK frontier rows at a time."""
    ids = Ids()
    n = s.n
    now = time.time()
    leased = 0
    host_names = [host_name(h) for h in range(max(s.host) + 1)]
    for start in range(0, n, CHUNK):
        out: dict[str, list[tuple]] = {table: [] for table in TABLE_COLS}
        for i in range(start, min(n, start + CHUNK)):
            h, d, state = s.host[i], s.depth[i], s.state[i]
            host = host_names[h]
            url = url_of(h, i)
            key = url_key(url)
            fid = ids.frontier + i
            found = s.found[i] + 1 if s.found[i] >= 0 else None
            attempts, next_at, reason = 0, 0.0, None
            moment = t0 + span * i / n
            run_id = run_ids[0 if i < 0.35 * n else 1 if i < 0.7 * n else 2]
            worker = f"worker-{rng.randrange(16)}"
            if state == SKIPPED:
                reason = skip_reason(h, rng)
            elif state == QUEUED:
                if leased < LEASED and i % 7 == 0:
                    leased += 1
                    out["leases"].append(
                        (fid, crawl_id, host, d, key, url, 1, s.hops[i], run_ids[-1],
                         f"{rng.getrandbits(128):032x}", now - 600.0)
                    )  # fmt: skip
                else:
                    out["ready"].append((crawl_id, host, d, key, fid, url, 0, s.hops[i]))
            else:
                failures = {RETRY: 1, FAILED: 3}.get(state, s.retried[i])
                for attempt in range(1, failures + 1):
                    if state == DONE:
                        kind, status, message, _ = FIRST_FAILURES[rng.randrange(3)]
                    else:
                        kind, status, message, _ = FAILURES[s.outcome[i]]
                    started = moment - 90.0 * (failures + 1 - attempt)
                    out["fetches"].append(
                        _fetch(ids.fetches, crawl_id, fid, run_id, worker, url, host, attempt,
                               started, status, None, kind, message, rng)
                    )  # fmt: skip
                    ids.fetches += 1
                attempts = failures
                if state == RETRY:
                    next_at = now + rng.uniform(30, 600)
                if state == DONE:
                    attempts += 1
                    status = DONE_STATUSES[s.outcome[i]][0]
                    location = url_of(h, i + 1) if status == 301 else None
                    fetch_id = ids.fetches
                    out["fetches"].append(
                        _fetch(fetch_id, crawl_id, fid, run_id, worker, url, host, attempts,
                               moment, status, location, None, None, rng)
                    )  # fmt: skip
                    ids.fetches += 1
                    if status == 200:
                        _page(out, ids, s, crawl_id, fid, fetch_id, i, url, rng)
            out["frontier"].append(
                (fid, crawl_id, url, key, host, d, s.hops[i], STATE_NAMES[state], attempts,
                 next_at, found, reason)
            )  # fmt: skip
        yield out


def _fetch(
    fetch_id: int,
    crawl_id: int,
    fid: int,
    run_id: int,
    worker: str,
    url: str,
    host: str,
    attempt: int,
    started: float,
    status: int | None,
    location: str | None,
    kind: str | None,
    message: str | None,
    rng: random.Random,
) -> tuple:
    wait = rng.expovariate(20.0)
    if status is None:  # no response
        total = 10.0 if kind == "read_timeout" else rng.uniform(0.001, 5.0)
        connect = None if kind in ("connect", "connect_timeout") else rng.uniform(0.001, 0.05)
        return (fetch_id, crawl_id, fid, run_id, worker, url, host, attempt, started, None,
                None, 0, None, kind, message, wait, connect, None, None, None, total)  # fmt: skip
    connect = rng.uniform(0.001, 0.05) if rng.random() < 0.3 else None  # else a reused one
    first = rng.lognormvariate(-3.0, 0.8)
    download = rng.lognormvariate(-5.0, 1.0)
    html = status in (200, 404, 403, 410)
    parse = rng.uniform(0.001, 0.02) if status == 200 else None
    size = int(rng.lognormvariate(10.0, 0.7)) if status == 200 else rng.randrange(200, 4000)
    total = (connect or 0.0) + first + download + (parse or 0.0)
    return (
        fetch_id, crawl_id, fid, run_id, worker, url, host, attempt, started, status,
        "text/html; charset=utf-8" if html else None, size if html else 0, location, kind,
        message, wait, connect, first, download, parse, total,
    )  # fmt: skip


def _page(
    out: dict[str, list[tuple]],
    ids: Ids,
    s: Shape,
    crawl_id: int,
    fid: int,
    fetch_id: int,
    i: int,
    url: str,
    rng: random.Random,
) -> None:
    """A page and its five links: its host's home page, three URLs of the crawl, and one more
    that is another site's one time in five (not followed)."""
    h = s.host[i]
    topic = RARE if rng.random() < 1e-5 else TOPICS[rng.randrange(len(TOPICS))]
    title = f"{topic} {i} | H{h} Example"
    digest = hashlib.sha256(url.encode()).hexdigest()
    page_id = ids.pages
    ids.pages += 1
    out["pages"].append((page_id, crawl_id, fid, fetch_id, url, title, url, "utf-8", 5, digest))
    n = s.n
    for position in range(5):
        rel, nofollow, followed = "", 0, 1
        if position == 0:
            target, anchor = url_of(h, h), "Home"
        elif position == 4 and rng.random() < 0.2:
            target, anchor, followed = f"https://ext{rng.randrange(50)}.example/", "Elsewhere", 0
        else:
            j = rng.randrange(n)
            target, anchor = url_of(s.host[j], j), f"Page {j}"
            if rng.random() < 0.02:
                rel, nofollow, followed = "nofollow", 1, 0
        out["links"].append((ids.links, page_id, position, target, anchor, rel, nofollow, followed))
        ids.links += 1


def small_rows(s: Shape, crawl_id: int, run_ids: list[int], t0: float, span: float) -> dict:
    """The hosts and robots rows, counted from the shape."""
    hosts = max(s.host) + 1
    counts = [[0] * 5 for _ in range(hosts)]
    for h, state in zip(s.host, s.state, strict=True):
        counts[h][state] += 1
    leased_per_host = [0] * hosts  # the leases are every 7th queued row, the first LEASED
    leased = 0
    for i, (h, state) in enumerate(zip(s.host, s.state, strict=True)):
        if state == QUEUED and leased < LEASED and i % 7 == 0:
            leased_per_host[h] += 1
            leased += 1
    end = t0 + span
    host_rows, robots_rows = [], []
    for h in range(hosts):
        c = counts[h]
        breaker = h % 25 == 3
        host_rows.append(
            {
                "crawl_id": crawl_id,
                "host": host_name(h),
                "next_fetch_at": end + 1.0,
                "failures": 5 if breaker else 0,
                "breaker_until": 0.0,
                "breaker_trips": 3 if breaker else 0,
                "urls_started": c[DONE] + c[FAILED] + c[RETRY] + leased_per_host[h],
                "queued": c[QUEUED] - leased_per_host[h],
                "in_flight": leased_per_host[h],
                "retrying": c[RETRY],
                "delay": 1.0,
                "cap": None,
                "leased_at": end - h,
            }
        )
        unavailable = h % 20 == 7
        robots_rows.append(
            {
                "crawl_id": crawl_id,
                "origin": f"http://{host_name(h)}",
                "verdict": "unavailable" if unavailable else ("rules" if h % 10 else "allow_all"),
                "body": "User-agent: *\nDisallow: /private/\n" if h % 10 else None,
                "status": 503 if unavailable else (200 if h % 10 else 404),
                "error": None,
                "attempts": 1,
                "fetched_at": t0 + h,
                "expires_at": end + 86400.0,
                "claimed_by": None,
                "claim_expires_at": None,
            }
        )
    return {"hosts": host_rows, "robots": robots_rows}


def generate(db_url: str, name: str, n: int, console: Console) -> None:
    """A crawl named `name` of `n` URLs in the (new) database at `db_url`."""
    rng = random.Random(20261201 + n)
    assert canonicalize(url_of(1, 5)) == url_of(1, 5) and host_of(url_of(3, 3)) == host_name(3)
    started = perf_counter()
    s = shape(n, rng)
    console.print(f"  shape of {n:,} URLs in {perf_counter() - started:.1f} s", highlight=False)
    engine = open_db(db_url)
    t0 = time.time() - 3 * 86400.0
    span = 2 * 86400.0
    try:
        crawl_id, run_ids = _crawl_and_runs(engine, name, n, t0, span, s)
        small = small_rows(s, crawl_id, run_ids, t0, span)
        with engine.begin() as conn:
            conn.execute(insert(Host.__table__), small["hosts"])
            conn.execute(insert(Robots.__table__), small["robots"])
        chunks = rows(s, crawl_id, run_ids, t0, span, rng)
        if engine.dialect.name == "sqlite":
            engine.dispose()  # the file is ours alone while it loads
            _load_sqlite(engine.url.database, chunks, console)
        else:
            _load_postgres(engine, chunks, console)
    finally:
        engine.dispose()


def _crawl_and_runs(
    engine: Engine, name: str, n: int, t0: float, span: float, s: Shape
) -> tuple[int, list[int]]:
    def at(seconds: float) -> datetime:
        return datetime.fromtimestamp(seconds, UTC)

    started_urls = sum(state in (DONE, FAILED, RETRY) for state in s.state) + LEASED
    with engine.begin() as conn:
        crawl_id = conn.execute(
            insert(Crawl.__table__).returning(Crawl.__table__.c.id),
            {
                "name": name,
                "seeds": [url_of(h, h) for h in range(min(HOSTS, n))],
                "settings": {"max_depth": 8, "max_pages_per_host": 5000, "max_attempts": 3},
                "state": "running",
                "urls_started": started_urls,
                "created_at": at(t0 - 60),
            },
        ).scalar_one()
        run_ids = []
        parts = (("threads", "finished", 0.0, 0.35), ("processes", "interrupted", 0.35, 0.7))
        parts += (("aio", "running", 0.7, 1.0),)
        for frontend, state, begin, end in parts:
            pages = int(n * 0.85 * (end - begin))
            wall = span * (end - begin)
            run_ids.append(
                conn.execute(
                    insert(Run.__table__).returning(Run.__table__.c.id),
                    {
                        "crawl_id": crawl_id,
                        "frontend": frontend,
                        "concurrency": 64,
                        "hostname": "bench-elsewhere" if state == "running" else "bench",
                        "pid": 4242,
                        "state": state,
                        "started_at": at(t0 + span * begin),
                        "finished_at": None if state == "running" else at(t0 + span * end),
                        "wall_s": None if state == "running" else wall,
                        "startup_s": 0.4,
                        "store_s": wall * 0.02,
                        "user_cpu_s": wall * 0.05,
                        "system_cpu_s": wall * 0.01,
                        "peak_rss_kb": 180_000,
                        "workers": 64,
                        "pages": pages,
                        "fetches": int(pages * 1.1),
                        "errors": int(pages * 0.06),
                    },
                ).scalar_one()
            )
    return crawl_id, run_ids


BULK_TABLES = ("frontier", "fetches", "pages", "links")


def _load_sqlite(path: str | None, chunks: Iterator[dict[str, list[tuple]]], console) -> None:
    """Bulk rows on a connection of our own with no journal and no syncing (a throwaway file),
    the big tables' indexes dropped first and made again, from their own SQL, at the end."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-400000")
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            f"AND tbl_name IN ({', '.join(repr(t) for t in BULK_TABLES)})"
        ).fetchall()
        for index, _ in indexes:
            conn.execute(f"DROP INDEX {index}")
        started = perf_counter()
        written = 0
        for chunk in chunks:
            conn.execute("BEGIN")
            for table, batch in chunk.items():
                if batch:
                    cols = TABLE_COLS[table]
                    marks = ", ".join("?" * len(cols.split(",")))
                    conn.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", batch)
            conn.execute("COMMIT")
            written += len(chunk["frontier"])
            if written % (CHUNK * 4) == 0:
                console.print(
                    f"  {written:,} URLs written, {perf_counter() - started:.0f} s", highlight=False
                )
        started = perf_counter()
        for _, sql in indexes:
            conn.execute(sql)
        console.print(f"  indexes made in {perf_counter() - started:.1f} s", highlight=False)
        problems = conn.execute("PRAGMA foreign_key_check").fetchmany(5)
        if problems:
            raise RuntimeError(f"generated rows break foreign keys: {problems}")
        conn.execute("PRAGMA journal_mode=WAL")  # as our engine leaves a database
    finally:
        conn.close()


def _load_postgres(engine: Engine, chunks: Iterator[dict[str, list[tuple]]], console) -> None:
    """Bulk rows with COPY, the big tables' indexes dropped first and made again at the end,
    then VACUUM ANALYZE (autovacuum would, on a real database, soon after)."""
    raw = engine.raw_connection()
    try:
        pg = raw.driver_connection
        with pg.cursor() as cur:
            cur.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                "AND tablename = ANY(%s) AND indexname NOT IN (SELECT conname FROM "
                "pg_constraint)",
                (list(BULK_TABLES),),
            )
            indexes = cur.fetchall()
            for index, _ in indexes:
                cur.execute(f'DROP INDEX "{index}"')
        pg.commit()
        started = perf_counter()
        written = 0
        for chunk in chunks:
            with pg.cursor() as cur:
                for table, batch in chunk.items():
                    if not batch:
                        continue
                    with cur.copy(f"COPY {table} ({TABLE_COLS[table]}) FROM STDIN") as copy:
                        for row in batch:
                            copy.write_row(
                                tuple(bool(v) if table == "links" and k >= 6 else v
                                      for k, v in enumerate(row))
                            )  # fmt: skip
            pg.commit()
            written += len(chunk["frontier"])
            if written % (CHUNK * 4) == 0:
                console.print(
                    f"  {written:,} URLs written, {perf_counter() - started:.0f} s", highlight=False
                )
        started = perf_counter()
        with pg.cursor() as cur:
            for _, sql in indexes:
                cur.execute(sql)
            for table in BULK_TABLES:
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
        pg.commit()
        pg.autocommit = True
        with pg.cursor() as cur:
            cur.execute("VACUUM ANALYZE")
        console.print(f"  indexes made in {perf_counter() - started:.1f} s", highlight=False)
    finally:
        raw.close()


def sqlite_database(n: int, console: Console) -> tuple[str, str]:
    """The database URL and crawl name for `n` URLs: the file in .bench/, made if missing."""
    name = f"bench-{n}"
    path = DATA / f"query-v{VERSION}-{n}.db"
    if path.exists():
        console.print(
            f"{path}: reused ({path.stat().st_size / 2**20:,.0f} MiB, {n:,} URLs); delete it to "
            "generate it again",
            highlight=False,
        )
        return f"sqlite:///{path}", name
    DATA.mkdir(exist_ok=True)
    partial = path.with_name(f"partial-{path.name}")
    for leftover in DATA.glob(f"{partial.name}*"):
        leftover.unlink()
    console.print(f"{path}: generating a crawl of {n:,} URLs", highlight=False)
    started = perf_counter()
    generate(f"sqlite:///{partial}", name, n, console)
    seconds = perf_counter() - started
    for suffix in ("-wal", "-shm"):
        Path(f"{partial}{suffix}").unlink(missing_ok=True)
    partial.replace(path)
    console.print(
        f"{path}: generated in {seconds:.1f} s, {path.stat().st_size / 2**20:,.0f} MiB",
        highlight=False,
    )
    return f"sqlite:///{path}", name


def postgres_database(url: str, n: int, console: Console) -> tuple[str, str]:
    """The crawl of `n` URLs in the PostgreSQL database at `url`, made there if missing (the
    database must then hold no other crawl: ids are given)."""
    name = f"bench-{n}"
    engine = open_db(url)
    try:
        with engine.connect() as conn:
            found = conn.execute(text("SELECT id FROM crawls WHERE name = :n"), {"n": name}).first()
            others = conn.execute(text("SELECT count(*) FROM frontier")).scalar_one()
    finally:
        engine.dispose()
    if found is not None:
        console.print(f"postgresql: crawl {name} reused", highlight=False)
        return url, name
    if others:
        raise SystemExit(f"--pg: the database holds other crawls; give an empty one for {name}")
    console.print(f"postgresql: generating a crawl of {n:,} URLs", highlight=False)
    started = perf_counter()
    generate(url, name, n, console)
    engine = open_db(url)
    try:
        with engine.connect() as conn:
            size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
    finally:
        engine.dispose()
    console.print(
        f"postgresql: generated in {perf_counter() - started:.1f} s, {size / 2**20:,.0f} MiB",
        highlight=False,
    )
    return url, name


# Questions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Picks:
    """The URLs and host the questions ask about, read from the database."""

    big_host: str
    home: str
    page: str
    redirected: str
    title_word: str = TOPICS[0].lower()


def picks(db: str, name: str) -> Picks:
    engine = open_db_read_only(db)
    try:
        with engine.connect() as conn:
            crawl_id = conn.execute(
                text("SELECT id FROM crawls WHERE name = :n"), {"n": name}
            ).scalar_one()
            big_host = conn.execute(
                text(
                    "SELECT host FROM hosts WHERE crawl_id = :c "
                    "ORDER BY urls_started + queued DESC LIMIT 1"
                ),
                {"c": crawl_id},
            ).scalar_one()
            pages = conn.execute(
                text("SELECT max(id) FROM pages WHERE crawl_id = :c"), {"c": crawl_id}
            ).scalar_one()
            page = conn.execute(
                text("SELECT url FROM pages WHERE crawl_id = :c AND id >= :i ORDER BY id LIMIT 1"),
                {"c": crawl_id, "i": pages // 2},
            ).scalar_one()
            redirected = conn.execute(
                text(
                    "SELECT url FROM fetches WHERE crawl_id = :c AND status = 301 "
                    "ORDER BY id LIMIT 1"
                ),
                {"c": crawl_id},
            ).scalar_one()
    finally:
        engine.dispose()
    return Picks(big_host, url_of(0, 0), page, redirected)


def questions(db: str, name: str, p: Picks) -> list[tuple[str, Callable[[], Any]]]:
    """(label, call) of each question, as `crawler <command>` asks it."""
    asked: list[tuple[str, Callable[[], Any]]] = [
        ("crawls", lambda: crawler.crawls(db)),
        ("status", lambda: crawler.status(name, db=db)),
        ("pages", lambda: crawler.pages(name, db=db)),
        ("pages --status 404", lambda: crawler.pages(name, db=db, status=404)),
        ("pages --error read_timeout", lambda: crawler.pages(name, db=db, error="read_timeout")),
        ("pages --host HOST (the largest)", lambda: crawler.pages(name, db=db, host=p.big_host)),
        ("pages --depth 3", lambda: crawler.pages(name, db=db, depth=3)),
        ("pages --state skipped", lambda: crawler.pages(name, db=db, state="skipped")),
        (
            f"pages --title-contains {p.title_word} (2.5%)",
            lambda: crawler.pages(name, db=db, title_contains=p.title_word),
        ),
        (
            f"pages --title-contains {RARE.lower()} (1e-5)",
            lambda: crawler.pages(name, db=db, title_contains=RARE.lower()),
        ),
        ("links --to HOME (a host's home page)", lambda: crawler.links(name, db=db, to=p.home)),
        ("links --to PAGE", lambda: crawler.links(name, db=db, to=p.page)),
        ("links --from PAGE", lambda: crawler.links(name, db=db, from_=p.page)),
        ("links --broken", lambda: crawler.links(name, db=db, broken=True)),
        ("errors", lambda: crawler.error_counts(name, db=db)),
        ("hosts", lambda: crawler.hosts(name, db=db)),
        ("show PAGE", lambda: crawler.show(name, p.page, db=db)),
        ("show HOME", lambda: crawler.show(name, p.home, db=db)),
        ("show REDIRECTED (a 301)", lambda: crawler.show(name, p.redirected, db=db)),
    ]  # fmt: skip
    try:
        from crawler.query.sql import sql
    except ImportError:
        return asked
    asked.append(
        ('sql "SELECT count(*) FROM pages"', lambda: sql("SELECT count(*) FROM pages", db=db))
    )
    return asked


def size_of(answer: Any) -> str:
    """What an answer holds, in a few words: that the question found something."""
    if isinstance(answer, list):
        return f"{len(answer)} rows"
    if isinstance(answer, tuple):  # sql(): (columns, rows)
        return f"{answer[1][:1]}"
    if hasattr(answer, "by_host"):
        return f"{len(answer.by_host)} hosts, {len(answer.errors)} error kinds"
    if hasattr(answer, "attempts"):
        return f"{len(answer.attempts)} attempts, {answer.links_in_total} links in"
    return type(answer).__name__


@dataclass
class Statement:
    sql: str
    params: Any
    seconds: float


@contextmanager
def statements() -> Iterator[list[Statement]]:
    """Every statement any engine runs meanwhile (its time: to its first row)."""
    seen: list[Statement] = []

    def before(conn, cursor, statement, parameters, context, executemany) -> None:
        conn.info.setdefault("bench_started", []).append(perf_counter())

    def after(conn, cursor, statement, parameters, context, executemany) -> None:
        started = conn.info["bench_started"].pop()
        seen.append(Statement(statement, parameters, perf_counter() - started))

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", before)
        event.remove(Engine, "after_cursor_execute", after)


def plan(db: str, statement: Statement) -> list[str]:
    """The query plan of one statement, as lines."""
    engine = open_db_read_only(db)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                found = conn.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + statement.sql, statement.params
                ).all()
                depth = {0: -1}
                lines = []
                for node, parent, _, detail in found:
                    depth[node] = depth.get(parent, -1) + 1
                    lines.append("  " * depth[node] + detail)
                return lines
            found = conn.exec_driver_sql(
                "EXPLAIN (ANALYZE, BUFFERS) " + statement.sql, statement.params
            ).all()
            return [row[0] for row in found]
    finally:
        engine.dispose()


def time_questions(
    db: str, name: str, p: Picks, repeat: int, console: Console
) -> list[dict[str, Any]]:
    results = []
    for label, ask in questions(db, name, p):
        seconds = []
        answer = None
        for _ in range(repeat):
            started = perf_counter()
            answer = ask()
            seconds.append(perf_counter() - started)
        median_ms = statistics.median(seconds) * 1000
        row = {
            "question": label,
            "median_ms": round(median_ms, 1),
            "max_ms": round(max(seconds) * 1000, 1),
            "answer": size_of(answer),
            "slow": median_ms > SLOW_MS,
        }
        results.append(row)
        console.print(json.dumps(row), highlight=False)
    return results


def rerun(db: str, seen: list[Statement]) -> list[Statement]:
    """The statements run again one by one, each timed to its last row (a question may read a
    statement's rows as it goes, so the time to its first row tells little)."""
    engine = open_db_read_only(db)
    timed = []
    try:
        with engine.connect() as conn:
            for statement in seen:
                if not statement.sql.lstrip().upper().startswith(("SELECT", "WITH")):
                    continue  # BEGIN, a pragma
                started = perf_counter()
                conn.exec_driver_sql(statement.sql, statement.params).all()
                timed.append(Statement(statement.sql, statement.params, perf_counter() - started))
    finally:
        engine.dispose()
    return timed


def explain_slow(db: str, name: str, p: Picks, slow: list[str], console: Console) -> dict:
    """Each slow question asked once more to see its statements; each statement run again and
    timed, grouped by SQL text (a statement run for each of 200 hosts is one group); the
    costliest groups (over 20 ms in all) with the plan of their slowest run."""
    plans: dict[str, list[dict[str, Any]]] = {}
    for label, ask in questions(db, name, p):
        if label not in slow:
            continue
        with statements() as seen:
            ask()
        timed = rerun(db, seen)
        groups: dict[str, list[Statement]] = {}
        for statement in timed:
            groups.setdefault(statement.sql, []).append(statement)
        ranked = sorted(groups.values(), key=lambda runs: -sum(s.seconds for s in runs))
        console.print(
            f"\n[bold]SLOW: {label}[/bold]: {len(timed)} statements ({len(groups)} different), "
            f"{sum(s.seconds for s in timed) * 1000:,.0f} ms in them run alone; the costliest:",
            highlight=False,
        )
        plans[label] = []
        for runs in ranked[:4]:
            spent = sum(s.seconds for s in runs)
            if spent < 0.02:
                break
            slowest = max(runs, key=lambda s: s.seconds)
            lines = plan(db, slowest)
            one_line = " ".join(slowest.sql.split())
            console.print(
                f"  {spent * 1000:,.0f} ms in {len(runs)} run(s), the slowest "
                f"{slowest.seconds * 1000:,.0f} ms with params={slowest.params!r}\n"
                f"  {one_line}\n" + "\n".join(f"    {line}" for line in lines),
                highlight=False,
                markup=False,
            )
            plans[label].append(
                {
                    "ms": round(spent * 1000, 1),
                    "runs": len(runs),
                    "slowest_ms": round(slowest.seconds * 1000, 1),
                    "sql": one_line,
                    "params": repr(slowest.params),
                    "plan": lines,
                }
            )
    return plans


# The child's peak RSS, measured by a small parent of its own: a child forked (or vforked)
# from this process would count this process's own peak as its own (Linux keeps the high-water
# mark across exec), and this one holds a generated crawl's shape.
MEASURE = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss; "
    "print(f'bench-peak-rss-kb={peak}', file=sys.stderr); sys.exit(code)"
)


def export(db: str, name: str, table: str, folder: Path) -> dict[str, Any]:
    """`crawler export` in a child process: wall time, records and the child's peak RSS."""
    out = folder / f"{table}.jsonl"
    command = [sys.executable, "-m", "crawler", "export", name, "--db", db, "--table", table]
    command += ["-o", str(out)]
    started = perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, check=False
    )
    seconds = perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}")
    written = re.search(r"(\d+) records written", done.stderr)
    peak = re.search(r"bench-peak-rss-kb=(\d+)", done.stderr)
    records = int(written.group(1)) if written else 0
    size = out.stat().st_size
    out.unlink()
    return {
        "table": table,
        "records": records,
        "wall_s": round(seconds, 2),
        "records_per_s": round(records / seconds),
        "peak_rss_mib": round(int(peak.group(1)) / 1024, 1) if peak else None,
        "file_mib": round(size / 2**20, 1),
    }


# Main ------------------------------------------------------------------------------------


def load() -> str:
    """The machine's load average over 1, 5 and 15 minutes: others' work skews the figures."""
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crawler.bench_query", description=__doc__)
    parser.add_argument("--urls", type=int, default=1_000_000, help="URLs in the crawl")
    parser.add_argument("--quick", action="store_true", help="100,000 URLs, for a first look")
    parser.add_argument("--repeat", type=int, default=5, help="times each question is asked")
    parser.add_argument(
        "--pg",
        metavar="URL",
        help="also on this PostgreSQL database (empty, or holding this benchmark's crawl), or "
        "'private' for a throwaway cluster",
    )
    args = parser.parse_args(argv)
    n = 100_000 if args.quick else args.urls
    if n < 1000 or args.repeat < 3:
        parser.error("give --urls 1000 or more and --repeat 3 or more")
    with postgres(args.pg) as pg:
        return run(n, args.repeat, pg)


@contextmanager
def postgres(pg: str | None) -> Iterator[str | None]:
    """The --pg database: None, the URL given, or a throwaway cluster's."""
    if pg != "private":
        yield pg
        return
    from fixtures.postgres import Cluster

    cluster = Cluster()
    cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


def run(n: int, repeat: int, pg: str | None) -> int:
    """Generate (or reuse) the databases, ask the questions, run the exports, print it all."""
    console = Console(width=120)
    console.print(
        f"crawler.bench_query: {n:,} URLs, each question asked {repeat} times, on "
        f"{socket.gethostname()} ({os.cpu_count()} CPUs), {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"load average {load()}",
        highlight=False,
    )
    targets = [("sqlite", *sqlite_database(n, console))]
    if pg:
        targets.append(("postgresql", *postgres_database(pg, n, console)))
    report: dict[str, Any] = {"urls": n, "repeat": repeat}
    for kind, db, name in targets:
        p = picks(db, name)
        console.print(
            f"\n[bold]{kind}: the questions[/bold] (load average {load()}); HOST "
            f"{p.big_host}, HOME {p.home}, PAGE {p.page}, REDIRECTED {p.redirected}",
            highlight=False,
        )
        timed = time_questions(db, name, p, repeat, console)
        slow = [row["question"] for row in timed if row["slow"]]
        plans = explain_slow(db, name, p, slow, console) if slow else {}
        table = Table(title=f"{kind}: read-side questions on {n:,} URLs (ms, {repeat} times each)")
        for column in ("question", "median", "max", "answer", ""):
            table.add_column(
                column, justify="left" if column in ("question", "answer") else "right"
            )
        for row in timed:
            table.add_row(
                row["question"],
                f"{row['median_ms']:,.1f}",
                f"{row['max_ms']:,.1f}",
                row["answer"],
                "SLOW" if row["slow"] else "",
            )
        console.print(table)
        report[kind] = {"questions": timed, "plans": plans}
    console.print(
        f"\n[bold]exports[/bold] (`crawler export NAME -o FILE`, a child process each; load "
        f"average {load()})",
        highlight=False,
    )
    small = max(1000, n // 10)
    sizes = [("sqlite", *sqlite_database(small, console), small), ("sqlite", *targets[0][1:], n)]
    if pg:
        sizes.append(("postgresql", *targets[1][1:], n))
    exports = []
    with tempfile.TemporaryDirectory(prefix="crawler-bench-query-") as scratch:
        for kind, db, name, urls in sizes:
            for table in ("runs", "urls", "links"):
                row = {"db": kind, "urls": urls, **export(db, name, table, Path(scratch))}
                exports.append(row)
                console.print(json.dumps(row), highlight=False)
    table = Table(title="crawler export: wall time and the child's peak RSS")
    for column in ("db", "crawl URLs", "table", "records", "wall s", "records/s", "peak RSS MiB"):
        table.add_column(column, justify="left" if column in ("db", "table") else "right")
    for row in exports:
        table.add_row(
            row["db"],
            f"{row['urls']:,}",
            row["table"],
            f"{row['records']:,}",
            f"{row['wall_s']:.1f}",
            f"{row['records_per_s']:,}",
            f"{row['peak_rss_mib']:.0f}",
        )
    console.print(table)
    for kind in {row["db"] for row in exports}:
        by_size = {
            (row["urls"], row["table"]): row["peak_rss_mib"] for row in exports if row["db"] == kind
        }
        if (small, "urls") in by_size and (n, "urls") in by_size:
            console.print(
                f"{kind}: export peak RSS, {small:,} → {n:,} URLs: urls "
                f"{by_size[small, 'urls']:.0f} → {by_size[n, 'urls']:.0f} MiB, links "
                f"{by_size[small, 'links']:.0f} → {by_size[n, 'links']:.0f} MiB "
                f"(runs, 3 records: {by_size[n, 'runs']:.0f} MiB)",
                highlight=False,
            )
    report["exports"] = exports
    console.print(f"load average at the end: {load()}", highlight=False)
    OUT.mkdir(exist_ok=True)
    (OUT / "query.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
