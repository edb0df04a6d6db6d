"""Which runs of a crawl are alive: each beats its heartbeat into its `runs` row on the
database's clock, and a run whose heartbeat is older than the crawl's worker timeout is
declared dead by the others, its leases and robots.txt claims given back at once (not only
when they lapse). When a run beats and judges is the policy's (policy.liveness); this is the
SQL. A run that finds itself declared dead (it was paused, or cut off, past the timeout) has
lost its leases; it stops.
"""

from __future__ import annotations

from sqlalchemy import Connection, and_, func, select, text, update

from crawler.errors import DeclaredDead
from crawler.frontier.recovery import release_runs
from crawler.store.engine import WRITER_NAME
from crawler.store.tables import leases_t, runs_t

RUNNING, DEAD = "running", "dead"


def beat(conn: Connection, run_id: int, now: float) -> None:
    """This run is alive at `now`; raises DeclaredDead if the others have buried it. Its own
    short transaction: a beat that waited behind locks would be old when it commits."""
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
    """Declare dead the crawl's runs whose heartbeat is older than `timeout`, and give back
    their leases, and any a run that is no longer running still holds (it leased after it
    was buried). Attempts count: the URL may be what stopped them. Two runs burying the same
    one at once: the row's update lets one of them do it."""
    if conn.dialect.name == "postgresql":
        started = conn.execute(select(func.extract("epoch", func.pg_postmaster_start_time())))
        if now - float(started.scalar_one()) < timeout:
            return []  # restarted lately: the others may not have reached it again yet
    r, lease_c = runs_t.c, leases_t.c
    silent = and_(
        r.crawl_id == crawl_id,
        r.state == RUNNING,
        r.heartbeat_at < now - timeout,
        r.id != run_id,
    )
    buried = []
    if conn.execute(select(r.id).where(silent).limit(1)).first() is not None:
        buried = [
            row.id
            for row in conn.execute(
                update(runs_t).where(silent).values(state=DEAD).returning(r.id)
            ).all()
        ]
    if buried and conn.dialect.name == "postgresql":
        _end_stalled_sessions(conn, timeout)
    ended_holders = conn.execute(
        select(lease_c.run_id)
        .distinct()
        .join(runs_t, r.id == lease_c.run_id)
        .where(lease_c.crawl_id == crawl_id, r.state != RUNNING)
    ).scalars()
    release_runs(conn, crawl_id, sorted({*buried, *ended_holders}), refund=False)
    return buried


def _end_stalled_sessions(conn: Connection, timeout: float) -> None:
    """End the crawler's sessions whose transaction has been open for longer than the worker
    timeout (ours last milliseconds): a run stopped while a statement was on its way is not
    idle to the server, and would hold its hosts' locks until it woke. Only our own role's."""
    conn.execute(
        text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND usename = current_user"
            " AND application_name = :name AND pid <> pg_backend_pid()"
            " AND xact_start < now() - make_interval(secs => :timeout)"
        ),
        {"name": WRITER_NAME, "timeout": timeout},
    )
