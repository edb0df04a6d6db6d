"""Whole crawls of the hand-written fixture site, through the command line, with each of the
three frontends; every test holds for all three."""

from __future__ import annotations

import csv
import io
import json
import os

import pytest

from fixtures.expected import (
    CANONICALS,
    DEPTHS,
    EXPECTED,
    NOT_FETCHED,
    REDIRECTS,
    TITLES,
    expected_within_depth,
)
from tests.helpers import BACKENDS, backend_flags, cli, last_json, query


def path_of(url: str, origin: str) -> str:
    return url.removeprefix(origin.rstrip("/")) or "/"


@pytest.fixture(scope="module", params=BACKENDS)
def fixture_crawl(request, fixture_site, tmp_path_factory):
    db_url = f"sqlite:///{tmp_path_factory.mktemp('fixture') / 'crawl.db'}"
    result = cli(
        "crawl",
        fixture_site,
        *backend_flags(request.param),
        "--name",
        "site",
        "--json",
        "--db",
        db_url,
    )
    assert result.returncode == 0, result.stderr
    return fixture_site, db_url, last_json(result.stdout)


def test_summary_line(fixture_crawl):
    _, _, summary = fixture_crawl
    assert {"crawl_id", "name", "pages", "errors", "run"} <= summary.keys()
    assert {"elapsed_s", "pages_per_s"} <= summary["run"].keys()
    assert summary["name"] == "site" and summary["state"] == "finished"
    assert summary["pages"] == len(TITLES)
    assert summary["errors"] == sum(1 for status in EXPECTED.values() if status >= 400)


def test_every_page_is_fetched_exactly_once_with_the_right_status(fixture_crawl):
    origin, db_url, _ = fixture_crawl
    rows = query(db_url, "SELECT url, status FROM fetches")
    fetched = [path_of(url, origin) for url, _ in rows]
    assert len(fetched) == len(set(fetched)), "a URL was fetched twice"
    assert {path_of(url, origin): status for url, status in rows} == EXPECTED


def test_titles_and_depths(fixture_crawl):
    origin, db_url, _ = fixture_crawl
    titles = dict(query(db_url, "SELECT url, title FROM pages"))
    assert {path_of(url, origin): title for url, title in titles.items()} == TITLES
    depths = dict(query(db_url, "SELECT url, depth FROM frontier"))
    assert {
        path_of(url, origin): d for url, d in depths.items() if path_of(url, origin) in DEPTHS
    } == DEPTHS


def test_nofollow_and_out_of_scope_links_are_recorded_but_not_fetched(fixture_crawl):
    origin, db_url, _ = fixture_crawl
    linked = {url for (url,) in query(db_url, "SELECT url FROM links")}
    fetched = {url for (url,) in query(db_url, "SELECT url FROM fetches")}
    for target in NOT_FETCHED:
        absolute = target if "://" in target else origin.rstrip("/") + target
        assert absolute not in fetched
    recorded_elsewhere = {u for u in linked if not u.startswith(origin)}
    assert recorded_elsewhere, "the link to the other host must be stored"
    unfollowed = query(db_url, "SELECT url, nofollow FROM links WHERE followed = 0")
    assert any(nofollow for _, nofollow in unfollowed)


def test_export_jsonl_and_csv(fixture_crawl):
    _, db_url, summary = fixture_crawl
    jsonl = cli("export", "site", "--db", db_url)
    assert jsonl.returncode == 0, jsonl.stderr
    records = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert len(records) == len(EXPECTED)
    needed = {"url", "status", "title", "depth", "content_type", "bytes", "error", "total_ms"}
    assert all(needed <= r.keys() for r in records)
    by_id = cli("export", str(summary["crawl_id"]), "--format", "csv", "--db", db_url)
    rows = list(csv.DictReader(io.StringIO(by_id.stdout)))
    assert [r["url"] for r in rows] == [r["url"] for r in records]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("depth", [0, 2, 4])
def test_max_depth_on_the_fixture_site(fixture_site, tmp_path, depth, backend):
    db_url = f"sqlite:///{tmp_path / 'depth.db'}"
    result = cli(
        "crawl",
        fixture_site,
        *backend_flags(backend),
        "--max-depth",
        str(depth),
        "--json",
        "--db",
        db_url,
    )
    assert result.returncode == 0, result.stderr
    rows = query(db_url, "SELECT url, status FROM fetches")
    assert {path_of(u, fixture_site): s for u, s in rows} == expected_within_depth(depth)


def test_canonical_links_and_charsets_are_stored(fixture_crawl):
    origin, db_url, _ = fixture_crawl
    canonicals = {
        path_of(url, origin): path_of(canonical, origin)
        for url, canonical in query(db_url, "SELECT url, canonical FROM pages")
        if canonical
    }
    assert canonicals == CANONICALS
    charsets = dict(query(db_url, "SELECT url, charset FROM pages"))
    # labelled ISO-8859-1, read as windows-1252 as browsers do (WHATWG Encoding Standard)
    assert charsets[origin.rstrip("/") + "/legacy/latin1.html"] == "cp1252"
    assert charsets[origin.rstrip("/") + "/legacy/cp1252.html"] in ("windows-1252", "cp1252")


def test_redirects_are_stored_with_their_targets(fixture_crawl):
    origin, db_url, _ = fixture_crawl
    rows = query(db_url, "SELECT url, location FROM fetches WHERE location IS NOT NULL")
    assert {path_of(u, origin): path_of(loc, origin) for u, loc in rows} == REDIRECTS


def test_the_run_records_what_it_cost(fixture_crawl):
    _, db_url, summary = fixture_crawl
    backend = summary["run"]["backend"]
    [row] = query(
        db_url,
        "SELECT frontend, concurrency, workers, wall_s, user_cpu_s, system_cpu_s, peak_rss_kb,"
        " ctx_voluntary, ctx_involuntary, store_s, startup_s, ipc_bytes, pages, fetches, errors,"
        " state, hostname, pid, peak_pss_kb, peak_vms_kb, machine, pool_returns FROM runs",
    )
    (
        frontend,
        concurrency,
        workers,
        wall,
        user,
        system,
        rss,
        voluntary,
        involuntary,
        store,
        startup,
        ipc,
        pages,
        fetches,
        errors,
        state,
        hostname,
        pid,
        pss,
        vms,
        machine,
        pool_returns,
    ) = row
    assert (frontend, state) == (backend, "finished")
    # PSS divides each shared page among its sharers; summed RSS counts it once per process
    assert 0 < pss <= rss < vms
    assert json.loads(machine)["cpus"] == os.cpu_count()
    assert pool_returns == ("pages" if backend == "processes" else None)
    assert workers == concurrency == summary["run"]["concurrency"]
    assert wall > 0 and user > 0 and system >= 0 and voluntary > 0 and involuntary >= 0
    assert 0 < store < wall and startup is not None and hostname and pid
    assert (pages, fetches, errors) == (summary["pages"], summary["fetches"], summary["errors"])
    if backend == "processes":
        # the pool is charged: its start-up, the bytes on its pipes, its children's memory
        assert startup > 0.1 and ipc > 1000
        assert rss > 2 * 50_000  # the parent and at least one child, each tens of MiB
        # the children share the interpreter's pages with one another: PSS counts them once
        assert pss < 0.9 * rss
    else:
        assert not ipc


def test_the_three_frontends_store_the_same_site(fixture_site, tmp_path):
    """Pages, statuses, titles, charsets, canonicals, the link graph with anchor texts, and
    depths: identical whatever the frontend, whatever the parser."""
    graph = """SELECT f.url, f.status, f.error_kind, p.title, p.charset, p.canonical,
                      l.position, l.url, l.anchor_text, l.followed, fr.depth
               FROM fetches f JOIN frontier fr ON fr.id = f.frontier_id
               LEFT JOIN pages p ON p.frontier_id = f.frontier_id
               LEFT JOIN links l ON l.page_id = p.id
               ORDER BY f.url, l.position"""
    variants = {backend: backend_flags(backend) for backend in BACKENDS}
    # a pool that sends whole bodies for the parent to parse
    variants["bodies"] = [*backend_flags("processes"), "--pool-returns", "bodies"]
    for backend in BACKENDS:  # lxml.html directly instead of BeautifulSoup
        variants[f"{backend}-lxml"] = [*backend_flags(backend), "--parser", "lxml"]
    stored = {}
    for variant, flags in variants.items():
        db_url = f"sqlite:///{tmp_path / variant}.db"
        result = cli("crawl", fixture_site, *flags, "--db", db_url)
        assert result.returncode == 0, result.stderr
        stored[variant] = query(db_url, graph)
        if variant.endswith("-lxml"):
            assert query(db_url, "SELECT parser FROM runs") == [("lxml",)]
    assert len(stored["threads"]) > 100
    for variant in variants:
        assert stored[variant] == stored["threads"], variant
