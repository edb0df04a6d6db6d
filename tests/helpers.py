"""Test helpers: run the real command line, start real servers on loopback, read the database."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from fixtures.server import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("threads", "processes", "asyncio")


def backend_flags(backend: str, concurrency: int = 8) -> list[str]:
    """`--backend B --concurrency N`; a pool of processes is kept small: each one is a fresh
    interpreter (spawn), and the machines running the tests have two cores."""
    if backend == "processes":
        concurrency = min(concurrency, 4)
    return ["--backend", backend, "--concurrency", str(concurrency)]


def cli(*args: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m crawler ARGS` as a user would, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "crawler", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


def start_crawler(*args: str, output: int | None = subprocess.DEVNULL) -> subprocess.Popen:
    """`python -m crawler ARGS` in the background, as if started at a terminal: Ctrl-C
    reaches it. (A shell that runs commands in the background, as CI may, sets SIGINT to
    ignored, and a child inherits that; Python then never raises KeyboardInterrupt.)"""
    return subprocess.Popen(
        [sys.executable, "-m", "crawler", *args],
        cwd=ROOT,
        stdout=output,
        stderr=output,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def sqlite_path(db_url: str) -> str:
    return db_url.removeprefix("sqlite:///")


def query(db_url: str, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(sqlite_path(db_url), timeout=30) as conn:
        return conn.execute(sql, params).fetchall()


class TreeSite:
    """A generated site served by a threaded server on loopback: page N links to its children
    2N+1 .. 2N+fanout (up to `pages`), back to `/`, and to itself with a fragment. `delay`
    seconds before each answer make a crawl slow enough to be killed mid-way."""

    def __init__(self, pages: int, delay: float = 0.0, fanout: int = 2) -> None:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path == "/robots.txt":  # none: everything allowed
                    site.robots_hits += 1
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                time.sleep(site.delay)
                site.hits.append(self.path)
                number = self.path.removeprefix("/p/").removesuffix(".html")
                if self.path == "/":
                    number = "0"
                if not number.isdigit() or int(number) >= site.pages:
                    body, status = b"<title>missing</title>", 404
                else:
                    n = int(number)
                    children = [c for c in range(n * fanout + 1, n * fanout + fanout + 1)]
                    links = "".join(
                        f'<a href="/p/{c}.html">page {c}</a> ' for c in children if c < site.pages
                    )
                    body = (
                        f"<html><head><title>Page {n}</title></head><body>"
                        f'{links}<a href="/">home</a> <a href="#top">top</a></body></html>'
                    ).encode()
                    status = 200
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.pages = pages
        self.delay = delay
        self.hits: list[str] = []  # pages asked for, robots.txt apart
        self.robots_hits = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def expected_urls(self) -> set[str]:
        return {self.url} | {f"{self.url}p/{n}.html" for n in range(1, self.pages)}

    def __enter__(self) -> TreeSite:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def FixtureServer(*flags: str) -> ServerProcess:
    """`crawler fixtures serve FLAGS` in its own process, on a free port, as users run it."""
    return ServerProcess(*flags, command=[sys.executable, "-m", "crawler", "fixtures", "serve"])


def wait_for_pages(db_url: str, count: int) -> None:
    """Poll the database (as another reader would) until the crawl has stored `count` pages."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if os.path.exists(db_url.removeprefix("sqlite:///")):
            try:
                if query(db_url, "SELECT count(*) FROM pages")[0][0] >= count:
                    return
            except sqlite3.OperationalError:  # the schema may not be there yet
                continue
    raise AssertionError(f"the crawl did not reach {count} pages")
