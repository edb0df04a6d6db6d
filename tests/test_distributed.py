"""Many workers on one crawl in a real PostgreSQL: `crawler submit`, then `crawler worker`s of
every frontend. A worker killed, a worker paused past its timeout, per-host limits across
workers, a database restart, and a worker whose clock is ten minutes off."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import text

from crawler.store import make_engine
from tests.counting_site import CountingSite
from tests.helpers import BACKENDS, FixtureServer, TreeSite, backend_flags, cli
from tests.test_generated_crawl import expected

SLACK = 0.02  # the server stamps a request's start after reading it


def sql(db: str, statement: str, **params) -> list:
    engine = make_engine(db)
    try:
        with engine.connect() as conn:
            return conn.execute(text(statement), params).all()
    finally:
        engine.dispose()


def submit(db: str, seeds: list[str], name: str, *flags: str) -> None:
    result = cli("submit", *seeds, "--name", name, *flags, "--db", db)
    assert result.returncode == 0, result.stderr
    assert f"crawl {name} (id " in result.stdout


def start_worker(
    db: str,
    name: str,
    backend: str,
    concurrency: int = 8,
    prefix: tuple[str, ...] = (),
    env: dict | None = None,
) -> subprocess.Popen:
    """`crawler worker NAME` in the background (`prefix`: a command that wraps it)."""
    command = [*prefix, sys.executable, "-m", "crawler", "worker", name]
    return subprocess.Popen(
        [*command, *backend_flags(backend, concurrency), "--db", db],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def wait_until(condition, timeout: float = 120.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not come within {timeout:.0f} s"
        time.sleep(0.1)


def finish(workers: list[subprocess.Popen], timeout: float = 300) -> list[tuple[int, str]]:
    """Each worker's exit code and stderr; all are killed if one does not end in time."""
    ended = []
    try:
        for worker in workers:
            _, stderr = worker.communicate(timeout=timeout)
            ended.append((worker.returncode, stderr))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    return ended


def stored_once(db: str) -> None:
    """No URL is stored twice, and no URL has two attempts that both succeeded."""
    assert sql(db, "SELECT url FROM pages GROUP BY url HAVING count(*) > 1") == []
    twice = """SELECT frontier_id FROM fetches WHERE error_kind IS NULL
               GROUP BY frontier_id HAVING count(*) > 1"""
    assert sql(db, twice) == []


def run_of(db: str, pid: int) -> int | None:
    rows = sql(db, "SELECT id FROM runs WHERE pid = :pid", pid=pid)
    return rows[0][0] if rows else None


# -- three frontends, one killed ------------------------------------------------------------------

SITE = ["--pages", "5000", "--links", "10", "--page-kb", "4", "--latency-ms", "5"]


def test_three_workers_one_killed_store_every_page_once(pg_url):
    with FixtureServer(*SITE) as server:
        submit(pg_url, [server.url], "shared", "--worker-timeout", "10")
        workers = {b: start_worker(pg_url, "shared", b) for b in BACKENDS}
        victim = workers["processes"]
        wait_until(lambda: (run_of(pg_url, victim.pid) or 0) > 0, what="the processes run")
        run_id = run_of(pg_url, victim.pid)
        leases = "SELECT frontier_id FROM leases WHERE run_id = :run"
        wait_until(
            lambda: (
                sql(pg_url, "SELECT count(*) FROM pages")[0][0] >= 500
                and sql(pg_url, leases, run=run_id)
            ),
            what="500 pages stored and the processes run holding leases",
        )
        held = {row[0] for row in sql(pg_url, leases, run=run_id)}
        victim.send_signal(signal.SIGKILL)
        others = finish([workers["threads"], workers["asyncio"]])
        victim.wait(timeout=30)
    assert [code for code, _ in others] == [0, 0], others
    pages = sql(pg_url, "SELECT count(*) FROM pages")[0][0]
    assert pages == expected(*SITE) == 5000
    stored_once(pg_url)
    state = sql(pg_url, "SELECT state FROM runs WHERE id = :run", run=run_id)[0][0]
    assert state == "dead"
    # Each URL the dead run held was fetched again by a live one (unless it finished first).
    retaken = sql(
        pg_url,
        """SELECT f.frontier_id, f.run_id FROM fetches f JOIN pages p ON p.fetch_id = f.id
           WHERE f.frontier_id IN :ids""".replace(":ids", "(" + ",".join(map(str, held)) + ")"),
    )
    assert len(retaken) == len(held)
    assert sum(run != run_id for _, run in retaken) > 0
    assert sql(pg_url, "SELECT count(*) FROM leases")[0][0] == 0


# -- a worker paused past its timeout -------------------------------------------------------------


@pytest.mark.serial  # a 3 s worker timeout: no other test may starve the live worker
def test_a_worker_paused_past_its_timeout_cannot_overwrite_and_stops(pg_url):
    with TreeSite(pages=200, delay=0.05) as site:
        submit(pg_url, [site.url], "paused", "--worker-timeout", "3")
        sleeper = start_worker(pg_url, "paused", "threads", 4)
        wait_until(lambda: run_of(pg_url, sleeper.pid), what="the first run")
        sleeper_run = run_of(pg_url, sleeper.pid)
        leases = "SELECT frontier_id FROM leases WHERE run_id = :run"
        wait_until(lambda: len(sql(pg_url, leases, run=sleeper_run)) >= 4, what="leases")
        sleeper.send_signal(signal.SIGSTOP)
        time.sleep(1)  # a commit it had already sent lands
        held = {row[0] for row in sql(pg_url, leases, run=sleeper_run)}
        other = start_worker(pg_url, "paused", "asyncio", 2)
        ids = "(" + ",".join(map(str, held)) + ")"
        taken_over = f"SELECT count(*) FROM pages WHERE frontier_id IN {ids}"
        wait_until(
            lambda: sql(pg_url, taken_over)[0][0] == len(held),
            what="the paused worker's URLs stored by the other",
        )
        state = "SELECT state FROM runs WHERE id = :run"
        assert sql(pg_url, state, run=sleeper_run)[0][0] == "dead"
        shown = cli("status", "paused", "--json", "--db", pg_url)
        runs = {run["run_id"]: run for run in json.loads(shown.stdout)["runs"]}
        assert runs[sleeper_run]["state"] == "dead"
        assert runs[sleeper_run]["hostname"] and runs[sleeper_run]["pid"] == sleeper.pid
        assert runs[sleeper_run]["heartbeat_s_ago"] >= 3  # silent past the timeout
        live = [run for run in runs.values() if run["state"] == "running"]
        assert [run["backend"] for run in live] == ["asyncio"]
        assert live[0]["heartbeat_s_ago"] < 3
        sleeper.send_signal(signal.SIGCONT)  # its answers arrived while it slept
        (sleeper_code, sleeper_err), (other_code, other_err) = finish([sleeper, other])
    assert sleeper_code == 3, sleeper_err
    assert "was silent for more than 3 s" in sleeper_err
    assert "none of its late results overwrote theirs" in sleeper_err
    assert "Traceback" not in sleeper_err
    assert other_code == 0, other_err
    assert sql(pg_url, "SELECT count(*) FROM pages")[0][0] == 200
    stored_once(pg_url)
    by_sleeper = f"""SELECT count(*) FROM fetches
                     WHERE frontier_id IN {ids} AND run_id = :run"""
    assert sql(pg_url, by_sleeper, run=sleeper_run)[0][0] == 0
    assert sql(pg_url, state, run=sleeper_run)[0][0] == "dead"


# -- politeness across workers --------------------------------------------------------------------


@pytest.mark.serial  # gaps are measured
def test_per_host_limits_hold_across_three_workers(pg_url):
    robots = {1: "User-agent: *\nCrawl-delay: 0.2\n"}
    with CountingSite(hosts=2, pages=30, delay=0.05, robots=robots) as site:
        submit(pg_url, site.urls, "polite", "--per-host-concurrency", "2")
        workers = [start_worker(pg_url, "polite", backend) for backend in BACKENDS]
        ended = finish(workers)
    assert [code for code, _ in ended] == [0, 0, 0], ended
    assert sql(pg_url, "SELECT count(*) FROM pages")[0][0] == 2 * 31
    assert site.most_in_flight(0) <= 2
    assert site.smallest_gap(1) >= 0.2 - SLACK
    assert site.robots_fetched == {0: 1, 1: 1}
    runs_per_host = sql(
        pg_url, "SELECT host, count(DISTINCT run_id) FROM fetches GROUP BY host ORDER BY host"
    )
    assert max(runs for _, runs in runs_per_host) >= 2  # workers took turns on a host


# -- the database restarted -----------------------------------------------------------------------


@pytest.mark.serial  # a 4 s worker timeout: no other test may starve a live worker
def test_workers_carry_on_through_a_postgresql_restart(own_postgres):
    """Down for longer than the worker timeout: every heartbeat is old when it comes back, and
    no worker may take that for the others' death."""
    url = own_postgres.url
    with TreeSite(pages=400, delay=0.02) as site:
        submit(url, [site.url], "restart", "--worker-timeout", "4")
        workers = [start_worker(url, "restart", backend) for backend in BACKENDS]
        wait_until(lambda: sql(url, "SELECT count(*) FROM pages")[0][0] >= 60, what="60 pages")
        own_postgres._pg_ctl("-m", "fast", "-w", "stop")
        time.sleep(6)
        own_postgres._pg_ctl("-w", "start")
        ended = finish(workers)
    assert [code for code, _ in ended] == [0, 0, 0], ended
    assert sql(url, "SELECT count(*) FROM pages")[0][0] == 400
    stored_once(url)
    assert {row[0] for row in sql(url, "SELECT state FROM runs")} == {"finished"}


def test_a_worker_whose_database_stays_down_gives_up_with_one_line(own_postgres):
    url = own_postgres.url
    with TreeSite(pages=300, delay=0.05) as site:
        submit(url, [site.url], "down")
        worker = start_worker(url, "down", "threads", 4, env={"CRAWLER_DB_RETRY_S": "4"})
        wait_until(lambda: sql(url, "SELECT count(*) FROM pages")[0][0] >= 20, what="20 pages")
        own_postgres._pg_ctl("-m", "fast", "-w", "stop")
        stopped = time.monotonic()
        ((code, stderr),) = finish([worker], timeout=60)
    assert time.monotonic() - stopped < 30  # it gave up after its window, and did not hang
    assert code == 1
    lines = [line for line in stderr.splitlines() if line.startswith("crawler: error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert "lost database" in lines[0] and "join it again with `crawler worker down`" in lines[0]


# -- one clock ------------------------------------------------------------------------------------


def test_a_worker_whose_clock_is_ten_minutes_ahead_leases_nothing_twice(pg_url):
    """libfaketime moves the worker's clock 600 s on. Deciding on its own clock, it would take
    every lease of the other worker for lapsed (and bury it): URLs fetched twice."""
    faketime = shutil.which("faketime")
    assert faketime, "libfaketime is needed: apt-get install faketime (.ci/run installs it)"
    ahead = subprocess.run(
        [
            faketime,
            "-f",
            "+600s",
            sys.executable,
            "-c",
            "import time; print(time.time())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert float(ahead.stdout) - time.time() > 590  # the clock really is off
    with TreeSite(pages=300, delay=0.03) as site:
        submit(pg_url, [site.url], "skewed", "--worker-timeout", "10")
        honest = start_worker(pg_url, "skewed", "asyncio", 4)
        wait_until(lambda: run_of(pg_url, honest.pid), what="the first run")
        skewed = start_worker(pg_url, "skewed", "threads", 4, prefix=(faketime, "-f", "+600s"))
        ended = finish([honest, skewed])
    assert [code for code, _ in ended] == [0, 0], ended
    assert sql(pg_url, "SELECT count(*) FROM pages")[0][0] == 300
    assert (
        sql(pg_url, "SELECT frontier_id FROM fetches GROUP BY frontier_id HAVING count(*) > 1")
        == []
    )
    assert {row[0] for row in sql(pg_url, "SELECT state FROM runs")} == {"finished"}
    per_run = sql(
        pg_url,
        "SELECT run_id, count(*), min(started_at), max(started_at) FROM fetches GROUP BY run_id",
    )
    assert len(per_run) == 2 and all(count > 0 for _, count, _, _ in per_run)
    # The skewed worker's times were written on the database's clock too, and its queue
    # waits measured on its own.
    assert all(abs(first - time.time()) < 120 for _, _, first, _ in per_run)
    assert sql(pg_url, "SELECT max(queue_wait_s) FROM fetches")[0][0] < 60


# -- bad input ------------------------------------------------------------------------------------


def test_submit_and_worker_say_what_is_wrong(tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    missing = cli("worker", "nothing", "--db", db)
    assert missing.returncode == 2
    assert "crawl first, or point --db" in missing.stderr and "Traceback" not in missing.stderr
    assert not (tmp_path / "c.db").exists()  # a worker never creates a database
    unnamed = cli("submit", "http://127.0.0.1:9/")
    assert unnamed.returncode == 2 and "--name" in unnamed.stderr
    too_short = cli("submit", "http://127.0.0.1:9/", "--name", "x", "--worker-timeout", "1")
    assert too_short.returncode == 2 and "--worker-timeout" in too_short.stderr
    with TreeSite(pages=3) as site:
        submit(db, [site.url], "once")
        waiting = json.loads(cli("status", "once", "--json", "--db", db).stdout)
        assert waiting["crawl"]["state"] == "submitted"
        assert waiting["crawl"]["next_step"] == f"crawler worker once --db {db}"
        assert waiting["verdict"].startswith("submitted, 1 URLs queued")
        again = cli("submit", site.url, "--name", "once", "--db", db)
        assert again.returncode == 2 and "crawler worker once" in again.stderr
        same = cli("submit", site.url, "--name", "once", "--exists-ok", "--db", db)
        assert same.returncode == 0 and "exists already, the same" in same.stdout
        other = cli(
            "submit", site.url, "--name", "once", "--max-pages", "2", "--exists-ok", "--db", db
        )
        assert other.returncode == 2 and "other seeds or settings" in other.stderr
        unknown = cli("worker", "twice", "--db", db)
        assert unknown.returncode == 2 and "no crawl 'twice'" in unknown.stderr
        done = cli("worker", "once", "--json", "--db", db)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["pages"] == 3
        idle = cli("worker", "once", "--db", db)  # finished: exits at once, starts no run
        assert idle.returncode == 0 and "nothing for a worker to do" in idle.stdout
    assert sql(db, "SELECT count(*) FROM runs")[0][0] == 1


def test_a_lock_held_by_a_stalled_run_is_ended_when_the_run_is_buried(pg_url):
    """A run stopped while a statement was on its way: the server does not see it idle, no
    timeout ends its transaction, and it holds its host's row. Burial must end that session."""
    import psycopg

    with TreeSite(pages=60, delay=0.01) as site:
        submit(pg_url, [site.url], "stalled", "--worker-timeout", "3")
        (crawl_id,) = sql(pg_url, "SELECT id FROM crawls WHERE name = 'stalled'")[0]
        plain = pg_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain, autocommit=True) as setup:
            setup.execute(
                "INSERT INTO runs (crawl_id, frontend, concurrency, hostname, pid, state,"
                " started_at, heartbeat_at, pages, fetches, errors) VALUES (%s, 'threads', 4,"
                " 'another-machine', 1, 'running', now(), extract(epoch from now()) - 100,"
                " 0, 0, 0)",
                [crawl_id],
            )
        holder = psycopg.connect(plain, application_name="crawler")
        holder.execute("SELECT id FROM hosts WHERE crawl_id = %s FOR UPDATE", [crawl_id])
        time.sleep(3.5)  # its transaction is now older than the worker timeout
        worker = start_worker(pg_url, "stalled", "asyncio", 4)
        ((code, stderr),) = finish([worker], timeout=60)
        assert code == 0, stderr
        with pytest.raises(psycopg.OperationalError):
            holder.execute("SELECT 1")  # its session was ended
        holder.close()
    assert sql(pg_url, "SELECT count(*) FROM pages")[0][0] == 60
    states = sql(pg_url, "SELECT hostname, state FROM runs ORDER BY id")
    assert states == [("another-machine", "dead"), (states[1][0], "finished")]
