"""`crawler browse`: a crawl of the fixture site served by Datasette, read-only. The canned
queries answer through Datasette's JSON API; headless Chromium (Debian's `chromium`, which
.ci/run installs) opens the pages and sees no console errors; the file is never written."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import crawler
from crawler.errors import UsageError
from crawler.query.browse import serve
from fixtures.expected import EXPECTED, TITLES
from tests.helpers import ROOT, cli

CHROMIUM = Path("/usr/bin/chromium")
READY_TIMEOUT_S = 90  # a cold start of the CLI and Datasette on a busy two-core machine
HTTP_TIMEOUT_S = 30


@pytest.fixture(scope="module")
def crawled(fixture_site, tmp_path_factory) -> tuple[str, Path]:
    """The fixture site crawled once; each test browses a copy of the file."""
    path = tmp_path_factory.mktemp("browse") / "site.db"
    summary = crawler.crawl([fixture_site], db=f"sqlite:///{path}", name="site", concurrency=4)
    assert summary.state == "finished"
    return fixture_site.rstrip("/"), path


@pytest.fixture
def db_copy(crawled, tmp_path) -> Path:
    path = tmp_path / "crawl.db"
    shutil.copyfile(crawled[1], path)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
        return json.load(response)


class Browse:
    """A running `crawler browse --port 0`: the URL it printed, its output, its process."""

    def __init__(self, process: subprocess.Popen, log: Path) -> None:
        self.process = process
        self.log = log
        self.url = ""
        self.returncode: int | None = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> None:
        """Poll for the printed URL, then Datasette's /-/versions.json, until it answers."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"browse exited early:\n{self.output()}"
            found = re.search(r" on (http://\S+/) ", self.output())
            if found:
                self.url = found.group(1)
                with contextlib.suppress(OSError):
                    get_json(self.url + "-/versions.json")
                    return
            time.sleep(0.2)
        raise AssertionError(f"browse not ready after {READY_TIMEOUT_S} s:\n{self.output()}")

    def stop(self) -> int:
        """SIGTERM (what a service manager sends), then SIGKILL should it hang."""
        if self.returncode is None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            try:
                self.returncode = self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.returncode = self.process.wait(timeout=30)
                raise AssertionError(f"browse ignored SIGTERM:\n{self.output()}") from None
        return self.returncode


@contextlib.contextmanager
def browsing(db: Path, log: Path) -> Iterator[Browse]:
    """`crawler browse --db FILE --port 0` (the system picks a free port and the command says
    which), ready to answer; always stopped on the way out, even when the test fails."""
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "crawler", "browse", "--db", f"sqlite:///{db}", "--port", "0"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    browse = Browse(process, log)
    try:
        browse.wait_ready()
        yield browse
    finally:
        with contextlib.suppress(AssertionError):
            browse.stop()


def canned(browse: Browse, query: str, **params: str) -> list[dict]:
    args = urllib.parse.urlencode({"_shape": "array", **params})
    return get_json(f"{browse.url}crawl/{query}.json?{args}")


def test_browse_answers_the_canned_queries_and_its_pages_have_no_console_errors(
    crawled, db_copy, tmp_path
):
    origin = crawled[0]
    before = sha256(db_copy)
    with browsing(db_copy, tmp_path / "browse.log") as browse:
        assert "(immutable)" in browse.output()
        check_canned_queries(browse, origin)
        check_facets(browse)
        check_pages_in_chromium(browse, origin)
        assert browse.stop() == 0, browse.output()
    assert sha256(db_copy) == before, "browsing changed the database file"


def check_canned_queries(browse: Browse, origin: str) -> None:
    broken = canned(browse, "broken_links")
    assert [(r["broken_url"], r["status"], r["on_page"], r["anchor_text"]) for r in broken] == [
        (f"{origin}/missing.html", 404, f"{origin}/links.html", "A page that does not exist")
    ]
    assert canned(browse, "broken_links", crawl="site") == broken
    assert canned(browse, "broken_links", crawl="another") == []

    errors = canned(browse, "errors_by_kind")
    assert [(r["error_kind"], r["status"], r["attempts"], r["urls"]) for r in errors] == [
        (None, 404, 1, 1)
    ]

    (host,) = canned(browse, "slowest_hosts")
    assert host["host"] == urllib.parse.urlsplit(origin).netloc
    assert (host["fetches"], host["urls"], host["pages"], host["errors"]) == (
        len(EXPECTED),
        len(EXPECTED),
        len(TITLES),
        1,
    )
    assert 0 < host["median_s"] <= host["p90_s"] <= host["max_s"]

    story = canned(browse, "url_story", url=f"{origin}/old/")
    assert [(r["what"], r["status"], r["outcome"]) for r in story] == [
        ("frontier", None, "done"),
        ("attempt", 302, "redirect"),
        ("link in", None, "Link Edge Cases"),
    ]
    assert story[1]["detail"].startswith(f"to {origin}/moved/")
    assert story[1]["total_s"] > 0

    about = canned(browse, "url_story", url=f"{origin}/about.html")
    assert {r["what"] for r in about} == {"frontier", "attempt", "page", "link in", "link out"}
    assert [r["url"] for r in about if r["what"] == "link out"] == [
        f"{origin}/",
        f"{origin}/team.html",
        f"{origin}/contact.html",
    ]


def check_facets(browse: Browse) -> None:
    fetches = get_json(f"{browse.url}crawl/fetches.json?_size=1")
    assert {"status", "error_kind"} <= fetches["facet_results"].keys()
    statuses = {r["value"]: r["count"] for r in fetches["facet_results"]["status"]["results"]}
    assert statuses[404] == 1 and statuses[200] == list(EXPECTED.values()).count(200)
    frontier = get_json(f"{browse.url}crawl/frontier.json?_size=1")
    assert {"state", "host"} <= frontier["facet_results"].keys()


def check_pages_in_chromium(browse: Browse, origin: str) -> None:
    """Each page loads, scripts included, with no console error and no uncaught exception.
    A missing page comes last: its 404 must be caught, so the listener is known to work."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "Debian's chromium is missing: apt-get install chromium"
    story = urllib.parse.urlencode({"url": f"{origin}/about.html"})
    headings = {
        "": "Crawl database",
        "crawl": "crawl",
        "crawl/broken_links": "Broken links",
        f"crawl/url_story?{story}": "One URL's story",
        "crawl/fetches": "fetches",
    }
    problems: list[str] = []

    def on_console(message) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    with sync_playwright() as playwright:
        # Playwright drives the system's chromium: no browser download (`playwright install`).
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, timeout=120_000
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.on("console", on_console)
            page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
            for path, heading in headings.items():
                response = page.goto(browse.url + path, wait_until="networkidle")
                assert response is not None and response.status == 200, path
                assert heading in page.locator("h1").first.inner_text(), path
                assert problems == [], f"/{path}: {problems}"
                if path == "crawl/broken_links":
                    rows = page.locator("table.rows-and-columns").inner_text()
                    assert f"{origin}/missing.html" in rows
                if path == "crawl/fetches":
                    assert page.locator("#facet-status").count() == 1
                    assert page.locator("#facet-error_kind").count() == 1
            page.goto(browse.url + "crawl/no_such_table", wait_until="networkidle")
            assert any("404" in problem for problem in problems), problems
        finally:
            browser.close()


def test_a_crawl_with_a_pending_write_ahead_log_is_browsed_live_and_left_untouched(
    db_copy, tmp_path
):
    """A running crawl keeps its latest rows in the -wal: immutable would hide them, so the
    file is opened read-only (not immutable) and the new rows show; nothing is written."""
    writer = sqlite3.connect(db_copy)  # the crawl is in WAL mode; this keeps its log open
    try:
        writer.execute(
            "INSERT INTO crawls (name, seeds, settings, state, urls_started, created_at) "
            "VALUES ('live', '[]', '{}', 'running', 0, '2024-01-01 00:00:00')"
        )
        writer.commit()
        wal = Path(f"{db_copy}-wal")
        assert wal.stat().st_size > 0
        before = (sha256(db_copy), sha256(wal))
        with browsing(db_copy, tmp_path / "browse.log") as browse:
            assert "read-only, live" in browse.output()
            rows = get_json(f"{browse.url}crawl/crawls.json?_shape=array")
            assert {r["name"] for r in rows} == {"site", "live"}
            assert browse.stop() == 0, browse.output()
        assert (sha256(db_copy), sha256(wal)) == before
    finally:
        writer.close()


def test_postgresql_is_refused_by_its_url_and_pointed_at_crawler_sql():
    with pytest.raises(UsageError, match=r"SQLite files only.*`crawler sql \"SELECT") as raised:
        serve("postgresql+psycopg://user:secret@127.0.0.1:1/crawl")
    assert raised.value.exit_code == 2 and "secret" not in str(raised.value)
    result = cli("browse", "--db", "postgresql://user:secret@127.0.0.1:1/crawl")
    assert result.returncode == 2, result.stderr
    assert "crawler sql" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_missing_file_is_one_clear_error_and_is_not_created(tmp_path):
    missing = tmp_path / "none.db"
    with pytest.raises(UsageError, match=f"there is no database at {re.escape(str(missing))}"):
        serve(f"sqlite:///{missing}")
    assert not missing.exists()


def test_without_datasette_it_says_how_to_install(db_copy, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasette.app", None)  # importing it fails
    with pytest.raises(UsageError, match=r"needs Datasette.*pip install 'datasette=="):
        serve(f"sqlite:///{db_copy}")


def test_a_busy_port_is_one_clear_error(db_copy):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UsageError, match=f"cannot serve on 127.0.0.1:{port}: .*--port"):
            serve(f"sqlite:///{db_copy}", port=port)
