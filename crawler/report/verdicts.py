"""Verdicts on the claims, computed from measured groups: each names its numbers and the
threshold it used, so a reader can disagree with the rule and still trust the data. Pure:
no I/O, so a test can hand it runs that point either way."""

from __future__ import annotations

from dataclasses import dataclass

from crawler.report.reading import SourceCount
from crawler.report.summary import Group

SUPPORTED, NOT_SUPPORTED, MIXED = "supported", "not supported", "mixed"
NOT_MEASURED = "not measured"

CLAIMS = {
    1: "threads are resource-intensive: each reserves stack space, virtual memory up front",
    2: "at very high concurrency (over ~5,000 threads) throughput suffers from context switching",
    3: "the OS shares CPU time with all threads whether or not they are ready to work",
    4: "asyncio supports many thousands of simultaneous connections, simply",
    5: "asyncio doesn't make code fast, and doesn't remove the GIL's limits",
    6: "processes escape the GIL but pay to move data between separate memory spaces",
    7: "threaded code reads top-down; asyncio is lighter than threads or processes",
}
ARGUED = (
    (
        "threading bugs (races, deadlocks) are hard to find and fix",
        "a crawl that finishes proves nothing about the bugs it did not hit; our threads share "
        "only what the coordinator hands them, and Rule 1 (one writer per process) keeps the "
        "database out of their reach",
    ),
    (
        "asyncio does not prevent every race: an `await` between a read and a write lets "
        "another task in",
        "races show up only on the interleavings that happen; the asyncio frontend keeps its "
        "queue, session and tasks on the loop's thread and hands results over with one call",
    ),
)


@dataclass(frozen=True, slots=True)
class Verdict:
    claim: int
    outcome: str  # supported | not supported | mixed | not measured
    evidence: str  # the numbers the outcome rests on
    rule: str  # the threshold used
    part: str = ""  # which half of a two-part claim, when only one is judged

    @property
    def text(self) -> str:
        return CLAIMS[self.claim] + (f" ({self.part})" if self.part else "")


def _series(groups: list[Group], backend: str, variant: str = "") -> list[Group]:
    chosen = [g for g in groups if g.backend == backend and (not variant or g.variant == variant)]
    return sorted(chosen, key=lambda g: g.concurrency)


def slope(series: list[Group], metric: str) -> float:
    """Least-squares change of `metric` per unit of concurrency: the cost of one more thread,
    task or process, whatever the interpreter itself costs."""
    xs = [g.concurrency for g in series]
    ys = [g.median(metric) for g in series]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread_x = sum((x - mean_x) ** 2 for x in xs)
    if not spread_x:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread_x


def _outcome(yes: bool, no: bool) -> str:
    return SUPPORTED if yes else NOT_SUPPORTED if no else MIXED


def _missing(claim: int, what: str) -> Verdict:
    return Verdict(claim, NOT_MEASURED, f"no runs of {what} in these data", "")


def _measured(series: list[Group], *metrics: str) -> bool:
    return all(group.measured(metric) for group in series for metric in metrics)


def memory(groups: list[Group]) -> list[Verdict]:
    """Claim 1, from peak memory at several concurrency levels per frontend."""
    threads, tasks = _series(groups, "threads"), _series(groups, "asyncio")
    if len(threads) < 2 or len(tasks) < 2:
        return [_missing(1, "threads and asyncio at two or more concurrency levels")]
    if not _measured(threads + tasks, "peak_pss_mib", "peak_vms_mib"):
        return [
            _missing(1, "PSS and virtual memory (runs stored before schema 0005, or not on Linux)")
        ]
    vms_thread = slope(threads, "peak_vms_mib")
    vms_task = slope(tasks, "peak_vms_mib")
    pss_thread = slope(threads, "peak_pss_mib") * 1024
    pss_task = slope(tasks, "peak_pss_mib") * 1024
    # a slope under 1 KiB is noise (it can even come out negative): counted as 1 KiB
    ratio = pss_thread / max(pss_task, 1.0)
    reserves, heavier = vms_thread >= 1.0, ratio >= 2.0
    top_t, top_a = threads[-1], tasks[-1]
    task_kib = f"{pss_task:,.0f} KiB" if pss_task >= 1.0 else "under 1 KiB"
    evidence = (
        f"each thread reserved {vms_thread:,.2f} MiB of virtual memory (an asyncio task "
        f"{vms_task:,.3f} MiB) and occupied {pss_thread:,.0f} KiB of PSS (a task "
        f"{task_kib}: {ratio:,.1f}×); at {top_t.concurrency:,} threads "
        f"{top_t.median('peak_vms_mib'):,.0f} MiB virtual, {top_t.median('peak_pss_mib'):,.0f}"
        f" MiB PSS; at {top_a.concurrency:,} tasks {top_a.median('peak_vms_mib'):,.0f} MiB "
        f"virtual, {top_a.median('peak_pss_mib'):,.0f} MiB PSS"
    )
    rule = (
        "per-unit costs are least-squares slopes of the peaks over concurrency; supported when "
        "a thread reserves ≥ 1 MiB of virtual memory and occupies ≥ 2× a task's PSS, not "
        "supported when neither, mixed when one"
    )
    return [Verdict(1, _outcome(reserves and heavier, not (reserves or heavier)), evidence, rule)]


def _best(series: list[Group]) -> Group:
    return max(series, key=lambda g: g.median("pages_per_s"))


def slow_connections(groups: list[Group], latency_s: float) -> list[Verdict]:
    """Claims 2, 3 and 4, from a latency-bound site at rising concurrency."""
    threads, tasks = _series(groups, "threads"), _series(groups, "asyncio")
    if len(threads) < 2 or len(tasks) < 2:
        what = "threads and asyncio at two or more concurrency levels"
        return [_missing(2, what), _missing(3, what), _missing(4, what)]
    return [
        _context_switching(threads, tasks),
        _idle_threads_cost(threads, tasks),
        _many_connections(tasks, latency_s),
    ]


def _context_switching(threads: list[Group], tasks: list[Group]) -> Verdict:
    top = threads[-1]
    best = _best(threads[:-1])
    drop = 1 - top.median("pages_per_s") / max(best.median("pages_per_s"), 1e-9)
    growth = top.median("ctx_per_page") / max(best.median("ctx_per_page"), 1e-9)
    change = f"throughput {drop:.0%} lower" if drop > 0 else "no drop in throughput"
    evidence = (
        f"threads: {best.median('pages_per_s'):,.0f} pages/s at {best.concurrency:,} "
        f"({best.median('ctx_per_page'):,.1f} context switches a page), "
        f"{top.median('pages_per_s'):,.0f} at {top.concurrency:,} "
        f"({top.median('ctx_per_page'):,.1f} a page): {change}; asyncio at "
        f"{tasks[-1].concurrency:,}: {tasks[-1].median('pages_per_s'):,.0f} pages/s, "
        f"{tasks[-1].median('ctx_per_page'):,.1f} switches a page"
    )
    rule = (
        "supported when throughput at the highest thread count is ≥ 20% below the best lower "
        "count and context switches per page grew ≥ 1.5×; not supported when it is less than "
        "20% below; mixed when it fell but switches did not grow"
    )
    fell = drop >= 0.20
    return Verdict(2, _outcome(fell and growth >= 1.5, not fell), evidence, rule)


def _idle_threads_cost(threads: list[Group], tasks: list[Group]) -> Verdict:
    low_t, top_t, low_a, top_a = threads[0], threads[-1], tasks[0], tasks[-1]
    grow_t = top_t.median("cpu_ms_per_page") / max(low_t.median("cpu_ms_per_page"), 1e-9)
    grow_a = top_a.median("cpu_ms_per_page") / max(low_a.median("cpu_ms_per_page"), 1e-9)
    excess = grow_t / max(grow_a, 1e-9)
    evidence = (
        f"CPU per page from {low_t.concurrency:,} to {top_t.concurrency:,} threads: "
        f"{low_t.median('cpu_ms_per_page'):,.2f} → {top_t.median('cpu_ms_per_page'):,.2f} ms "
        f"({grow_t:,.2f}×); asyncio from {low_a.concurrency:,} to {top_a.concurrency:,} "
        f"tasks: {low_a.median('cpu_ms_per_page'):,.2f} → "
        f"{top_a.median('cpu_ms_per_page'):,.2f} ms ({grow_a:,.2f}×); threads grew "
        f"{excess:,.2f}× as much"
    )
    rule = (
        "threads waiting on sockets would cost CPU if the OS ran them anyway: supported when "
        "threads' CPU per page grows ≥ 1.5× as much as asyncio's over the same rise in "
        "concurrency, not supported when < 1.2×, mixed between"
    )
    return Verdict(3, _outcome(excess >= 1.5, excess < 1.2), evidence, rule)


def _many_connections(tasks: list[Group], latency_s: float) -> Verdict:
    top, best = tasks[-1], _best(tasks)
    error_share = top.median("errors") / max(top.median("pages") + top.median("errors"), 1)
    kept = top.median("pages_per_s") / max(best.median("pages_per_s"), 1e-9)
    ideal = top.concurrency / latency_s
    evidence = (
        f"asyncio at concurrency {top.concurrency:,}: {top.median('pages_per_s'):,.0f} pages/s "
        f"(ideal {ideal:,.0f} = concurrency ÷ {latency_s:g} s latency; "
        f"{top.median('pages_per_s') / ideal:.0%} of it), {kept:.0%} of its best "
        f"({best.median('pages_per_s'):,.0f} at {best.concurrency:,}), errors "
        f"{error_share:.1%}, peak PSS {top.median('peak_pss_mib'):,.0f} MiB"
    )
    rule = (
        "supported when asyncio at its highest concurrency keeps ≥ 80% of its best throughput "
        "with < 1% errors; not supported when ≥ 1% errors; mixed when it runs cleanly but "
        "throughput falls"
    )
    clean = error_share < 0.01
    return Verdict(4, _outcome(clean and kept >= 0.8, not clean), evidence, rule)


def cpu_bound(groups: list[Group]) -> list[Verdict]:
    """Claims 5 and 6 (the GIL part), from a site with no latency and heavy pages."""
    threads, tasks = _series(groups, "threads"), _series(groups, "asyncio")
    processes = _series(groups, "processes", "pages")
    if not (threads and tasks and processes):
        what = "all three frontends on the same site"
        return [_missing(5, what), _missing(6, what)]
    best_t, best_a, best_p = _best(threads), _best(tasks), _best(processes)
    speed_a = best_a.median("pages_per_s") / max(best_t.median("pages_per_s"), 1e-9)
    cores_a = best_a.median("cores_used")
    five = Verdict(
        5,
        _outcome(cores_a <= 1.2 and speed_a <= 1.2, cores_a > 1.2),
        f"asyncio: {best_a.median('pages_per_s'):,.0f} pages/s on {cores_a:.2f} cores; "
        f"threads: {best_t.median('pages_per_s'):,.0f} pages/s on "
        f"{best_t.median('cores_used'):.2f} cores ({speed_a:.2f}× for asyncio); CPU per page "
        f"{best_a.median('cpu_ms_per_page'):,.1f} vs {best_t.median('cpu_ms_per_page'):,.1f} ms",
        "supported when asyncio stays within 1.2 cores and within 1.2× of threads' "
        "throughput; not supported when it used more than 1.2 cores; mixed when it stayed on "
        "one core but ran faster (its HTTP client costs less per page, not the model)",
    )
    single = max(best_t, best_a, key=lambda g: g.median("pages_per_s"))
    speed_p = best_p.median("pages_per_s") / max(single.median("pages_per_s"), 1e-9)
    cores_p = best_p.median("cores_used")
    six = Verdict(
        6,
        _outcome(cores_p >= 1.3 and speed_p >= 1.2, cores_p < 1.2),
        f"processes ({best_p.concurrency}): {best_p.median('pages_per_s'):,.0f} pages/s on "
        f"{cores_p:.2f} cores; the best single process ({single.label}): "
        f"{single.median('pages_per_s'):,.0f} pages/s on {single.median('cores_used'):.2f} "
        f"cores ({speed_p:.2f}× for processes); start-up {best_p.median('startup_s'):.2f} s",
        "supported when processes use ≥ 1.3 cores and crawl ≥ 1.2× faster than the best "
        "single process; not supported when they use < 1.2 cores; mixed when they use the "
        "cores but are not that much faster",
        part="judged here: escaping the GIL",
    )
    return [five, six]


def moving_data(groups: list[Group]) -> list[Verdict]:
    """Claim 6 (the cost part): the same pool sending parsed pages or whole bodies."""
    pages = {g.concurrency: g for g in _series(groups, "processes", "pages")}
    bodies = {g.concurrency: g for g in _series(groups, "processes", "bodies")}
    both = sorted(pages.keys() & bodies.keys())
    if not both:
        return [_missing(6, "processes sending pages and sending bodies at one concurrency")]
    p, b = pages[both[0]], bodies[both[0]]
    extra_bytes = b.median("ipc_bytes_per_page") - p.median("ipc_bytes_per_page")
    extra_cpu = b.median("cpu_ms_per_page") - p.median("cpu_ms_per_page")
    share = extra_cpu / max(p.median("cpu_ms_per_page"), 1e-9)
    speed = b.median("pages_per_s") / max(p.median("pages_per_s"), 1e-9)
    evidence = (
        f"parsed pages: {p.median('ipc_bytes_per_page'):,.0f} bytes a page over the pipe, "
        f"{p.median('cpu_ms_per_page'):,.2f} CPU ms a page, {p.median('pages_per_s'):,.0f} "
        f"pages/s; whole bodies: {b.median('ipc_bytes_per_page'):,.0f} bytes "
        f"({extra_bytes:+,.0f}), {b.median('cpu_ms_per_page'):,.2f} ms ({share:+.0%}), "
        f"{b.median('pages_per_s'):,.0f} pages/s ({speed:.2f}×); context switches a page "
        f"{b.median('ctx_per_page'):,.0f} against {p.median('ctx_per_page'):,.0f}. Sending "
        "bodies also moves every parse into the one parent process, where the pool's result "
        "thread shares the GIL with the coordinator: the price measured is both"
    )
    rule = (
        "supported when sending whole bodies costs ≥ 5% more CPU a page than sending parsed "
        "pages; not supported when < 2%; mixed between"
    )
    part = "judged here: the price of moving data"
    return [Verdict(6, _outcome(share >= 0.05, share < 0.02), evidence, rule, part)]


def how_each_reads(counts: list[SourceCount], memory_groups: list[Group]) -> list[Verdict]:
    """Claim 7: reading from our source; lightness from the memory experiment, if run."""
    by = {count.frontend: count for count in counts}
    threads, tasks = by["threads"], by["asyncio"]
    plainer = (
        threads.yield_points == 0
        and threads.primitive_calls <= tasks.primitive_calls
        and threads.frontend_lines <= tasks.frontend_lines
    )
    heavier = threads.primitive_calls > tasks.primitive_calls and (
        threads.frontend_lines > tasks.frontend_lines
    )
    reading = (
        f"threads frontend {threads.frontend_lines} lines ({threads.lines} with its fetcher), "
        f"{threads.primitive_calls} synchronisation calls, no await; asyncio frontend "
        f"{tasks.frontend_lines} lines ({tasks.lines} with its fetcher), "
        f"{tasks.primitive_calls} synchronisation calls, {tasks.yield_points} await points; "
        f"processes {by['processes'].frontend_lines} lines, "
        f"{by['processes'].primitive_calls} synchronisation calls"
    )
    per_unit = {
        backend: slope(series, "peak_pss_mib") * 1024
        for backend in ("threads", "asyncio", "processes")
        if len(series := _series(memory_groups, backend, "pages" if backend == "processes" else ""))
        >= 2
        and _measured(series, "peak_pss_mib")
    }
    rule = (
        "top-down: the threads frontend has no await points and no more lines or "
        "synchronisation calls than asyncio's; lighter: an asyncio task's PSS slope below a "
        "thread's and a process's (the memory experiment). Supported when both hold, not "
        "supported when neither, mixed otherwise"
    )
    if "asyncio" not in per_unit or len(per_unit) < 2:
        evidence = f"{reading}; lightness not measured here (run the memory experiment)"
        part = "judged here: reading top-down only"
        return [Verdict(7, _outcome(plainer, heavier), evidence, rule, part)]
    others = {backend: kib for backend, kib in per_unit.items() if backend != "asyncio"}
    lighter = all(per_unit["asyncio"] < kib for kib in others.values())
    weights = ", ".join(f"{backend} {kib:,.0f} KiB" for backend, kib in per_unit.items())
    evidence = f"{reading}; PSS per unit of concurrency: {weights}"
    return [Verdict(7, _outcome(plainer and lighter, not plainer and not lighter), evidence, rule)]
