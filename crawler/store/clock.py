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


KEEP_S = 10.0  # an offset measured over a quick round trip is kept this long


class DatabaseClock:
    def __init__(self) -> None:
        self.offset = 0.0  # database minus this machine, in seconds
        self._round_trip = float("inf")  # of the reading the offset came from
        self._measured = 0.0

    def read(self, conn: Connection) -> float:
        """The database's time, in the transaction on `conn` (epoch seconds)."""
        if conn.dialect.name != "postgresql":
            return time.time()
        asked = time.time()
        database_now, instant = conn.execute(_NOW).one()
        answered = time.time()
        # Off by at most half the round trip, which a busy machine (a wait for the GIL)
        # stretches: the quickest recent reading is kept, not the last.
        round_trip = answered - asked
        if round_trip <= self._round_trip or answered - self._measured > KEEP_S:
            self.offset = float(instant) - (asked + answered) / 2
            self._round_trip, self._measured = round_trip, answered
        return float(database_now)

    def now(self) -> float:
        """The database's time now, from this machine's and the last offset read."""
        return time.time() + self.offset

    def from_local(self, local_time: float) -> float:
        """A time this machine took (time.time()), on the database's clock."""
        return local_time + self.offset

    def to_local(self, database_time: float) -> float:
        """A time on the database's clock, on this machine's (for a duration measured here)."""
        return database_time - self.offset
