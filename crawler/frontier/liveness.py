"""Which runs of a crawl are alive: each beats its heartbeat into its `runs` row on the
database's clock, and a run whose heartbeat is older than the crawl's worker timeout is
declared dead by the others, its leases and robots.txt claims given back at once (not only
when they lapse).

A run judges the others only while its own beats are getting through: after a database
restart every heartbeat is old, and the first run back must not take the work of runs that
simply have not beaten yet. A run that finds itself declared dead (it was paused, or cut
off, past the timeout) has lost its leases; it stops.
"""

from __future__ import annotations

from sqlalchemy import Connection, and_, select, update

from crawler.errors import DeclaredDead
from crawler.frontier.recovery import release_runs
from crawler.store.tables import runs_t

RUNNING, DEAD = "running", "dead"


def beat(conn: Connection, run_id: int, now: float) -> None:
    """This run is alive at `now`; raises DeclaredDead if the others have buried it."""
    r = runs_t.c
    alive = conn.execute(
        update(runs_t)
        .where(r.id == run_id, r.state == RUNNING)
        .values(heartbeat_at=now)
        .returning(r.id)
    ).first()
    if alive is None:
        raise DeclaredDead(f"run {run_id} was declared dead by the other workers")


def bury_silent(
    conn: Connection, crawl_id: int, run_id: int, now: float, timeout: float
) -> list[int]:
    """Declare dead the crawl's runs whose heartbeat is older than `timeout`, and give their
    leases back (their attempts count: the URL may be what stopped them). Two runs burying
    the same one at once: the row's update lets one of them do it."""
    r = runs_t.c
    silent = and_(
        r.crawl_id == crawl_id,
        r.state == RUNNING,
        r.heartbeat_at < now - timeout,
        r.id != run_id,
    )
    if conn.execute(select(r.id).where(silent).limit(1)).first() is None:
        return []  # the usual case: only a read
    buried = [
        row.id
        for row in conn.execute(
            update(runs_t).where(silent).values(state=DEAD).returning(r.id)
        ).all()
    ]
    release_runs(conn, crawl_id, buried, refund=False)
    return buried
