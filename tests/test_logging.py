"""What `crawler -v` and `-vv` say on stderr, through the real command line: the run's
milestones, a failing host, one line per fetch at debug, and nothing from the libraries or on
stdout."""

from __future__ import annotations

import json
import re
import socket

from tests.helpers import TreeSite, cli, last_json

FAST = ["--retry-backoff", "0.05"]
# The format main() gives logging: "2026-01-01 12:00:00,000 INFO crawler.runner: ..."
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


def log_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if LOG_LINE.match(line)]


def crawl(*args: str) -> tuple[str, str]:
    result = cli(*args, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout, result.stderr


def test_verbose_logs_the_run_start_and_end_on_stderr_and_keeps_stdout_json(db_url):
    with TreeSite(7) as site:
        stdout, stderr = crawl(
            "-v", "crawl", site.url, "--json", "--db", db_url, "--concurrency", "3"
        )
    summary = last_json(stdout)
    assert not log_lines(stdout)
    assert [json.loads(line) for line in stdout.strip().splitlines()][-1] == summary
    lines = log_lines(stderr)
    start = [line for line in lines if "run 1 started" in line]
    assert len(start) == 1 and "threads backend, concurrency 3" in start[0]
    assert "settings changed: none" in start[0]
    end = [line for line in lines if "run 1 finished" in line]
    assert len(end) == 1 and "7 pages, 7 fetches, 0 errors" in end[0]
    assert any("robots.txt of http://127.0.0.1:" in line and "HTTP 404" in line for line in lines)
    # Only our own loggers speak at INFO: Alembic and the HTTP libraries stay quiet.
    assert all(" crawler." in line for line in lines), lines
    assert "alembic" not in stderr.lower()


def test_a_dead_host_logs_its_breaker_and_being_given_up(httpserver, db_url):
    with socket.socket() as spare:
        spare.bind(("127.0.0.2", 0))
        dead_port = spare.getsockname()[1]  # closed again: connections are refused
    links = "".join(f'<a href="http://127.0.0.2:{dead_port}/{n}">{n}</a>' for n in range(200))
    httpserver.expect_request("/").respond_with_data(links, content_type="text/html")
    _, stderr = crawl(
        "-v",
        "crawl",
        httpserver.url_for("/"),
        "--json",
        "--db",
        db_url,
        "--concurrency",
        "4",
        *FAST,
        "--allow-host",
        "127.0.0.2",
        "--breaker-threshold",
        "3",
        "--breaker-cooldown",
        "0.2",
        "--ignore-robots",
    )
    host = f"127.0.0.2:{dead_port}"
    warnings = [line for line in log_lines(stderr) if " WARNING " in line]
    assert any(f"host {host}: breaker opened (1st time), resting" in w for w in warnings), stderr
    given_up = [w for w in warnings if f"host {host} given up" in w]
    assert len(given_up) == 1 and "URLs skipped" in given_up[0], stderr
    assert "settings changed:" in stderr and "breaker_threshold=3" in stderr


def test_debug_logs_one_line_per_fetch_and_quiet_logs_nothing(db_url, tmp_path):
    with TreeSite(7) as site:
        _, debug = crawl("-vv", "crawl", site.url, "--json", "--db", db_url)
        _, quiet = crawl("crawl", site.url, "--json", "--db", f"sqlite:///{tmp_path / 'q.db'}")
    fetched = [line for line in log_lines(debug) if " DEBUG crawler.coordinator: " in line]
    assert len(fetched) == 7
    for path in ["", "p/1.html", "p/6.html"]:
        assert sum(f"fetched {site.url}{path}: 200," in line for line in fetched) == 1
    assert not log_lines(quiet), quiet
