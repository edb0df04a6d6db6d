"""What a run costs (wall, CPU, memory, context switches), the machine it ran on, and
whether a run's process lives.

Costs come from getrusage, reaped children included, plus what the processes frontend read
from the pool it forked through its fork server (not our children, so never reaped by us).
Memory is sampled three ways, children included: RSS (summed, so pages the children
share are counted once per child), PSS (each shared page divided among its sharers: what the
tree really costs) and virtual size (what was reserved, touched or not: a thread's stack).
Liveness is only decided for runs on this host: a pid elsewhere proves nothing.
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from time import perf_counter

import psutil


@dataclass(frozen=True, slots=True)
class RunCost:
    wall_s: float
    user_cpu_s: float
    system_cpu_s: float
    peak_rss_kb: int
    peak_pss_kb: int | None  # None where /proc/PID/smaps_rollup is missing (not Linux)
    peak_vms_kb: int
    ctx_voluntary: int
    ctx_involuntary: int


def pss_kb(pid: int) -> int | None:
    """The proportional set size of one process, from /proc/PID/smaps_rollup (Linux 4.14+)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as rollup:
            for line in rollup:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


class RunMeter:
    """Started when a run starts; `stop()` gives the run's cost. CPU time and context switches
    are deltas of getrusage for this process and its reaped children, plus `unreaped` (a pool
    forked by a fork server, read by the frontend before it ends the pool). Memory is
    sampled: the peak of this process's RSS plus all its children's
    at one moment, since getrusage only knows the largest single child; PSS and virtual size
    the same way."""

    def __init__(self, sample_every_s: float = 0.2, *, with_children: bool = True) -> None:
        self._wall = perf_counter()
        self._self = resource.getrusage(resource.RUSAGE_SELF)
        self._children = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._process = psutil.Process()
        # Finding children reads every process's /proc entry: done only for a run that has
        # some (the processes frontend), not five times a second for nothing.
        self._with_children = with_children
        # children already there (a fixture server the demo started) are not this run's
        self._others = {child.pid for child in self._process.children(recursive=True)}
        self._peak_rss = self._peak_vms = 0
        self._peak_pss: int | None = None
        self._stop = threading.Event()
        self._every = sample_every_s
        self._sampler = threading.Thread(
            target=self._sample_until_stopped, daemon=True, name="run-meter"
        )
        self._sample()
        self._sampler.start()

    def _sample(self) -> None:
        processes = [self._process]
        if self._with_children:
            children = self._process.children(recursive=True)
            processes += [child for child in children if child.pid not in self._others]
        rss = vms = pss = 0
        pss_known = True  # not where this process has none (no smaps_rollup: not Linux)
        for process in processes:
            with contextlib.suppress(psutil.Error):
                memory = process.memory_info()
                rss, vms = rss + memory.rss, vms + memory.vms
                proportional = pss_kb(process.pid)
                if proportional is not None:
                    pss += proportional
                elif process is self._process:
                    pss_known = False  # a child's is missing when it has just ended
        self._peak_rss = max(self._peak_rss, rss)
        self._peak_vms = max(self._peak_vms, vms)
        if pss_known:
            self._peak_pss = max(self._peak_pss or 0, pss)

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(self._every):
            self._sample()

    def stop(self, unreaped: tuple[float, float, int, int] | None = None) -> RunCost:
        """`unreaped`: the CPU seconds (user, system) and context switches (voluntary,
        involuntary) of processes that worked for the run but are not our reaped children
        (a pool forked by a fork server), as the frontend read them."""
        self._stop.set()
        self._sampler.join()
        self._sample()
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        fields = ("ru_utime", "ru_stime", "ru_nvcsw", "ru_nivcsw")
        extra = dict(zip(fields, unreaped or (0, 0, 0, 0), strict=True))

        def delta(field: str) -> float:
            return (
                (getattr(me, field) - getattr(self._self, field))
                + (getattr(kids, field) - getattr(self._children, field))
                + extra[field]
            )

        return RunCost(
            wall_s=perf_counter() - self._wall,
            user_cpu_s=delta("ru_utime"),
            system_cpu_s=delta("ru_stime"),
            # sampled, not ru_maxrss: that is the process's lifetime peak, which an earlier run
            # in the same process (the demo, the API) would leak into this one
            peak_rss_kb=self._peak_rss // 1024,
            peak_pss_kb=self._peak_pss,
            peak_vms_kb=self._peak_vms // 1024,
            ctx_voluntary=int(delta("ru_nvcsw")),
            ctx_involuntary=int(delta("ru_nivcsw")),
        )


LIBRARIES = ("requests", "aiohttp", "beautifulsoup4", "lxml", "SQLAlchemy", "psycopg")


def machine() -> dict[str, object]:
    """What a run ran on, stored with it: a figure means little without the machine."""
    versions = {}
    for library in LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[library] = metadata.version(library)
    return {
        "hostname": this_host(),
        "cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "memory_mib": psutil.virtual_memory().total // 2**20,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": f"{platform.system()} {platform.release()}",
        "processor": platform.machine(),
        "libraries": versions,
    }


def raise_open_file_limit(wanted: int | None = None) -> int:
    """Raise the soft limit on open files towards the hard one (one connection, one file);
    returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if wanted is None else min(max(soft, wanted), hard)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


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
    belongs to a process started after the run began was reused: the run is dead. A naive
    `run_started_at` (SQLite hands them back so) is in UTC."""
    if run_started_at.tzinfo is None:
        run_started_at = run_started_at.replace(tzinfo=UTC)
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
