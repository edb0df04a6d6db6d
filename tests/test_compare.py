"""`crawler compare`, the experiments and the report: one stored run per combination, a table
that says what the stored rows say, every experiment at `--quick` size, verdicts that follow
the data (stored runs that point one way, then the other), and the HTML report as a real
browser renders it."""

from __future__ import annotations

import json
import math
import signal
import sqlite3
import statistics
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from sqlalchemy import insert

from crawler.model import PARSERS
from crawler.report.experiments import EXPERIMENTS
from crawler.store.tables import crawls_t, runs_t
from tests.helpers import FixtureServer, cli, query, start_crawler

CHROMIUM = Path("/usr/bin/chromium")
OUTCOMES = {"supported", "not supported", "mixed"}


def nearest_rank(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def by_hand(db_url: str, run_id: int) -> dict[str, float]:
    """A run's figures worked out here from its stored rows, not through crawler.report."""
    [(pages, wall, startup, user, system, rss, pss, vms, voluntary, involuntary)] = query(
        db_url,
        "SELECT pages, wall_s, startup_s, user_cpu_s, system_cpu_s, peak_rss_kb, peak_pss_kb,"
        " peak_vms_kb, ctx_voluntary, ctx_involuntary FROM runs WHERE id = ?",
        run_id,
    )
    times = [
        row[0] * 1000
        for row in query(
            db_url, "SELECT total_s FROM fetches WHERE run_id = ? AND total_s IS NOT NULL", run_id
        )
    ]
    return {
        "pages": pages,
        "pages_per_s": pages / (wall - (startup or 0)),
        "cpu_ms_per_page": (user + system) * 1000 / pages,
        "peak_rss_mib": rss / 1024,
        "peak_pss_mib": pss / 1024,
        "peak_vms_mib": vms / 1024,
        "ctx_switches": voluntary + involuntary,
        "fetch_p50_ms": nearest_rank(times, 0.5),
        "fetch_p95_ms": nearest_rank(times, 0.95),
        "fetch_p99_ms": nearest_rank(times, 0.99),
    }


def test_compare_stores_one_run_per_combination_and_its_table_matches_the_rows(
    fixture_site, tmp_path
):
    db_url = f"sqlite:///{tmp_path / 'compare.db'}"
    report = tmp_path / "report.html"
    result = cli(
        "compare",
        fixture_site,
        "--backends",
        "threads,asyncio,processes",
        "--concurrency",
        "2,3",
        "--repeat",
        "2",
        "--json",
        "--report",
        str(report),
        "--db",
        db_url,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    label = answer["label"]
    assert label.startswith("compare-") and answer["failures"] == []

    runs = query(
        db_url,
        "SELECT r.id, c.name, r.frontend, r.concurrency, r.state FROM runs r"
        " JOIN crawls c ON c.id = r.crawl_id ORDER BY r.id",
    )
    assert len(runs) == 12 and {state for *_, state in runs} == {"finished"}
    assert len({name for _, name, *_ in runs}) == 12  # each run its own crawl
    combos = [(backend, concurrency) for _, _, backend, concurrency, _ in runs]
    every = {(b, c) for b in ("threads", "asyncio", "processes") for c in (2, 3)}
    # interleaved: each round runs every combination once, and not in the same order
    assert set(combos[:6]) == set(combos[6:]) == every
    assert combos[:6] != combos[6:]
    for _, name, backend, concurrency, _ in runs:
        assert name.startswith(f"{label}/{backend}-c{concurrency}-r")

    [section] = answer["sections"]
    assert len(section["groups"]) == 6 and len(section["runs"]) == 12
    for group in section["groups"]:
        ids = [
            run_id
            for run_id, _, backend, concurrency, _ in runs
            if (backend, concurrency) == (group["backend"], group["concurrency"])
        ]
        assert group["runs"] == 2
        figures = [by_hand(db_url, run_id) for run_id in ids]
        for metric in figures[0]:
            values = [f[metric] for f in figures]
            shown = group["figures"][metric]
            assert shown["median"] == pytest.approx(statistics.median(values), rel=2e-3, abs=0.06)
            assert shown["low"] == pytest.approx(min(values), rel=2e-3, abs=0.06)
            assert shown["high"] == pytest.approx(max(values), rel=2e-3, abs=0.06)
        assert group["figures"]["errors"]["median"] == 1  # the fixture site's one broken link
    html = report.read_text()
    assert html.count("<svg") == 1 and "Summary" in html

    # the same runs reported again later: the same groups, and a table on the terminal
    again = cli("report", f"{label}/*", "--json", "--db", db_url)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["sections"][0]["groups"] == section["groups"]
    table = cli("report", f"{label}/*", "--db", db_url, env={"COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    lines = [line.split() for line in table.stdout.splitlines()]
    rows = [line[:3] for line in lines if line and line[0] in ("threads", "asyncio", "processes")]
    assert sorted(rows) == sorted([b, str(c), "2"] for b, c in every)


def test_compare_sets_each_parser_apart(fixture_site, tmp_path):
    """--parsers runs every frontend with each parser; the report never sums up runs that
    parsed differently, and both stored the same pages."""
    db_url = f"sqlite:///{tmp_path / 'parsers.db'}"
    result = cli(
        "compare",
        fixture_site,
        "--backends",
        "threads,asyncio",
        "--concurrency",
        "2",
        "--parsers",
        "beautifulsoup,lxml",
        "--json",
        "--db",
        db_url,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    [section] = answer["sections"]
    groups = {(g["backend"], g["parser"]): g for g in section["groups"]}
    assert set(groups) == {(b, p) for b in ("threads", "asyncio") for p in PARSERS}
    assert {g["runs"] for g in groups.values()} == {1}
    assert len({g["figures"]["pages"]["median"] for g in groups.values()}) == 1
    stored = query(db_url, "SELECT c.name, r.parser FROM runs r JOIN crawls c ON c.id = r.crawl_id")
    for name, parser in stored:
        assert ("-lxml-" in name) == (parser == "lxml"), name
    table = cli("report", f"{answer['label']}/*", "--db", db_url, env={"COLUMNS": "200"})
    assert "threads, lxml" in table.stdout and "asyncio, lxml" in table.stdout


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_each_experiment_runs_at_quick_size_and_judges_its_claims(name, tmp_path):
    db_url = f"sqlite:///{tmp_path / 'experiments.db'}"
    report = tmp_path / f"{name}.html"
    result = cli(
        "compare",
        "--experiment",
        name,
        "--quick",
        "--json",
        "--report",
        str(report),
        "--db",
        db_url,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    experiment = EXPERIMENTS[name]
    assert answer["experiment"] == name and answer["failures"] == []
    if not experiment.quick.cells:  # counted from the source: nothing crawled or created
        assert not (tmp_path / "experiments.db").exists()
    stored = (
        []
        if not experiment.quick.cells
        else query(
            db_url,
            "SELECT c.name, r.frontend, r.concurrency, coalesce(r.pool_returns, 'pages'), r.state"
            " FROM runs r JOIN crawls c ON c.id = r.crawl_id",
        )
    )
    cells = {(c.backend, c.concurrency, c.variant) for c in experiment.quick.cells}
    assert {(b, c, v) for _, b, c, v, _ in stored} == cells
    assert len(stored) == len(cells) * experiment.quick.repeat
    assert {state for *_, state in stored} <= {"finished"}
    [section] = [s for s in answer["sections"] if s["experiment"] == name]
    assert [v["claim"] for v in section["verdicts"]] == list(experiment.claims)
    for verdict in section["verdicts"]:
        assert verdict["outcome"] in OUTCOMES, verdict
        assert any(ch.isdigit() for ch in verdict["evidence"]) and verdict["rule"]
    html = report.read_text()
    assert "<svg" in html and experiment.title in html
    if name == "how-each-reads":
        frontends = {count["frontend"]: count for count in answer["reading"]}
        assert frontends["asyncio"]["yield_points"] > 0 == frontends["threads"]["yield_points"]
        assert frontends["processes"]["primitives"]["barriers"] >= 1


# Stored runs that point one way, then the other: (backend, concurrency, variant, figures).
# pages 1000 each; rates through wall time, CPU through cpu_s, memory in MiB.
def memory_runs(threads_heavy: bool) -> list[tuple]:
    rows = []
    for c in (16, 250, 1000, 5000):
        thread_vms, thread_pss = (8.0, 0.1) if threads_heavy else (0.01, 0.03)
        rows.append(("threads", c, None, {"vms": 300 + thread_vms * c, "pss": 60 + thread_pss * c}))
        rows.append(("asyncio", c, None, {"vms": 400 + 0.01 * c, "pss": 60 + 0.03 * c}))
    for c in (2, 8):
        rows.append(("processes", c, "pages", {"vms": 700 * c, "pss": 25 * c}))
    return rows


def slow_runs(claims_hold: bool) -> list[tuple]:
    rows = []
    thread_rates = (190, 1500, 600) if claims_hold else (190, 1500, 7000)
    thread_cpu = (5, 6, 15) if claims_hold else (5, 5, 5)
    thread_ctx = (5, 6, 30)
    async_errors = (0, 0, 0) if claims_hold else (0, 0, 60)
    for i, c in enumerate((100, 1000, 5000)):
        rows.append(
            (
                "threads",
                c,
                None,
                {"rate": thread_rates[i], "cpu_ms": thread_cpu[i], "ctx": thread_ctx[i]},
            )
        )
        rows.append(
            (
                "asyncio",
                c,
                None,
                {"rate": (190, 1800, 8000)[i], "cpu_ms": 4, "ctx": 2, "errors": async_errors[i]},
            )
        )
    return rows


def cpu_runs(claims_hold: bool) -> list[tuple]:
    return [
        ("threads", 4, None, {"rate": 50, "cores": 1.0}),
        ("asyncio", 4, None, {"rate": 50, "cores": 1.0 if claims_hold else 1.5}),
        (
            "processes",
            2,
            "pages",
            {"rate": 90 if claims_hold else 50, "cores": 1.9 if claims_hold else 1.0},
        ),
    ]


def moving_runs(claims_hold: bool) -> list[tuple]:
    return [
        ("processes", 2, "pages", {"cpu_ms": 20, "ipc": 2_000}),
        ("processes", 2, "bodies", {"cpu_ms": 30 if claims_hold else 20.2, "ipc": 66_000}),
    ]


def kib(mib: float | None) -> int | None:
    return None if mib is None else int(mib * 1024)


def store_runs(db_url: str, label: str, rows: list[tuple]) -> None:
    from crawler.api import open_db

    engine = open_db(db_url)
    with engine.begin() as conn:
        for number, (backend, concurrency, variant, figures) in enumerate(rows):
            crawl_id = conn.execute(
                insert(crawls_t).returning(crawls_t.c.id),
                {
                    "name": f"{label}/{backend}-{variant or 'pages'}-c{concurrency}-r1-{number}",
                    "seeds": ["http://127.0.0.1:9/"],
                    "settings": {},
                    "state": "finished",
                    "urls_started": 1000,
                },
            ).scalar_one()
            pages = 1000
            wall = pages / figures.get("rate", 100)
            cpu = figures.get("cores", 0) * wall or figures.get("cpu_ms", 10) * pages / 1000
            conn.execute(
                insert(runs_t),
                {
                    "crawl_id": crawl_id,
                    "frontend": backend,
                    "concurrency": concurrency,
                    "pool_returns": variant,
                    "machine": {"cpus": 2, "python": "3.11", "hostname": "test"},
                    "hostname": "test",
                    "pid": 1,
                    "state": "finished",
                    "wall_s": wall,
                    "startup_s": 0.0,
                    "user_cpu_s": cpu,
                    "system_cpu_s": 0.0,
                    "peak_rss_kb": int((figures.get("pss") or 100) * 1.3 * 1024),
                    "peak_pss_kb": kib(figures.get("pss", 100)),
                    "peak_vms_kb": kib(figures.get("vms", 500)),
                    "ctx_voluntary": int(figures.get("ctx", 3) * pages),
                    "ctx_involuntary": 0,
                    "ipc_bytes": int(figures.get("ipc", 0) * pages),
                    "workers": concurrency,
                    "pages": pages,
                    "fetches": pages + figures.get("errors", 0),
                    "errors": figures.get("errors", 0),
                },
            )
    engine.dispose()


SCENARIOS = {  # experiment: (runs, {claim: outcome when they hold, when they do not})
    "memory": (memory_runs, {1: ("supported", "not supported")}),
    "slow-connections": (
        slow_runs,
        {
            2: ("supported", "not supported"),
            3: ("supported", "not supported"),
            4: ("supported", "not supported"),
        },
    ),
    "cpu-parsing": (
        cpu_runs,
        {5: ("supported", "not supported"), 6: ("supported", "not supported")},
    ),
    "moving-data": (moving_runs, {6: ("supported", "not supported")}),
}


@pytest.fixture(scope="module")
def stored_scenarios(tmp_path_factory) -> str:
    db_url = f"sqlite:///{tmp_path_factory.mktemp('verdicts') / 'stored.db'}"
    for name, (runs, _) in SCENARIOS.items():
        store_runs(db_url, f"{name}-20260101-000001", runs(True))
        store_runs(db_url, f"{name}-20260101-000002", runs(False))
    store_runs(db_url, "compare-20260101-000003", cpu_runs(True))
    return db_url


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_a_verdict_flips_when_the_stored_runs_point_the_other_way(stored_scenarios, name):
    _, claims = SCENARIOS[name]
    for second, holds in (("000001", 0), ("000002", 1)):
        result = cli("report", f"{name}-20260101-{second}/*", "--json", "--db", stored_scenarios)
        assert result.returncode == 0, result.stderr
        sections = json.loads(result.stdout)["sections"]
        [section] = [s for s in sections if s["experiment"] == name]
        outcomes = {v["claim"]: v["outcome"] for v in section["verdicts"]}
        assert outcomes == {claim: pair[holds] for claim, pair in claims.items()}, section
        lightness = next(s for s in sections if s["experiment"] == "how-each-reads")["verdicts"]
        if name == "memory":  # claim 7's lighter half reads the memory runs
            assert ("threads 102 KiB" in lightness[0]["evidence"]) == (holds == 0)


def test_the_report_renders_in_a_real_browser_with_no_errors(stored_scenarios, tmp_path):
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "Debian's chromium is missing: apt-get install chromium"
    report = tmp_path / "report.html"
    result = cli("report", "*", "--html", str(report), "--db", stored_scenarios)
    assert result.returncode == 0, result.stderr
    problems: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, timeout=120_000
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: m.type == "error" and problems.append(m.text))
            page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(report.as_uri(), wait_until="load")
            assert page.locator("h1").inner_text() == "Threads, processes and asyncio, measured"
            # one chart per comparison and experiment (9 sections and claim 7's), drawn
            charts = page.locator("figure svg")
            assert charts.count() == 10
            for n in range(charts.count()):
                box = charts.nth(n).bounding_box()
                assert box and box["width"] > 300 and box["height"] > 100
                assert charts.nth(n).locator("path").count() > 5
            claims = page.locator("#claims table tr")
            # a header, then each direction's verdicts (1 + 3 + 2 + 1 claims) and claim 7's
            assert claims.count() == 1 + 2 * 7 + 1
            assert page.locator("#claims .verdict.supported").count() >= 5
            summary = page.locator("#summary table tbody tr")
            assert summary.count() >= 20
            assert "processes (bodies)" in page.locator("#summary table").inner_text()
            assert requests == [report.as_uri()]  # nothing fetched but the file itself
            assert problems == []
            page.evaluate("console.error('probe')")  # the listener is known to work
            assert problems == ["probe"]
        finally:
            browser.close()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["compare"], "give the seed URL of the site"),
        (["compare", "--experiment", "nope"], "no experiment 'nope'"),
        (["compare", "http://127.0.0.1:9/", "--quick"], "--quick sizes an experiment"),
        (["compare", "--experiment", "memory", "http://127.0.0.1:9/"], "serves its own"),
        (["compare", "http://127.0.0.1:9/", "--concurrency", "0,4"], "--concurrency takes"),
        (["compare", "http://127.0.0.1:9/", "--concurrency", "4,x"], "--concurrency takes"),
        (["compare", "http://127.0.0.1:9/", "--backends", "threads,bogus"], "unknown backend"),
        (["compare", "http://127.0.0.1:9/", "--repeat", "0"], "--repeat must be 1 or more"),
        (["compare", "http://127.0.0.1:9/", "--max-pages", "0"], "--max-pages must be"),
        (["compare", "http://127.0.0.1:9/", "--report", "/nonexistent/r.html"], "no folder"),
        (["crawl", "http://127.0.0.1:9/", "--pool-returns", "bodies"], "for the processes"),
        (
            ["crawl", "http://127.0.0.1:9/", "--backend", "processes", "--pool-returns", "x"],
            "unknown --pool-returns 'x'",
        ),
        (["crawl", "http://127.0.0.1:9/", "--parser", "html5"], "unknown --parser 'html5'"),
    ],
)
def test_bad_input_to_compare_is_one_clear_line_and_runs_nothing(arguments, message, tmp_path):
    db_url = f"sqlite:///{tmp_path / 'never.db'}"
    result = cli(*arguments, "--db", db_url)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert message in line
    assert not (tmp_path / "never.db").exists()  # nothing crawled, nothing created


def test_report_names_what_it_cannot_find_and_what_it_leaves_out(
    stored_scenarios, db_url, fixture_site
):
    missing = cli("report", "nosuch-*", "--db", stored_scenarios)
    assert missing.returncode == 2 and "no crawl matches 'nosuch-*'" in missing.stderr
    for name in ("cut", "whole"):
        crawled = cli("crawl", fixture_site, "--name", name, "--max-pages", "3", "--db", db_url)
        assert crawled.returncode == 0, crawled.stderr
    query(db_url, "UPDATE runs SET state = 'interrupted' WHERE id = 1")  # as after Ctrl-C
    unfinished = cli("report", "cut", "--db", db_url)
    assert unfinished.returncode == 2
    assert "has no finished run to report" in unfinished.stderr
    # a pattern takes what it can: the whole crawl, and a note on the cut one
    taken = cli("report", "*", "--json", "--db", db_url)
    assert taken.returncode == 0, taken.stderr
    answer = json.loads(taken.stdout)
    assert [run["crawl"] for run in answer["sections"][0]["runs"]] == ["whole"]
    assert answer["notes"] == ["cut: no finished run"]


def test_interleaving_rotates_so_no_combination_always_goes_first():
    from crawler.report.compare import interleaved
    from crawler.report.experiments import Cell

    a, b, c, d = (Cell("threads", n) for n in (1, 2, 3, 4))
    assert [cell for _, cell in interleaved([a, b], 3)] == [a, b, b, a, a, b]
    rounds = interleaved([a, b, c, d], 4)
    assert [number for number, _ in rounds] == [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4
    firsts = [cell for n, (_, cell) in enumerate(rounds) if n % 4 == 0]
    lasts = [cell for n, (_, cell) in enumerate(rounds) if n % 4 == 3]
    assert sorted(firsts, key=str) == sorted(lasts, key=str) == sorted([a, b, c, d], key=str)


def test_runs_without_pss_are_not_measured_and_half_the_evidence_is_mixed(tmp_path):
    """Rows from before schema 0005 have no PSS: claim 1 is then not measured, never judged
    on zeros; and threads that reserve much but occupy no more than tasks are mixed."""
    db_url = f"sqlite:///{tmp_path / 'old.db'}"
    old = [(b, c, v, {"vms": None, "pss": None}) for b, c, v, _ in memory_runs(True)]
    store_runs(db_url, "memory-20250101-000000", old)
    half = [
        (
            backend,
            c,
            v,
            {"vms": 300 + (8.0 if backend == "threads" else 0.01) * c, "pss": 60 + 0.03 * c},
        )
        for backend, c, v, _ in memory_runs(True)
    ]
    store_runs(db_url, "memory-20250101-000001", half)
    for label, outcome in (("000000", "not measured"), ("000001", "mixed")):
        result = cli("report", f"memory-20250101-{label}/*", "--json", "--db", db_url)
        assert result.returncode == 0, result.stderr
        sections = json.loads(result.stdout)["sections"]
        [verdict] = next(s for s in sections if s["experiment"] == "memory")["verdicts"]
        assert verdict["outcome"] == outcome, verdict


def test_ctrl_c_stops_the_comparison_and_the_run_in_progress(tmp_path):
    """SIGINT to the comparison alone (not its process group): the run going on is asked to
    stop as a crawl is, its row says interrupted, and no child is left crawling."""
    db_url = f"sqlite:///{tmp_path / 'stopped.db'}"
    with FixtureServer("--pages", "2000", "--latency-ms", "200") as site:
        compare = start_crawler(
            "compare",
            site.url,
            "--backends",
            "threads",
            "--concurrency",
            "4",
            "--repeat",
            "3",
            "--db",
            db_url,
            output=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if query(db_url, "SELECT count(*) FROM pages") != [(0,)]:
                    break
            except sqlite3.OperationalError:  # not created, or not migrated yet
                pass
            time.sleep(0.2)
        children = psutil.Process(compare.pid).children(recursive=True)
        assert children, "the run's own interpreter is not there"
        compare.send_signal(signal.SIGINT)
        _, stderr = compare.communicate(timeout=120)
    assert compare.returncode == 130, stderr
    assert "comparison stopped" in stderr and "crawler report '" in stderr
    assert not [child for child in children if child.is_running()]
    assert query(db_url, "SELECT state FROM runs") == [("interrupted",)]


def test_compare_and_report_on_postgresql(fixture_site, pg_url):
    """The runs go to the shared database too, and are reported from it."""
    result = cli(
        "compare",
        fixture_site,
        "--backends",
        "threads,asyncio",
        "--concurrency",
        "2",
        "--json",
        "--db",
        pg_url,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert len(answer["crawls"]) == 2 and answer["failures"] == []
    again = cli("report", "compare-*", "--json", "--db", pg_url)
    assert again.returncode == 0, again.stderr
    [section] = json.loads(again.stdout)["sections"]
    assert section["groups"] == answer["sections"][0]["groups"]
    for run in section["runs"]:
        assert run["pages"] == 37 and 0 < run["peak_pss_mib"] <= run["peak_rss_mib"]
        assert run["machine"]["cpus"] >= 1
