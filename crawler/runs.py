"""What a run costs (wall, CPU, memory, context switches) and whether a run's process lives.

Costs come from getrusage, children included, so the processes frontend is charged for its
pool. Liveness is only decided for runs on this host: a pid elsewhere proves nothing.
"""

from __future__ import annotations

import os
import resource
import socket
from dataclasses import dataclass
from datetime import datetime
from time import perf_counter


@dataclass(frozen=True, slots=True)
class RunCost:
    wall_s: float
    user_cpu_s: float
    system_cpu_s: float
    peak_rss_kb: int
    ctx_voluntary: int
    ctx_involuntary: int


class RunMeter:
    """Started when a run starts; `stop()` gives the run's cost as deltas of getrusage."""

    def __init__(self) -> None:
        self._wall = perf_counter()
        self._self = resource.getrusage(resource.RUSAGE_SELF)
        self._children = resource.getrusage(resource.RUSAGE_CHILDREN)

    def stop(self) -> RunCost:
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)

        def delta(field: str) -> float:
            return (getattr(me, field) - getattr(self._self, field)) + (
                getattr(kids, field) - getattr(self._children, field)
            )

        return RunCost(
            wall_s=perf_counter() - self._wall,
            user_cpu_s=delta("ru_utime"),
            system_cpu_s=delta("ru_stime"),
            # Linux reports kilobytes; the children's figure is the largest child's peak.
            peak_rss_kb=int(me.ru_maxrss + kids.ru_maxrss),
            ctx_voluntary=int(delta("ru_nvcsw")),
            ctx_involuntary=int(delta("ru_nivcsw")),
        )


def this_host() -> str:
    return socket.gethostname()


def _process_start(pid: int) -> float | None:
    """Epoch seconds when `pid` started (Linux /proc), to tell a reused pid from our run."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            fields = stat_file.read().rsplit(b")", 1)[1].split()
        with open("/proc/stat", "rb") as stat_file:
            boot = next(int(line.split()[1]) for line in stat_file if line.startswith(b"btime"))
    except (OSError, StopIteration, IndexError, ValueError):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def process_alive(pid: int, run_started_at: datetime) -> bool:
    """Whether the process that started a run on this host is still there. A pid that now
    belongs to a process started after the run began was reused: the run is dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    started = _process_start(pid)
    if started is None:
        return True
    return started <= run_started_at.timestamp() + 2.0
