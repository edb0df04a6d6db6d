"""`make bench` (real sites): our crawler against Scrapy on two documentation sets served by
nginx and on a generated site, with every backend and both parsers.

    python -m crawler.bench_sites [--quick] [--repeats 3]

The Python and PostgreSQL manuals (Debian's python3-doc and postgresql-doc-15) are served by
a private nginx on two loopback ports, the generated site by `fixtures.server` (5,000 pages,
50 ms before each first byte). Scrapy lives in a venv of its own (`.bench-venv`, one pinned
version): the crawler never depends on it. Each run is a fresh process timed from start to
exit here, so start-up counts for both sides. Before the runs:

- every HTML file of both manuals is parsed with both of our parsers, which must agree, and
  timed against a bare lxml walk of `<a href>`;
- each site's reachable HTML pages are counted by a small breadth-first walk written here
  with the standard library and lxml only (cached in bench-out/), so that the pages each tool
  stores can be checked against a count that owes nothing to either.

The three count one set, checked page by page in every run (a difference is printed in red):
URLs are compared after RFC 3986 normalisation (the generated site spells one page in many
ways), `/` and `/index.html` are two URLs to all three, as are a page and its `?query` form;
only same-origin `a`/`area` links are followed, robots.txt is obeyed, and only 200 text/html
answers count. Scrapy's start request skips its dupefilter, so a seed that pages link back to
is fetched and yielded twice: its pages are its distinct URLs, and the progress line says so.
`--quick` parses only the Python manual, the one it crawls.

Our runs are kept in bench-out/sites.db (`crawler report 'python-docs/*' --db
sqlite:///bench-out/sites.db` charts them); the table and the issue's targets are printed and
written to bench-out/sites.json. Figures from a shared 2-core machine: compare ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import urllib.robotparser
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import lxml.html
import psutil
from lxml import etree
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from crawler.model import PARSERS
from fixtures.server import ServerProcess

OUT = Path("bench-out")
DB = OUT / "sites.db"
BENCH_VENV = Path(".bench-venv")
SCRAPY_VERSION = "2.19.0"  # the newest Scrapy 2.x on PyPI when this was written
SPIDER = Path(__file__).with_name("bench_scrapy_spider.py")
BACKENDS = ("threads", "processes", "asyncio")  # the crawler's frontends, by their CLI names
PARSER_LABEL = {"beautifulsoup": "bs4", "lxml": "lxml"}
DOCS = {
    "python-docs": ("python3-doc", Path("/usr/share/doc/python3-doc/html")),
    "postgresql-docs": ("postgresql-doc-15", Path("/usr/share/doc/postgresql-doc-15/html")),
}
CHILD_MIB = 45  # a pool child's resident size (crawler.bench): guards the processes backend
RUN_TIMEOUT_S = 1800
WALK_WORKERS = 32  # the reference walk's threads: enough to hide the generated site's 50 ms
# The targets: our fastest frontend with the default parser against Scrapy, by site.
DEFAULT_TARGET = {"python-docs": 1.0, "postgresql-docs": 1.3, "generated": 2.0}
LXML_TARGETS = (("fastest", 3.0), ("asyncio", 2.0), ("threads", 1.0))
USER_AGENT = "bench-sites-walk/1"
PR_SET_CHILD_SUBREAPER = 36  # prctl(2)


@dataclass(frozen=True)
class Site:
    """One site of the matrix: where it is served, and at which concurrencies it is crawled."""

    name: str
    kind: str  # a key of DEFAULT_TARGET
    url: str
    levels: tuple[int, ...]
    cache_key: str  # what the reference count depends on (a package version, the server flags)
    root: Path | None = None  # the files behind it, for a documentation set


@dataclass
class Run:
    """One crawl by one tool, timed by us from process start to exit."""

    site: str
    concurrency: int
    tool: str  # "scrapy", or BACKEND-PARSER_LABEL
    round: int
    pages: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    cpu_reported_s: float | None = None  # the CPU our crawler's own runs row records
    errors: int | None = None  # our crawler's failed fetches (404s of broken links included)
    missing: list[str] = field(default_factory=list)  # reference pages this run did not store
    extra: list[str] = field(default_factory=list)  # pages stored that the reference lacks
    duplicates: list[str] = field(default_factory=list)  # pages Scrapy yielded more than once
    failure: str | None = None  # the tool exited badly: its last words

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.wall_s if self.wall_s and not self.failure else 0.0


# ---------------------------------------------------------------- tools the benchmark needs


def ensure_debian(quick: bool) -> None:
    """Install what is missing of nginx, wrk and the manuals, so a fresh machine can run this."""
    wanted = {"python3-doc": DOCS["python-docs"][1]}
    if not quick:
        wanted["postgresql-doc-15"] = DOCS["postgresql-docs"][1]
    missing = [package for package, path in wanted.items() if not path.is_dir()]
    if not nginx_binary():
        missing.append("nginx-light")
    if not shutil.which("wrk"):
        missing.append("wrk")
    if not missing:
        return
    print(f"installing {' '.join(missing)} with apt-get", flush=True)
    install = ["apt-get", "install", "-y", "-qq", *missing]
    if subprocess.run(install, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(install, stdout=subprocess.DEVNULL, check=True)


def nginx_binary() -> str | None:
    """nginx lives in /usr/sbin, which a non-root PATH may lack."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def ensure_bench_venv() -> Path:
    """The interpreter of a venv holding the pinned Scrapy: kept apart from .venv so the
    crawler's own dependencies never meet Scrapy's. A stamp file skips the check next time."""
    python = BENCH_VENV / "bin" / "python"
    stamp = BENCH_VENV / f".scrapy-{SCRAPY_VERSION}"
    if python.exists() and stamp.exists():
        return python
    print(f"setting up {BENCH_VENV} with Scrapy {SCRAPY_VERSION}", flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, f"scrapy=={SCRAPY_VERSION}"], check=True)
    stamp.touch()
    return python


def package_version(package: str) -> str:
    """The installed Debian version: the reference count of a manual holds while it holds."""
    result = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True
    )
    return result.stdout.strip() or "unknown"


# ---------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def nginx_config(folder: Path, servers: dict[int, Path]) -> str:
    """A config that writes nothing outside `folder`: no daemon, no access log. Symlinks are
    followed (nginx's default), which the Python manual's static files need."""
    without = subprocess.run([nginx_binary(), "-V"], capture_output=True, text=True).stderr
    temp_paths = "\n".join(
        f"    {kind}_temp_path {folder / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        if f"--without-http_{kind}_module" not in without
    )
    blocks = "\n".join(
        f"    server {{ listen 127.0.0.1:{port}; root {root}; }}" for port, root in servers.items()
    )
    return f"""daemon off;
master_process on;
worker_processes 1;
pid {folder / "nginx.pid"};
error_log {folder / "error.log"} warn;
events {{ worker_connections 4096; }}
http {{
    types {{
        text/html html htm; text/plain txt; text/css css; application/javascript js;
        image/png png; image/gif gif; image/jpeg jpg jpeg; image/svg+xml svg;
        application/pdf pdf; application/zip zip; application/json json;
    }}
    default_type application/octet-stream;
    access_log off;
    sendfile on;
{temp_paths}
{blocks}
}}
"""


@contextlib.contextmanager
def nginx(roots: dict[str, Path]) -> Iterator[dict[str, str]]:
    """nginx as our child, one server per folder on a free loopback port: {name: base URL}.
    Stopped on the way out, whatever the way."""
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as scratch:
        folder = Path(scratch)
        ports = {name: free_port() for name in roots}
        config = folder / "nginx.conf"
        config.write_text(nginx_config(folder, {ports[n]: root for n, root in roots.items()}))
        command = [nginx_binary(), "-p", str(folder), "-c", str(config), "-e", "stderr"]
        with open(folder / "stderr.log", "w+") as log:
            process = subprocess.Popen(command, stdout=log, stderr=log)
            try:
                wait_listening(process, ports.values(), log)
                yield {name: f"http://127.0.0.1:{port}/" for name, port in ports.items()}
            finally:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def wait_listening(process: subprocess.Popen, ports: Iterable[int], log) -> None:
    """Until every port accepts a connection; nginx's own words if it exits instead."""
    deadline = time.monotonic() + 10
    for port in ports:
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"nginx did not start: {log.read().strip()}")
            time.sleep(0.05)


def server_capacity(url: str) -> float | None:
    """Requests/s nginx serves the home page at with 16 connections for one second (wrk):
    far above any crawler's rate, or the server would be what is measured."""
    result = subprocess.run(
        ["wrk", "-t1", "-c16", "-d1s", url], capture_output=True, text=True, check=False
    )
    found = re.search(r"Requests/sec:\s*([\d.]+)", result.stdout)
    return float(found[1]) if found else None


# ---------------------------------------------------------------- the reference count

_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _percent(text: str) -> str:
    """RFC 3986 percent-normalisation: what must be escaped is, escapes of unreserved
    characters are decoded (`%70` is `p`), the rest upper-cased."""
    escaped = quote(text, safe="/%:@!$&'()*+,;=?~[]")

    def fix(match: re.Match[str]) -> str:
        char = chr(int(match[1], 16))
        return char if char in _UNRESERVED else "%" + match[1].upper()

    return _ESCAPE.sub(fix, escaped)


def _remove_dots(path: str) -> str:
    """RFC 3986 remove_dot_segments, which urljoin skips for a link that is already absolute."""
    if "." not in path:
        return path
    out: list[str] = []
    segments = path.split("/")[1:]
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        elif segment == ".":
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/" + "/".join(out)


def normalise(url: str) -> str | None:
    """The URL a page is counted under (RFC 3986 normalisation, no fragment, query kept as
    written), or None for what is not http. Applied to every tool's URLs alike, so that two
    spellings of one page never count twice."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "http" or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    netloc = parts.hostname.lower() + (f":{port}" if port not in (None, 80) else "")
    path = _remove_dots(_percent(parts.path or "/"))
    return urlunsplit(("http", netloc, path, _percent(parts.query), ""))


def path_of(url: str) -> str:
    """A normalised URL without its origin: the reference is cached across ports."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


@dataclass
class Visit:
    """What one GET answered: the URL after redirects, whether it is a 200 HTML page, its
    links."""

    url: str
    html: bool = False
    status: int | None = None
    links: tuple[str, ...] = ()


def visit(url: str, opener: urllib.request.OpenerDirector) -> Visit:
    """GET one URL (redirects followed by urllib); only an HTML body is read."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with opener.open(request, timeout=60) as response:
            final = normalise(response.geturl()) or url
            html = response.status == 200 and response.headers.get_content_type() == "text/html"
            if not html:
                return Visit(final, status=response.status)
            return Visit(final, True, 200, tuple(links_of(final, response.read())))
    except urllib.error.HTTPError as error:
        return Visit(url, status=error.code)
    except (urllib.error.URLError, OSError):
        return Visit(url)  # no answer: counted under None


def links_of(url: str, body: bytes) -> Iterator[str]:
    """`<a href>` and `<area href>` resolved against `<base href>` or the page, as a browser
    resolves them (tabs and newlines dropped, spaces trimmed)."""
    try:
        document = lxml.html.document_fromstring(body)
    except (etree.ParserError, ValueError):
        return
    base = url
    for element in document.iter("base"):
        if element.get("href"):
            base = urljoin(url, _clean(element.get("href")))
            break
    for element in document.iter("a", "area"):
        href = element.get("href")
        if href is not None:
            found = normalise(urljoin(base, _clean(href)))
            if found:
                yield found


def _clean(href: str) -> str:
    return re.sub(r"[\t\n\r]", "", href).strip().replace("\\", "/")


def reference_walk(seed: str) -> dict:
    """Breadth-first, level by level, from the seed: every same-origin link is requested once
    (robots.txt obeyed, as both crawlers obey it), and the 200 text/html answers counted."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    start = normalise(seed)
    origin = urlsplit(start).netloc
    robots = urllib.robotparser.RobotFileParser(urljoin(start, "/robots.txt"))
    with contextlib.suppress(OSError):
        robots.read()
    seen, pages, statuses, disallowed = {start}, set(), {}, 0
    level = [start]
    with ThreadPoolExecutor(WALK_WORKERS) as pool:
        while level:
            following: list[str] = []
            for answer in pool.map(lambda url: visit(url, opener), level):
                seen.add(answer.url)
                key = "html" if answer.html else str(answer.status)
                statuses[key] = statuses.get(key, 0) + 1
                if answer.html and urlsplit(answer.url).netloc == origin:
                    pages.add(answer.url)
                for link in answer.links:
                    if urlsplit(link).netloc != origin or link in seen:
                        continue
                    seen.add(link)
                    if robots.can_fetch(USER_AGENT, link):
                        following.append(link)
                    else:
                        disallowed += 1
            level = following
    return {
        "pages": sorted(path_of(url) for url in pages),
        "requested": sum(statuses.values()),
        "answers": statuses,  # "html", or the status of the rest (None: no answer)
        "disallowed_by_robots": disallowed,
    }


def reference(site: Site, console: Console) -> dict:
    """The reference walk of a site, from bench-out/ when its cache key still holds."""
    cache = OUT / f"reachable-{site.name}.json"
    if cache.exists():
        cached = json.loads(cache.read_text())
        if cached.get("key") == site.cache_key:
            console.print(f"reference of {site.name}: {len(cached['pages'])} HTML pages ({cache})")
            return cached
    started = time.perf_counter()
    found = {"key": site.cache_key, **reference_walk(site.url)}
    found["walk_s"] = round(time.perf_counter() - started, 1)
    OUT.mkdir(exist_ok=True)
    cache.write_text(json.dumps(found, indent=1))
    console.print(
        f"reference walk of {site.name}: {len(found['pages'])} HTML pages"
        f" of {found['requested']} URLs requested in {found['walk_s']} s",
        highlight=False,
    )
    return found


# ---------------------------------------------------------------- parser agreement


def doc_files(root: Path, base_url: str) -> list[tuple[str, bytes]]:
    """Every HTML file of a manual with the URL nginx serves it at."""
    found = []
    for folder, _, names in os.walk(root, followlinks=True):
        for name in sorted(names):
            if name.endswith(".html"):
                path = Path(folder, name)
                found.append((base_url + quote(str(path.relative_to(root))), path.read_bytes()))
    return sorted(found)


def parser_agreement(name: str, files: list[tuple[str, bytes]]) -> dict:
    """Both parsers over every page: the pages that differ (must be none), the first
    difference, and CPU per page for each and for a bare lxml walk of `<a href>`."""
    from crawler.parse import parse_page  # only here: the rest of the module never needs it

    headers = {"content-type": "text/html"}
    parsed: dict[str, list] = {}
    cpu_ms: dict[str, float] = {}
    for parser in PARSERS:
        started = time.process_time()
        with warnings.catch_warnings():  # bs4 on the XHTML manual: "looks like XML", each time
            warnings.filterwarnings("ignore", message=".*looks like you're using an HTML parser")
            parsed[parser] = [parse_page(url, body, headers, parser) for url, body in files]
        cpu_ms[parser] = (time.process_time() - started) * 1000 / len(files)
    started = time.process_time()
    for _, body in files:
        for anchor in lxml.html.document_fromstring(body).iter("a"):
            anchor.get("href")
    cpu_ms["lxml baseline"] = (time.process_time() - started) * 1000 / len(files)
    differing = [
        (url, a, b) for (url, _), a, b in zip(files, *parsed.values(), strict=True) if a != b
    ]
    return {
        "site": name,
        "pages": len(files),
        "differing": len(differing),
        "first_difference": first_difference(*differing[0]) if differing else None,
        "cpu_ms_per_page": {key: round(value, 2) for key, value in cpu_ms.items()},
    }


def first_difference(url: str, one, other) -> str:
    """The first field (or link) in which two ParsedPages differ, readably."""
    for name in ("title", "canonical", "charset", "content_hash", "meta_nofollow"):
        if getattr(one, name) != getattr(other, name):
            return f"{url}: {name} {getattr(one, name)!r} vs {getattr(other, name)!r}"
    for index, (a, b) in enumerate(zip(one.links, other.links, strict=False)):
        if a != b:
            return f"{url}: link {index}: {a!r} vs {b!r}"
    return f"{url}: {len(one.links)} links vs {len(other.links)}"


# ---------------------------------------------------------------- runs


def become_subreaper() -> bool:
    """Have a run's orphans handed to us rather than to init (Linux): the processes backend's
    fork server outlives the crawler's own process by a moment, and its pool's CPU reaches
    RUSAGE_CHILDREN only through it, once it is reaped by a waiting ancestor."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap_adopted(known: set[int]) -> None:
    """Wait for the descendants a run left to us (not the servers we started), so that their
    CPU is counted; one still alive after 30 s is killed, by its pid."""
    deadline = time.monotonic() + 30
    while adopted := [c.pid for c in psutil.Process().children() if c.pid not in known]:
        for pid in adopted:
            with contextlib.suppress(ChildProcessError):
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.02)


def timed(command: list[str]) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run a command to its end: its result, wall seconds from start to exit, and the CPU
    seconds it and all its descendants used (getrusage of reaped children, before and after)."""
    known = {child.pid for child in psutil.Process().children()}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired as expired:  # killed by run(); the others still run
        result = subprocess.CompletedProcess(command, -9, "", f"timed out: {expired.timeout} s")
    wall = time.perf_counter() - started
    reap_adopted(known)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result, wall, cpu


def last_words(result: subprocess.CompletedProcess) -> str:
    lines = (result.stderr or result.stdout or "").strip().splitlines()
    return f"exit {result.returncode}: {lines[-1] if lines else 'no output'}"


def run_ours(site: Site, tool: str, concurrency: int, round_: int) -> tuple[Run, set[str]]:
    """One crawl by our crawler into bench-out/sites.db, and the URLs of the pages it stored."""
    backend, label = tool.split("-")
    parser = next(name for name, short in PARSER_LABEL.items() if short == label)
    name = f"{site.name}/{tool}-c{concurrency}-r{round_}"
    run = Run(site.name, concurrency, tool, round_)
    if backend == "processes":
        needed = concurrency * CHILD_MIB * 1.5
        free = psutil.virtual_memory().available / 2**20
        if needed > free:
            run.failure = f"skipped: needs ~{needed:,.0f} MiB, {free:,.0f} free"
            return run, set()
    command = [
        sys.executable, "-m", "crawler", "crawl", site.url, "--backend", backend,
        "--concurrency", str(concurrency), "--parser", parser, "--json",
        "--db", f"sqlite:///{DB}", "--name", name,
    ]  # fmt: skip
    result, run.wall_s, run.cpu_s = timed(command)
    try:
        summary = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        summary = {}
    if result.returncode != 0 or summary.get("state") != "finished":
        run.failure = last_words(result)
    run.pages, run.errors = summary.get("pages") or 0, summary.get("errors")
    run.cpu_reported_s = (summary.get("run") or {}).get("cpu_s")
    urls = []
    with contextlib.suppress(sqlite3.Error), contextlib.closing(sqlite3.connect(DB)) as conn:
        urls = conn.execute(
            "SELECT p.url FROM pages p JOIN crawls c ON c.id = p.crawl_id WHERE c.name = ?",
            (name,),
        ).fetchall()
    stored = {normalise(url) for (url,) in urls}
    if len(urls) != run.pages:
        run.failure = (run.failure or "") + f" JSON says {run.pages} pages, db has {len(urls)}"
    return run, stored


def run_scrapy(
    site: Site, python: Path, concurrency: int, round_: int, scratch: Path
) -> tuple[Run, set[str]]:
    """One Scrapy crawl; its pages are the items of its JSON lines feed."""
    feed = scratch / f"scrapy-{site.name}-c{concurrency}-r{round_}.jsonl"
    run = Run(site.name, concurrency, "scrapy", round_)
    result, run.wall_s, run.cpu_s = timed(
        [str(python), "-P", str(SPIDER), site.url, str(concurrency), str(feed)]
    )
    items = [json.loads(line) for line in feed.read_text().splitlines()] if feed.exists() else []
    if result.returncode != 0 or not feed.exists():
        run.failure = last_words(result)
    urls = Counter(normalise(item["url"]) for item in items)
    # Scrapy's start requests skip the dupefilter, so a seed that pages link back to is
    # fetched and yielded twice. Pages are the distinct URLs, as the others count them.
    run.duplicates = sorted(url for url, count in urls.items() if count > 1)
    run.pages = len(urls)
    log = OUT / "scrapy-last.log"
    log.write_text(result.stderr)  # the last run's log, for a look when a count is off
    return run, set(urls)


def compare(run: Run, stored: set[str], expected: set[str]) -> None:
    """Which reference pages a run missed and which it stored beyond them (by path)."""
    paths = {path_of(url) for url in stored if url}
    run.missing = sorted(expected - paths)
    run.extra = sorted(paths - expected)


def tools() -> list[str]:
    return ["scrapy", *(f"{b}-{PARSER_LABEL[p]}" for b in BACKENDS for p in PARSERS)]


def matrix(
    sites: list[Site], references: dict[str, dict], python: Path, repeats: int, console: Console
) -> list[Run]:
    """Every tool on every site and concurrency, `repeats` rounds, the order rotated each
    round so that a machine's drift falls on all tools alike."""
    order, runs = tools(), []
    total = sum(len(site.levels) for site in sites) * repeats * len(order)
    with tempfile.TemporaryDirectory(prefix="bench-scrapy-") as scratch:
        for site in sites:
            expected = set(references[site.name]["pages"])
            for concurrency in site.levels:
                for round_ in range(1, repeats + 1):
                    shift = (round_ - 1) % len(order)
                    for tool in order[shift:] + order[:shift]:
                        if tool == "scrapy":
                            run, stored = run_scrapy(
                                site, python, concurrency, round_, Path(scratch)
                            )
                        else:
                            run, stored = run_ours(site, tool, concurrency, round_)
                        compare(run, stored, expected)
                        runs.append(run)
                        progress(console, len(runs), total, run, len(expected))
    return runs


def progress(console: Console, done: int, total: int, run: Run, expected: int) -> None:
    """One line per run, so that a long benchmark shows life."""
    line = (
        f"[{done}/{total}] {run.site} c{run.concurrency} r{run.round} {run.tool:<14}"
        f" {run.pages:>5} pages in {run.wall_s:6.2f} s = {run.pages_per_s:7.1f} pages/s,"
        f" CPU {run.cpu_s:6.2f} s"
    )
    if run.cpu_reported_s is not None:
        line += f" (its runs row: {run.cpu_reported_s:.2f} s)"
    if run.errors:
        line += f", {run.errors} failed fetches"
    if run.duplicates:
        line += f", fetched twice: {', '.join(map(path_of, run.duplicates))}"
    if run.pages != expected or run.missing or run.extra:
        line += f"  [red]≠ reference {expected}: {len(run.missing)} missing, {len(run.extra)} extra"
    if run.failure:
        line += f"  [red]{escape(run.failure)}"
    console.print(line, highlight=False)


# ---------------------------------------------------------------- summary


def ratio_text(ours: list[Run], scrapy: list[Run]) -> tuple[float | None, float, float]:
    """Median pages/s over Scrapy's median, and min–max of the per-round ratios."""
    by_round = {run.round: run.pages_per_s for run in scrapy if run.pages_per_s}
    mine = [run.pages_per_s for run in ours if run.pages_per_s]
    if not mine or not by_round:
        return None, 0.0, 0.0
    ratio = statistics.median(mine) / statistics.median(by_round.values())
    rounds = [run.pages_per_s / by_round[run.round] for run in ours if run.round in by_round]
    return ratio, min(rounds or [0.0]), max(rounds or [0.0])


def summarise(runs: list[Run], references: dict[str, dict]) -> list[dict]:
    """One row per site and concurrency: each tool's median pages/s and ratio to Scrapy."""
    rows = []
    for site, concurrency in dict.fromkeys((run.site, run.concurrency) for run in runs):
        here = [run for run in runs if (run.site, run.concurrency) == (site, concurrency)]
        scrapy = [run for run in here if run.tool == "scrapy"]
        row = {"site": site, "concurrency": concurrency, "reference_pages": 0, "tools": {}}
        row["reference_pages"] = len(references[site]["pages"])
        for tool in tools():
            mine = [run for run in here if run.tool == tool]
            rates = [run.pages_per_s for run in mine if run.pages_per_s]
            cpu = [run.cpu_s * 1000 / run.pages for run in mine if run.pages and not run.failure]
            ratio, low, high = ratio_text(mine, scrapy)
            row["tools"][tool] = {
                "pages_per_s": round(statistics.median(rates), 1) if rates else None,
                "ratio": round(ratio, 2) if ratio else None,
                "ratio_min": round(low, 2),
                "ratio_max": round(high, 2),
                "cpu_ms_per_page": round(statistics.median(cpu), 2) if cpu else None,
                "pages": sorted({run.pages for run in mine}),
                "failures": [run.failure for run in mine if run.failure],
            }
        rows.append(row)
    return rows


def pages_check(row: dict) -> str:
    """✓ when every run of every tool stored the reference count, else who stored what."""
    expected = row["reference_pages"]
    off = {
        tool: found["pages"] for tool, found in row["tools"].items() if found["pages"] != [expected]
    }
    if not off:
        return f"[green]✓ {expected}"
    wrong = "; ".join(f"{tool} {'/'.join(map(str, pages))}" for tool, pages in off.items())
    return f"[bold red]ref {expected}; {wrong}"


def table(rows: list[dict]) -> Table:
    grid = Table(
        title="our crawler against Scrapy: pages/s (median), ratio to Scrapy's median"
        " (min–max of the rounds), CPU ms per page (median, children included)"
    )
    grid.add_column("site")
    grid.add_column("conc", justify="right")
    grid.add_column("Scrapy", justify="right")
    for tool in tools()[1:]:
        grid.add_column(tool.replace("-", "\n"), justify="right")
    grid.add_column("pages vs reference")
    for row in rows:
        cells = [cell(row["tools"][tool], tool == "scrapy") for tool in tools()]
        grid.add_row(row["site"], str(row["concurrency"]), *cells, pages_check(row))
        grid.add_section()
    return grid


def cell(found: dict, scrapy: bool) -> str:
    """pages/s, then (ours) the ratio to Scrapy and its range, then CPU per page."""
    if found["pages_per_s"] is None:
        return "[red]failed" if found["failures"] else "-"
    lines = [f"{found['pages_per_s']:.0f}/s"]
    if not scrapy and found["ratio"] is not None:
        lines.append(f"{found['ratio']:.2f}×")
        lines.append(f"({found['ratio_min']:.2f}–{found['ratio_max']:.2f})")
    lines.append(f"{found['cpu_ms_per_page']:.0f} ms/p")
    return "\n".join(lines)


def targets(rows: list[dict], kinds: dict[str, str]) -> list[dict]:
    """The issue's targets, each against each site and concurrency it names."""
    found = []
    for row in rows:
        where = f"{row['site']} c{row['concurrency']}"
        ratios = {tool: value["ratio"] or 0.0 for tool, value in row["tools"].items()}
        default = {b: ratios[f"{b}-bs4"] for b in BACKENDS}
        lxml = {b: ratios[f"{b}-lxml"] for b in BACKENDS}
        best, best_lxml = max(default, key=default.get), max(lxml, key=lxml.get)
        goal = DEFAULT_TARGET[kinds[row["site"]]]
        found.append(verdict(f"default parser, fastest ({best}) ≥ {goal}× Scrapy", where,
                             default[best], goal))  # fmt: skip
        for who, goal in LXML_TARGETS:
            backend = best_lxml if who == "fastest" else who
            label = f"lxml parser, {who}" + (f" ({backend})" if who == "fastest" else "")
            found.append(verdict(f"{label} ≥ {goal}× Scrapy", where, lxml[backend], goal))
    return found


def verdict(target: str, where: str, ratio: float, goal: float) -> dict:
    return {"target": target, "where": where, "ratio": round(ratio, 2), "met": ratio >= goal}


# ---------------------------------------------------------------- main


def sites_for(quick: bool, urls: dict[str, str], generated: str, pages: int) -> list[Site]:
    python_docs = Site(
        "python-docs",
        "python-docs",
        urls["python-docs"],
        (16,),
        f"python3-doc {package_version('python3-doc')}",
        DOCS["python-docs"][1],
    )
    generated_site = Site(
        f"generated-{pages}",
        "generated",
        generated,
        (64,) if quick else (64, 256),
        f"fixtures.server --pages {pages} --latency-ms 50",
    )
    if quick:
        return [python_docs, generated_site]
    postgres = Site(
        "postgresql-docs",
        "postgresql-docs",
        urls["postgresql-docs"],
        (16,),
        f"postgresql-doc-15 {package_version('postgresql-doc-15')}",
        DOCS["postgresql-docs"][1],
    )
    return [python_docs, postgres, generated_site]


def print_agreement(console: Console, agreement: list[dict]) -> None:
    grid = Table(title="parsers on every page of the manuals (from disk): agreement, CPU ms/page")
    for column in ("manual", "pages", "differing", "bs4", "lxml", "lxml baseline"):
        grid.add_column(column, justify="left" if column == "manual" else "right")
    for found in agreement:
        cpu = found["cpu_ms_per_page"]
        grid.add_row(
            found["site"],
            str(found["pages"]),
            ("[green]0" if not found["differing"] else f"[bold red]{found['differing']}"),
            f"{cpu['beautifulsoup']:.2f}",
            f"{cpu['lxml']:.2f}",
            f"{cpu['lxml baseline']:.2f}",
        )
    console.print(grid)
    for found in agreement:
        if found["first_difference"]:
            console.print(f"[bold red]parsers differ: {escape(found['first_difference'])}")


def print_mismatches(console: Console, runs: list[Run]) -> None:
    """Loudly: every run whose pages are not the reference's, with examples."""
    for run in runs:
        if run.missing or run.extra:
            console.print(
                f"[bold red]{run.site} c{run.concurrency} r{run.round} {run.tool}:"
                f" {len(run.missing)} reference pages missing {escape(str(run.missing[:3]))},"
                f" {len(run.extra)} pages beyond the reference {escape(str(run.extra[:3]))}",
                highlight=False,
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crawler.bench_sites", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="the Python manual and a 1,000-page site, once"
    )
    parser.add_argument("--repeats", type=int, default=None, help="rounds (default 3; quick 1)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    pages = 1000 if args.quick else 5000
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # servers stop on a kill too
    if not become_subreaper():
        print("warning: not a subreaper: the processes backend's pool CPU is not counted")
    console = Console(width=160)
    ensure_debian(args.quick)
    python = ensure_bench_venv()
    OUT.mkdir(exist_ok=True)
    for stale in (DB, Path(f"{DB}-wal"), Path(f"{DB}-shm")):
        stale.unlink(missing_ok=True)  # crawl names are new in each run of the benchmark
    docs = {"python-docs": DOCS["python-docs"][1]}
    if not args.quick:
        docs["postgresql-docs"] = DOCS["postgresql-docs"][1]
    flags = ("--pages", str(pages), "--latency-ms", "50")
    started = time.perf_counter()
    with nginx(docs) as urls, ServerProcess(*flags) as generated:
        sites = sites_for(args.quick, urls, generated.url, pages)
        capacity = {name: server_capacity(url) for name, url in urls.items()}
        for name, rate in capacity.items():
            console.print(f"nginx serves {name} at {rate or 0:,.0f} requests/s (wrk, 16 conns)")
        agreement = [
            parser_agreement(site.name, doc_files(site.root, site.url))
            for site in sites
            if site.root
        ]
        print_agreement(console, agreement)
        references = {site.name: reference(site, console) for site in sites}
        runs = matrix(sites, references, python, repeats, console)
    rows = summarise(runs, references)
    console.print(table(rows))
    print_mismatches(console, runs)
    verdicts = targets(rows, {site.name: site.kind for site in sites})
    for found in verdicts:
        mark = "[green]met" if found["met"] else "[bold red]NOT met"
        console.print(f"{mark}[/]: {found['target']} on {found['where']}: {found['ratio']:.2f}×")
    elapsed = time.perf_counter() - started
    console.print(f"{len(runs)} runs in {elapsed:.0f} s; our runs in {DB}", highlight=False)
    (OUT / "sites.json").write_text(
        json.dumps(
            {
                "scrapy": SCRAPY_VERSION,
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "quick": args.quick,
                "repeats": repeats,
                "server_capacity_rps": capacity,
                "parser_agreement": agreement,
                "reference": {
                    name: {k: v for k, v in found.items() if k != "pages"}
                    | {"count": len(found["pages"])}
                    for name, found in references.items()
                },
                "rows": rows,
                "targets": verdicts,
                "runs": [asdict(run) | {"pages_per_s": run.pages_per_s} for run in runs],
            },
            indent=1,
        )
    )
    return 1 if any(run.failure for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
