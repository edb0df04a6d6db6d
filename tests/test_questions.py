"""The questions users ask of a crawl, on a real crawl of the fixture site with faults, on
SQLite and PostgreSQL: every answer is checked against the stored rows, read independently
through the exports."""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
from collections import Counter, defaultdict

import pytest

from crawler.cli import main
from tests.helpers import FixtureServer

FAULTY_SITE = ("--pages", "80", "--fault-rate", "0.3", "--hosts", "2", "--seed", "3")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def faulty_crawl(request, tmp_path_factory):
    """A finished crawl of a generated two-host site where a third of the pages link to a
    fault (resets, 404s, 429s, bad gzip, bombs, bad redirects): (db URL, site URL)."""
    if request.param == "sqlite":
        db = f"sqlite:///{tmp_path_factory.mktemp('questions') / 'q.db'}"
    else:
        from tests.postgres import fresh_database

        db = fresh_database(request.getfixturevalue("postgres_server"), "t_questions")
    with FixtureServer(*FAULTY_SITE) as site:
        code = main(
            [
                "crawl",
                site.url,
                "--allow-host",
                "127.0.0.2",
                "--name",
                "faults",
                "--max-attempts",
                "2",
                "--retry-backoff",
                "0.1",
                "--timeout",
                "2",
                "--max-pages-per-host",
                "50",
                "--db",
                db,
                "--json",
            ]
        )
        assert code == 0
        yield db, site.url


def run(capsys, *args: str) -> tuple[int, str, str]:
    """The command line in this process, as `crawler ARGS` runs it."""
    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse refuses a bad choice itself
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def lines(capsys, *args: str) -> list[dict]:
    code, out, err = run(capsys, *args, "--json")
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


def exported(capsys, db: str, table: str) -> list[dict]:
    code, out, err = run(capsys, "export", "faults", "--table", table, "--db", db)
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


def test_crawls_says_finished_and_counts_urls_apart_from_attempts(faulty_crawl, capsys):
    db, _ = faulty_crawl
    (listed,) = lines(capsys, "crawls", "--db", db)
    urls = exported(capsys, db, "urls")
    fetches = exported(capsys, db, "fetches")
    assert listed["state"] == "finished" and listed["next_step"] is None
    by_state = Counter(url["state"] for url in urls)
    assert {k: v for k, v in listed["urls"].items() if v} == dict(by_state)
    assert by_state["failed"] >= 1 and by_state["skipped"] >= 1  # faults and the host limit
    failed_attempts = [f for f in fetches if f["error_kind"] or (f["status"] or 0) >= 400]
    assert listed["failed_fetches"] == len(failed_attempts) > by_state["failed"]
    assert listed["fetches"] == len(fetches)
    assert listed["backends"] == ["threads"] and listed["live_runs"] == 0
    code, table, _ = run(capsys, "crawls", "--db", db)
    assert code == 0 and "faults" in table and "finished" in table


def test_status_gives_the_verdict_and_every_section(faulty_crawl, capsys):
    db, site = faulty_crawl
    (status,) = lines(capsys, "status", "faults", "--db", db)
    assert status["verdict"].startswith("finished")
    assert {group["key"] for group in status["by_host"]} == {
        site.split("//")[1].rstrip("/"),
        site.split("//")[1].rstrip("/").replace("127.0.0.1", "127.0.0.2"),
    }
    assert status["by_depth"][0]["key"] == "0"
    assert len(status["errors"]) >= 3  # the faults: error kinds and 4xx/5xx statuses
    assert status["skipped"] and all(s["reason"] for s in status["skipped"])
    assert sum(b["responses"] for b in status["rate"]) == sum(
        1 for f in exported(capsys, db, "fetches") if f["status"] is not None
    )
    assert [run["state"] for run in status["runs"]] == ["finished"]
    assert status["oldest_lease"] is None
    code, text, _ = run(capsys, "status", "faults", "--db", db)
    assert code == 0 and "URLs by host" in text and "failures by kind" in text


def test_pages_filters_each_hold_for_every_row(faulty_crawl, capsys):
    db, site = faulty_crawl
    urls = exported(capsys, db, "urls")
    host2 = site.split("//")[1].rstrip("/").replace("127.0.0.1", "127.0.0.2")
    # which faults a crawl reaches under its per-host limit depends on timing: ask for the
    # ones this crawl has
    status = Counter(u["status"] for u in urls if (u["status"] or 0) >= 400).most_common(1)[0][0]
    error = Counter(u["error_kind"] for u in urls if u["error_kind"]).most_common(1)[0][0]
    cases = {
        ("--status", str(status)): lambda u: u["status"] == status,
        ("--error", error): lambda u: u["error_kind"] == error,
        ("--host", host2): lambda u: u["host"] == host2,
        ("--depth", "2"): lambda u: u["depth"] == 2,
        ("--state", "skipped"): lambda u: u["state"] == "skipped",
        ("--title-contains", "PAGE"): lambda u: "page" in (u["title"] or "").lower(),
        ("--host", host2, "--depth", "3", "--state", "done"): lambda u: (
            u["host"] == host2 and u["depth"] == 3 and u["state"] == "done"
        ),
    }
    for flags, holds in cases.items():
        listed = lines(capsys, "pages", "faults", *flags, "--limit", "1000", "--db", db)
        matching = [u for u in urls if holds(u)]
        if flags[0] in ("--status", "--error"):  # in the order of their last attempts
            matching.sort(key=lambda u: u["started_at"])
        expected = [u["url"] for u in matching]
        assert expected, flags
        assert [p["url"] for p in listed] == expected, flags
    assert len(lines(capsys, "pages", "faults", "--limit", "3", "--db", db)) == 3


def test_a_filter_that_matches_nothing_is_an_empty_answer_and_a_bad_one_exit_2(
    faulty_crawl, capsys
):
    db, _ = faulty_crawl
    assert lines(capsys, "pages", "faults", "--status", "418", "--db", db) == []
    code, out, err = run(capsys, "pages", "faults", "--host", "nowhere:1", "--db", db)
    assert (code, out) == (0, "") and "nothing matches" in err
    for flags, said in [
        (("pages", "faults", "--status", "999"), "HTTP status"),
        (("pages", "faults", "--error", "oops"), "unknown error kind 'oops'; the kinds are"),
        (("pages", "faults", "--state", "gone"), "unknown state 'gone'"),
        (("pages", "faults", "--depth", "-1"), "--depth"),
        (("pages", "faults", "--limit", "0"), "--limit takes 1"),
        (("pages", "nope"), "no crawl 'nope'"),
        (("status", "#99"), "no crawl '#99'"),
        (("show", "faults", "http://127.0.0.1:1/never"), "is not a URL of crawl 'faults'"),
    ]:
        code, out, err = run(capsys, *flags, "--db", db)
        assert code == 2 and out == "", flags
        assert len(err.strip().splitlines()) == 1 and said in err, err
    code, _, err = run(capsys, "export", "faults", "--format", "xml", "--db", db)
    assert code == 2 and "invalid choice: 'xml'" in err


def _broken_by_hand(urls: list[dict], links: list[dict]) -> set[tuple[str, str]]:
    """Broken links computed from the exports alone: a link whose target's last attempt
    failed or answered 4xx/5xx."""
    bad = {u["url"] for u in urls if u["error_kind"] or (u["status"] or 0) >= 400}
    return {(link["page_url"], link["url"]) for link in links if link["url"] in bad}


def test_broken_links_are_the_links_to_failed_or_4xx_5xx_urls(faulty_crawl, capsys):
    db, _ = faulty_crawl
    urls, links = exported(capsys, db, "urls"), exported(capsys, db, "links")
    broken = lines(capsys, "links", "faults", "--broken", "--limit", "5000", "--db", db)
    assert {(b["from_url"], b["to_url"]) for b in broken} == _broken_by_hand(urls, links)
    # failed: no answer after its attempts, or one that could not be used (a bad redirect,
    # broken gzip, a bomb, a short body), which the URL keeps as its error
    assert all(b["target_error"] or b["target_status"] >= 400 for b in broken)
    assert any(b["target_status"] == 404 for b in broken)
    code, text, _ = run(capsys, "links", "faults", "--broken", "--db", db)
    assert code == 0 and "on page" in text


def test_links_to_and_from_one_url(faulty_crawl, capsys):
    db, site = faulty_crawl
    links = exported(capsys, db, "links")
    out_of_seed = [link["url"] for link in links if link["page_url"] == site]
    listed = lines(capsys, "links", "faults", "--from", site, "--limit", "1000", "--db", db)
    assert [link["to_url"] for link in listed] == out_of_seed
    target = Counter(link["url"] for link in links).most_common(1)[0][0]
    to = lines(capsys, "links", "faults", "--to", target, "--limit", "1000", "--db", db)
    assert sorted(link["from_url"] for link in to) == sorted(
        link["page_url"] for link in links if link["url"] == target
    )
    assert all(link["target_state"] == "done" for link in to)


def test_errors_count_attempts_and_urls_by_kind(faulty_crawl, capsys):
    db, _ = faulty_crawl
    fetches = exported(capsys, db, "fetches")
    urls = exported(capsys, db, "urls")

    def kind(row: dict) -> str | None:
        if row["error_kind"]:
            return row["error_kind"]
        return f"HTTP {row['status']}" if (row["status"] or 0) >= 400 else None

    attempts = Counter(kind(f) for f in fetches if kind(f))
    ending = Counter(kind(u) for u in urls if kind(u))
    listed = lines(capsys, "errors", "faults", "--db", db)
    assert {e["kind"]: e["attempts"] for e in listed} == dict(attempts)
    assert {e["kind"]: e["urls"] for e in listed if e["urls"]} == dict(ending)
    assert all(
        kind(u) == e["kind"]
        for e in listed
        for u in urls
        if u["url"] == e["example_url"] and e["urls"]
    )


def test_hosts_give_each_hosts_counts_and_fetch_times(faulty_crawl, capsys):
    db, _ = faulty_crawl
    fetches = exported(capsys, db, "fetches")
    times: dict[str, list[float]] = defaultdict(list)
    for f in fetches:
        times[f["host"]].append(f["total_s"])
    listed = lines(capsys, "hosts", "faults", "--db", db)
    assert {h["host"] for h in listed} == set(times)
    for host in listed:
        ordered = sorted(times[host["host"]])
        assert host["fetches"] == len(ordered)
        # nearest rank: the smallest value with at least that share of the values at or below
        for key, share in (("median_ms", 0.5), ("p95_ms", 0.95)):
            nearest = next(v for i, v in enumerate(ordered, 1) if i >= share * len(ordered))
            assert host[key] == pytest.approx(1000 * nearest, abs=0.002), key
        assert host["median_ms"] == pytest.approx(1000 * statistics.median_low(ordered), abs=0.002)
        assert host["robots"] == "rules" and host["breaker"].startswith("closed")
    assert sum(h["skipped"] for h in listed) >= 1


def test_show_tells_one_urls_story(faulty_crawl, capsys):
    db, site = faulty_crawl
    urls = exported(capsys, db, "urls")
    failed = next(u for u in urls if u["state"] == "failed")
    (story,) = lines(capsys, "show", "faults", failed["url"], "--db", db)
    assert [a["attempt"] for a in story["attempts"]] == [1, 2]  # --max-attempts 2
    assert story["attempts"][-1]["error_kind"] == failed["error_kind"]
    assert all(a["total_ms"] >= 0 for a in story["attempts"])
    assert story["found_on"] == failed["found_on"] and story["links_in_total"] >= 1
    assert any(link["from_url"] == failed["found_on"] for link in story["links_in"])

    crawled = {u["url"] for u in urls}
    redirect = next(u for u in urls if u["redirect_to"] in crawled and u["state"] == "done")
    (hop,) = lines(capsys, "show", "faults", redirect["url"], "--db", db)
    assert hop["redirects_to"][0] == redirect["redirect_to"]
    (landed,) = lines(capsys, "show", "faults", redirect["redirect_to"], "--db", db)
    assert redirect["url"] in landed["redirected_from"]

    skipped = next(u for u in urls if u["state"] == "skipped")
    (why,) = lines(capsys, "show", "faults", skipped["url"], "--db", db)
    assert why["skip_reason"] == skipped["skip_reason"] and why["attempts"] == []

    (seed,) = lines(capsys, "show", "faults", site, "--db", db)
    assert seed["depth"] == 0 and seed["title"] and len(seed["links_out"]) >= 1
    code, text, _ = run(capsys, "show", "faults", site, "--db", db)
    assert code == 0 and "attempts" in text and "links out" in text


def test_exports_in_each_format_and_table_agree(faulty_crawl, capsys, tmp_path):
    db, _ = faulty_crawl
    jsonl = exported(capsys, db, "urls")
    assert {u["state"] for u in jsonl} >= {"done", "failed", "skipped"}
    assert all(u["found_on"] for u in jsonl if u["depth"] > 0)
    code, out, _ = run(capsys, "export", "faults", "--format", "json", "--db", db)
    assert code == 0 and json.loads(out) == jsonl
    code, out, _ = run(capsys, "export", "faults", "--format", "csv", "--db", db)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["url"] for r in rows] == [u["url"] for u in jsonl]
    target = tmp_path / "links.csv"
    code, _, err = run(
        capsys,
        "export",
        "faults",
        "--table",
        "links",
        "--format",
        "csv",
        "-o",
        str(target),
        "--db",
        db,
    )
    links = exported(capsys, db, "links")
    assert code == 0 and f"{len(links)} records written" in err
    assert len(list(csv.DictReader(target.open()))) == len(links)
    assert list(tmp_path.iterdir()) == [target]  # no .partial left behind
    for table in ("pages", "runs"):
        assert exported(capsys, db, table)
    code, out, _ = run(
        capsys, "export", "faults", "--format", "json", "--table", "runs", "--db", db
    )
    assert json.loads(out)[0]["frontend"] == "threads"


def test_an_export_to_a_folder_that_cannot_be_written_says_so(faulty_crawl, capsys, tmp_path):
    db, _ = faulty_crawl
    code, _, err = run(
        capsys, "export", "faults", "-o", str(tmp_path / "no" / "x.jsonl"), "--db", db
    )
    assert code == 1 and "cannot write" in err and "choose another -o FILE" in err


def test_the_python_api_gives_the_same_answers(faulty_crawl, capsys):
    import crawler

    db, _ = faulty_crawl
    assert [p.url for p in crawler.pages("faults", db=db, status=404)] == [
        p["url"] for p in lines(capsys, "pages", "faults", "--status", "404", "--db", db)
    ]
    assert crawler.status("faults", db=db).crawl.state == "finished"
    assert crawler.error_counts("#1", db=db)[0].attempts >= 1


def test_the_readmes_sql_examples_run_and_its_write_is_refused(faulty_crawl, capsys):
    from tests.helpers import ROOT

    readme = (ROOT / "README.md").read_text()
    examples = re.findall(r'^\$? ?crawler sql "([^"]+)"', readme, re.MULTILINE)
    assert len(examples) >= 5
    db, _ = faulty_crawl
    for statement in examples:
        code, out, err = run(capsys, "sql", statement, "--db", db)
        if statement.startswith("DELETE"):
            assert code == 2 and "only reads" in err
        else:
            assert code == 0 and out.strip(), (statement, err)
