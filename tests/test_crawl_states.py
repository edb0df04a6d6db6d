"""What `crawls` and `status` say about a crawl that is running, was interrupted, or is stuck
with leases nobody will take back, on SQLite and PostgreSQL, with real processes stopped by
Ctrl-C and by SIGKILL."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from sqlalchemy import text

from crawler.store import make_engine
from tests.helpers import FixtureServer, cli, start_crawler

SLOW_SITE = ("--pages", "300", "--latency-ms", "400", "--seed", "5")  # 60 s at 2 at once


def listed(db: str) -> dict:
    result = cli("crawls", "--json", "--db", db)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[0])


def status(db: str) -> dict:
    result = cli("status", "slow", "--json", "--db", db)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_for_pages(db: str, crawler: subprocess.Popen, pages: int = 3) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert crawler.poll() is None, "the crawl ended before it could be stopped"
        result = cli("crawls", "--json", "--db", db)
        if result.returncode == 0 and result.stdout.strip():
            crawl = json.loads(result.stdout.splitlines()[0])
            if crawl["pages"] >= pages:
                return crawl
        time.sleep(0.3)
    raise AssertionError("no pages after 60 s")


def start(site: str, db: str) -> subprocess.Popen:
    return start_crawler("crawl", site, "--name", "slow", "--concurrency", "2", "--db", db)


def test_a_crawl_is_running_then_interrupted_by_ctrl_c(any_db):
    with FixtureServer(*SLOW_SITE) as site:
        crawler = start(site.url, any_db)
        try:
            running = wait_for_pages(any_db, crawler)
            assert (running["state"], running["live_runs"]) == ("running", 1)
            assert status(any_db)["verdict"].startswith("running: 1 live run")
            crawler.send_signal(signal.SIGINT)
            assert crawler.wait(60) == 130
        finally:
            crawler.kill()
    crawl = listed(any_db)
    assert crawl["state"] == "interrupted" and crawl["live_runs"] == 0
    assert crawl["next_step"] == f"crawler resume slow --db {any_db}"
    verdict = status(any_db)["verdict"]
    assert (
        verdict.startswith("interrupted with") and f"crawler resume slow --db {any_db}" in verdict
    )
    assert [run["state"] for run in status(any_db)["runs"]] == ["interrupted"]


def test_a_killed_crawl_is_stuck_once_its_leases_lapse_and_a_resume_mends_it(any_db):
    with FixtureServer(*SLOW_SITE) as site:
        crawler = start(site.url, any_db)
        try:
            wait_for_pages(any_db, crawler)
        finally:
            crawler.kill()  # SIGKILL: the run's row still says running, its leases stay
            crawler.wait(30)
        killed = status(any_db)
        assert killed["crawl"]["state"] == "interrupted"  # its process is gone: not live
        assert [run["state"] for run in killed["runs"]] == ["dead"]
        assert killed["oldest_lease"]["expires_in_s"] > 0

        engine = make_engine(any_db)
        with engine.begin() as conn:
            # Now as if the run were on another machine, where its process cannot be seen:
            # while its leases hold, it is taken to be working.
            conn.execute(text("UPDATE runs SET hostname = 'another-machine'"))
        assert (listed(any_db)["state"], listed(any_db)["live_runs"]) == ("running", 1)
        with engine.begin() as conn:
            # ... and the 120 s a lease lasts have passed: its leases lapsed, it has stored
            # nothing since, and its last heartbeat is as old.
            conn.execute(text("UPDATE runs SET heartbeat_at = heartbeat_at - 1000"))
            conn.execute(text("UPDATE leases SET expires_at = expires_at - 1000"))
            conn.execute(text("UPDATE fetches SET started_at = started_at - 1000"))
        engine.dispose()
        stuck = status(any_db)
        assert stuck["crawl"]["state"] == "stuck" and stuck["crawl"]["urls"]["in_flight"] >= 1
        assert stuck["verdict"].startswith("stuck: ")
        assert f"crawler resume slow --db {any_db}" in stuck["verdict"]
        assert stuck["oldest_lease"]["expires_in_s"] < 0
        text_view = cli("status", "slow", "--db", any_db).stdout
        assert "stuck" in text_view and "lapsed" in text_view

        pages = stuck["crawl"]["pages"]
        more = str(pages + 5)
        resumed = cli("resume", "slow", "--max-pages", more, "--json", "--db", any_db, timeout=180)
        assert resumed.returncode == 0, resumed.stderr
    done = listed(any_db)  # the lapsed leases were taken back, and the budget is spent
    assert done["state"] == "finished" and done["urls"]["in_flight"] == 0
    assert done["live_runs"] == 0  # the run elsewhere, silent for a lease's time, is dead
    # --max-pages counts URLs leased, the lapsed ones among them: a few more pages at most
    assert pages < done["pages"] <= pages + 5 + stuck["crawl"]["urls"]["in_flight"]
    assert done["urls"]["queued"] > 0
    assert done["next_step"] == f"crawler resume slow --max-pages N --db {any_db}"
