"""The tables the frontier writes, and the host rows every frontier transaction keeps in step.

Lock order, which keeps two runs on PostgreSQL from deadlocking: a transaction that changes a
host's URLs first locks that host's row (hosts in name order), and only then touches its
frontier rows. A lease claims hosts with SKIP LOCKED, so it never waits for one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, Table, bindparam, func, insert, literal_column, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from crawler.store.models import Crawl, Fetch, FrontierEntry, Host, Lease, Page, PageLink, Robots

frontier_t = FrontierEntry.__table__
hosts_t = Host.__table__
leases_t = Lease.__table__
crawls_t = Crawl.__table__
fetches_t = Fetch.__table__
pages_t = Page.__table__
links_t = PageLink.__table__
robots_t = Robots.__table__


def in_state(state: str) -> ColumnElement[bool]:
    """`frontier.state = 'x'` written as a literal, so the partial indexes (which hold the rows
    of one state) apply to the query."""
    return frontier_t.c.state == literal_column(f"'{state}'")


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
    conn.execute(insert(table), rows)
    last = conn.execute(select(func.max(table.c.id))).scalar()
    if last != first + len(rows) - 1:
        raise RuntimeError(f"{table.name}: rows got ids {first}..{last}, not {len(rows)} in a row")
    return list(range(first, last + 1))


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
