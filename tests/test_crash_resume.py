"""A crawl killed with SIGKILL mid-way, then resumed, stores exactly the page set of an
uninterrupted crawl, with no duplicate rows and an intact database."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.helpers import (
    BACKENDS,
    TreeSite,
    backend_flags,
    cli,
    last_json,
    query,
    start_crawler,
    wait_for_pages,
)


def stored_pages(db_url: str) -> list[str]:
    return [url for (url,) in query(db_url, "SELECT url FROM pages ORDER BY url")]


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkill_then_resume_gives_the_uninterrupted_result(tmp_path, backend):
    with TreeSite(pages=300, delay=0.02) as site:
        reference_db = f"sqlite:///{tmp_path / 'reference.db'}"
        reference = cli("crawl", site.url, "--concurrency", "8", "--json", "--db", reference_db)
        flags = backend_flags(backend)
        assert reference.returncode == 0, reference.stderr
        assert set(stored_pages(reference_db)) == site.expected_urls()

        db_url = f"sqlite:///{tmp_path / 'killed.db'}"
        process = start_crawler("crawl", site.url, *flags, "--name", "killed", "--db", db_url)
        wait_for_pages(db_url, 60)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        partial = len(stored_pages(db_url))
        assert 60 <= partial < 300, "the crawl was not killed mid-way"
        leased = query(db_url, "SELECT count(*) FROM leases")[0][0]
        assert leased > 0, "the kill should have left work in flight"

        started = time.monotonic()
        resumed = cli("resume", "killed", *flags, "--json", "--db", db_url)
        assert resumed.returncode == 0, resumed.stderr
        # The dead run's leases were taken back at once, not after their 120 s expiry.
        assert time.monotonic() - started < 60
        summary = last_json(resumed.stdout)
        assert summary["state"] == "finished" and summary["pages"] == 300

    assert stored_pages(db_url) == stored_pages(reference_db)
    assert query(db_url, "SELECT url FROM pages GROUP BY url HAVING count(*) > 1") == []
    assert query(db_url, "SELECT url FROM frontier GROUP BY url HAVING count(*) > 1") == []
    # every URL has exactly one stored fetch: nothing was written twice
    assert (
        query(db_url, "SELECT frontier_id FROM fetches GROUP BY frontier_id HAVING count(*) > 1")
        == []
    )
    assert (
        query(db_url, "SELECT count(*) FROM links")[0][0]
        == query(reference_db, "SELECT count(*) FROM links")[0][0]
    )
    assert query(db_url, "PRAGMA integrity_check") == [("ok",)]
    runs = dict(query(db_url, "SELECT id, state FROM runs"))
    assert sorted(runs.values()) == ["dead", "finished"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_ctrl_c_or_sigterm_stops_cleanly_and_the_crawl_resumes(tmp_path, stop, backend):
    db_url = f"sqlite:///{tmp_path / 'stopped.db'}"
    with TreeSite(pages=300, delay=0.02) as site:
        process = start_crawler(
            "crawl",
            site.url,
            *backend_flags(backend),
            "--name",
            "stopped",
            "--db",
            db_url,
            output=subprocess.PIPE,
        )
        wait_for_pages(db_url, 40)
        process.send_signal(stop)
        started = time.monotonic()
        _, stderr = process.communicate(timeout=30)
        assert time.monotonic() - started < 5
        assert process.returncode == 130
        assert "Traceback" not in stderr and "crawler resume stopped" in stderr
        assert 40 <= len(stored_pages(db_url)) < 300
        # the stopped run gave its leases back and recorded itself
        assert query(db_url, "SELECT count(*) FROM leases") == [(0,)]
        assert query(db_url, "SELECT state FROM runs") == [("interrupted",)]
        resumed = cli("resume", "stopped", *backend_flags(backend), "--json", "--db", db_url)
        assert resumed.returncode == 0, resumed.stderr
    assert set(stored_pages(db_url)) == site.expected_urls()
    assert query(db_url, "SELECT frontier_id FROM fetches GROUP BY 1 HAVING count(*) > 1") == []


def test_many_interruptions_lose_nothing_and_fail_nothing(tmp_path):
    """Four Ctrl-Cs in a row (more than the 3 attempts a URL gets) and then a full run:
    look-ahead leases that were never tried do not use up attempts."""
    db_url = f"sqlite:///{tmp_path / 'many.db'}"
    with TreeSite(pages=300, delay=0.02) as site:
        command = ["crawl", site.url, "--name", "many"]
        for _ in range(4):
            before = len(stored_pages(db_url)) if os.path.exists(tmp_path / "many.db") else 0
            process = start_crawler(*command, "--concurrency", "8", "--db", db_url)
            wait_for_pages(db_url, before + 15)  # this run is under way
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=10) == 130
            command = ["resume", "many"]
        result = cli("resume", "many", "--json", "--db", db_url)
        assert result.returncode == 0, result.stderr
    assert set(stored_pages(db_url)) == site.expected_urls()
    assert query(db_url, "SELECT count(*) FROM frontier WHERE state != 'done'") == [(0,)]
    assert query(db_url, "SELECT max(attempts) FROM frontier") == [(1,)]


@pytest.mark.parametrize("victim", ["a child", "the fork server"])
def test_a_pool_child_that_dies_loses_nothing(tmp_path, victim):
    """The OOM killer takes a pool child mid-fetch (or the fork server, and so every child it
    forked): the pool replaces them, the lost URLs go back to the frontier after the deadline,
    the crawl ends with every page, and no child outlives it."""
    import psutil

    db_url = f"sqlite:///{tmp_path / 'child.db'}"
    with TreeSite(pages=200, delay=0.05) as site:
        process = start_crawler(
            "crawl",
            site.url,
            "--backend",
            "processes",
            "--concurrency",
            "3",
            "--timeout",
            "2",
            "--json",
            "--db",
            db_url,
            output=subprocess.PIPE,
        )
        wait_for_pages(db_url, 20)
        # the pool's children are the fork server's (beside it: the resource tracker)
        [server] = [
            child
            for child in psutil.Process(process.pid).children()
            if "forkserver" in " ".join(child.cmdline())
        ]
        workers = server.children()
        assert len(workers) == 3
        (workers[0] if victim == "a child" else server).kill()
        stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    for worker in workers:
        assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE
    assert last_json(stdout)["pages"] == 200
    assert set(stored_pages(db_url)) == site.expected_urls()


def test_an_interrupted_crawl_keeps_its_page_budget(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'budget.db'}"
    with TreeSite(pages=300, delay=0.02) as site:
        process = start_crawler(
            "crawl",
            site.url,
            "--max-pages",
            "120",
            "--concurrency",
            "8",
            "--name",
            "budget",
            "--db",
            db_url,
        )
        wait_for_pages(db_url, 30)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 130
        resumed = cli("resume", "budget", "--concurrency", "8", "--json", "--db", db_url)
    assert resumed.returncode == 0, resumed.stderr
    assert last_json(resumed.stdout)["pages"] == 120  # look-ahead leases did not eat it
