"""The tables the frontier writes, and the host rows every frontier transaction keeps in step.

A URL waiting to be fetched is a row of `ready` (a narrow copy, in the order leases take
them) or of `leases` (in flight); its `frontier` row is written when it is found and when its
outcome is known. The hosts' counts are those of `ready` (queued), `leases` (in flight) and
the frontier's retry state (retrying).

Lock order, which keeps two runs on PostgreSQL from deadlocking: a transaction that changes a
host's URLs first locks that host's row (hosts in name order), and only then touches its
frontier rows. A lease claims hosts with SKIP LOCKED, so it never waits for one. Storing is
the one exception: it deletes its own leases (the fence) and writes its fetches, pages and
links before it locks the hosts, so that the rows every worker's lease wants are held only
for the counts. Only a transaction that takes back the very lease being stored (it lapsed,
or its run was declared dead: reclaim_lapsed, release_runs) can then deadlock with it;
PostgreSQL ends one of the two, and that one is tried again.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import (
    Connection,
    Table,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from crawler.store.tables import (
    crawls_t,
    fetches_t,
    frontier_t,
    hosts_t,
    leases_t,
    links_t,
    pages_t,
    ready_t,
    robots_t,
)

__all__ = [
    "crawls_t",
    "fetches_t",
    "frontier_t",
    "hosts_t",
    "leases_t",
    "links_t",
    "pages_t",
    "ready_t",
    "robots_t",
]


def in_state(state: str) -> ColumnElement[bool]:
    """`frontier.state = 'x'` written as a literal, so the partial indexes (which hold the rows
    of one state) apply to the query."""
    return frontier_t.c.state == literal_column(f"'{state}'")


@functools.cache
def _insert_sql(dialect: str, table: str, columns: tuple[str, ...]) -> str:
    marker = "?" if dialect == "sqlite" else "%s"
    names = ", ".join(columns)
    return f"INSERT INTO {table} ({names}) VALUES ({', '.join([marker] * len(columns))})"


def insert_rows(conn: Connection, table: Table, rows: list[dict]) -> None:
    """INSERT many rows (dicts with the same keys) through the driver's executemany: for the
    thousands of link rows of a batch, SQLAlchemy's handling of each row's parameters costs
    more than the database's insert."""
    if rows:
        columns = tuple(rows[0])
        sql = _insert_sql(conn.dialect.name, table.name, columns)
        conn.exec_driver_sql(sql, [tuple(row[c] for c in columns) for row in rows])


def insert_with_ids(conn: Connection, table: Table, rows: list[dict]) -> list[int]:
    """Insert rows and return their ids, in the rows' order. PostgreSQL says so with RETURNING
    in one statement; SQLite would need a statement per row for the order, but its writer
    holds the whole database, so the rows simply get the ids after the largest one (checked)."""
    if not rows:
        return []
    if conn.dialect.name != "sqlite":
        returning = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return list(conn.execute(returning, rows).scalars())
    first = (conn.execute(select(func.max(table.c.id))).scalar() or 0) + 1
    insert_rows(conn, table, rows)
    last = conn.execute(select(func.max(table.c.id))).scalar()
    if last != first + len(rows) - 1:
        raise RuntimeError(f"{table.name}: rows got ids {first}..{last}, not {len(rows)} in a row")
    return list(range(first, last + 1))


def ready_row(crawl_id: int, frontier_id: int, row) -> dict:
    """A `ready` row for a URL: `row` has its host, depth, url_key, url, attempts and
    redirect_hops."""
    return {
        "crawl_id": crawl_id,
        "host": row.host,
        "depth": row.depth,
        "url_key": row.url_key,
        "frontier_id": frontier_id,
        "url": row.url,
        "attempts": row.attempts,
        "redirect_hops": row.redirect_hops,
    }


_unready = ready_t.delete().where(
    ready_t.c.crawl_id == bindparam("b_crawl"),
    ready_t.c.host == bindparam("b_host"),
    ready_t.c.depth == bindparam("b_depth"),
    ready_t.c.url_key == bindparam("b_key"),
)


def unready(conn: Connection, crawl_id: int, rows: list) -> None:
    """Take URLs out of `ready` (rows with host, depth and url_key), each by its whole key:
    a seek per URL (SQLite does not seek on a list of row values past the first column)."""
    if rows:
        conn.execute(
            _unready,
            [
                {"b_crawl": crawl_id, "b_host": r.host, "b_depth": r.depth, "b_key": r.url_key}
                for r in rows
            ],
        )


def dialect_insert(conn: Connection):
    """INSERT with ON CONFLICT, in the connection's dialect."""
    return sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert


def ensure_hosts(conn: Connection, crawl_id: int, hosts: Iterable[str]) -> None:
    """Create the hosts' rows if they are new (in name order, like every lock)."""
    names = sorted(set(hosts))
    if not names:
        return
    conn.execute(
        dialect_insert(conn)(hosts_t).on_conflict_do_nothing(index_elements=["crawl_id", "host"]),
        [
            {
                "crawl_id": crawl_id,
                "host": host,
                "next_fetch_at": 0.0,
                "failures": 0,
                "breaker_until": 0.0,
                "breaker_trips": 0,
                "urls_started": 0,
            }
            for host in names
        ],
    )


def lock_hosts(conn: Connection, crawl_id: int, hosts: Iterable[str]) -> dict[str, object]:
    """The hosts' rows, locked until the transaction ends (on PostgreSQL; SQLite's writers
    take turns anyway), so no other run changes their URLs meanwhile."""
    names = sorted(set(hosts))
    if not names:
        return {}
    query = (
        select(hosts_t)
        .where(hosts_t.c.crawl_id == crawl_id, hosts_t.c.host.in_(names))
        .order_by(hosts_t.c.host)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return {row.host: row for row in conn.execute(query)}


@dataclass(slots=True)
class HostCounts:
    """Changes to a host's counts of URLs by state, and of URLs started."""

    queued: int = 0
    in_flight: int = 0
    retrying: int = 0
    started: int = 0

    def __bool__(self) -> bool:
        return bool(self.queued or self.in_flight or self.retrying or self.started)


_bump = (
    update(hosts_t)
    .where(hosts_t.c.crawl_id == bindparam("b_crawl"), hosts_t.c.host == bindparam("b_host"))
    .values(
        queued=hosts_t.c.queued + bindparam("b_queued"),
        in_flight=hosts_t.c.in_flight + bindparam("b_in_flight"),
        retrying=hosts_t.c.retrying + bindparam("b_retrying"),
        urls_started=hosts_t.c.urls_started + bindparam("b_started"),
    )
)


def bump_counts(conn: Connection, crawl_id: int, changes: dict[str, HostCounts]) -> None:
    """Apply count changes to host rows the transaction has locked (or created)."""
    rows = [
        {
            "b_crawl": crawl_id,
            "b_host": host,
            "b_queued": change.queued,
            "b_in_flight": change.in_flight,
            "b_retrying": change.retrying,
            "b_started": change.started,
        }
        for host, change in sorted(changes.items())
        if change
    ]
    if rows:
        conn.execute(_bump, rows)
