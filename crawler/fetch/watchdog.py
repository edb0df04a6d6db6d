"""Enforcing the total deadline of a blocking exchange from outside it.

requests only bounds each read, so a server that sends a byte every few seconds (in the
headers or in the body) could keep a fetch alive forever. One watchdog thread per process
holds the deadline of every exchange in flight and shuts down the sockets of those past it;
the blocked read then fails at once. Ctrl-C uses the same lever to abandon what is in flight.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time


class Ticket:
    """One exchange under watch: its deadline and the sockets it has used."""

    __slots__ = ("deadline", "expired", "sockets")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.sockets: list[socket.socket] = []
        self.expired = False


class Watchdog:
    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._heap: list[tuple[float, int, Ticket]] = []
        self._live: set[Ticket] = set()
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, seconds: float) -> Ticket:
        ticket = Ticket(time.monotonic() + seconds)
        with self._wake:
            self._live.add(ticket)
            heapq.heappush(self._heap, (ticket.deadline, next(self._order), ticket))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is ticket:
                self._wake.notify()  # only a new earliest deadline changes the watchdog's sleep
        return ticket

    def add_socket(self, ticket: Ticket, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._wake:
            if ticket.expired:
                _shut(sock)
            elif sock not in ticket.sockets:
                ticket.sockets.append(sock)

    def done(self, ticket: Ticket) -> None:
        with self._wake:
            self._live.discard(ticket)
            ticket.sockets.clear()

    def abort_all(self) -> int:
        """Shut down every socket in flight (a stop was asked for); returns how many."""
        with self._wake:
            tickets = list(self._live)
            for ticket in tickets:
                self._expire(ticket)
        return len(tickets)

    def _expire(self, ticket: Ticket) -> None:
        ticket.expired = True
        for sock in ticket.sockets:
            _shut(sock)

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._heap and self._heap[0][2] not in self._live:
                    heapq.heappop(self._heap)  # finished in time
                if not self._heap:
                    self._wake.wait()
                    continue
                deadline, _, ticket = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._wake.wait(delay)
                    continue
                heapq.heappop(self._heap)
                self._expire(ticket)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


WATCHDOG = Watchdog()
