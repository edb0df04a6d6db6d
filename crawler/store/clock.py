"""The one clock every worker of a crawl agrees on: the database's.

Lease expiries, a host's next allowed request, retry times and heartbeats are all compared
across machines, whose own clocks may disagree by minutes; so each frontier transaction reads
the time from the database (`now()` on PostgreSQL) and decides with that. Between
transactions a run needs the time too (when a result arrived, for politeness), so the clock
keeps the offset between the database and this machine, as of the last reading. SQLite is
one machine: its clock is the database's.
"""

from __future__ import annotations

import time

from sqlalchemy import Connection, func, select

# now(): the transaction's start, the same for all of it; clock_timestamp(): this instant,
# for the offset from this machine's clock.
_NOW = select(func.extract("epoch", func.now()), func.extract("epoch", func.clock_timestamp()))


class DatabaseClock:
    def __init__(self) -> None:
        self.offset = 0.0  # database minus this machine, in seconds

    def read(self, conn: Connection) -> float:
        """The database's time, in the transaction on `conn` (epoch seconds)."""
        if conn.dialect.name != "postgresql":
            return time.time()
        asked = time.time()
        database_now, instant = conn.execute(_NOW).one()
        self.offset = float(instant) - (asked + time.time()) / 2  # off by half a round trip
        return float(database_now)

    def now(self) -> float:
        """The database's time now, from this machine's and the last offset read."""
        return time.time() + self.offset

    def from_local(self, local_time: float) -> float:
        """A time this machine took (time.time()), on the database's clock."""
        return local_time + self.offset
