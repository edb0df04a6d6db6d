"""The --json lines match the schema the README shows, on every way a crawl can end."""

from __future__ import annotations

import json
import re
import signal
import subprocess

from tests.helpers import ROOT, TreeSite, cli, last_json, start_crawler, wait_for_pages


def readme_example(name: str) -> dict:
    text = (ROOT / "README.md").read_text()
    found = re.search(rf"<!-- json: {name} -->\s*```json\n(.*?)\n```", text, re.DOTALL)
    assert found, f"README has no JSON example for {name}"
    return json.loads(found.group(1))


def same_shape(actual: dict, documented: dict) -> None:
    assert actual.keys() == documented.keys()
    for key, value in actual.items():
        if isinstance(value, dict):
            same_shape(value, documented[key])


def test_a_finished_crawl_and_the_crawls_listing_match_the_readme(tmp_path):
    db = f"sqlite:///{tmp_path / 'j.db'}"
    with TreeSite(pages=5) as site:
        result = cli("crawl", site.url, "--name", "j", "--json", "--db", db)
    assert result.returncode == 0, result.stderr
    summary = last_json(result.stdout)
    same_shape(summary, readme_example("crawl"))
    assert (summary["state"], summary["error"], summary["run"]["pages"]) == ("finished", None, 5)
    listed = [json.loads(line) for line in cli("crawls", "--json", "--db", db).stdout.splitlines()]
    same_shape(listed[0], readme_example("crawls"))
    assert listed[0]["crawl_id"] == summary["crawl_id"]


def test_a_resumed_run_keeps_its_own_figures_apart_from_the_crawls(tmp_path):
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with TreeSite(pages=20) as site:
        cli("crawl", site.url, "--name", "r", "--max-pages", "8", "--db", db)
        resumed = last_json(cli("resume", "r", "--max-pages", "20", "--json", "--db", db).stdout)
    assert (resumed["pages"], resumed["run"]["pages"]) == (20, 12)
    rate = resumed["run"]["pages"] / resumed["run"]["elapsed_s"]
    assert abs(resumed["run"]["pages_per_s"] - rate) < 0.02 * rate + 0.01


def test_a_failed_crawl_still_ends_with_its_json_line(tmp_path):
    result = cli("crawl", "http://127.0.0.1:9/", "--json", "--db", f"sqlite:///{tmp_path / 'f.db'}")
    assert result.returncode == 1
    failed = last_json(result.stdout)
    same_shape({**failed, "run": readme_example("crawl")["run"]}, readme_example("crawl"))
    assert failed["state"] == "failed" and "cannot reach seed" in failed["error"]
    assert failed["run"] is None


def test_an_interrupted_crawl_ends_with_its_json_line(tmp_path):
    db = f"sqlite:///{tmp_path / 'i.db'}"
    with TreeSite(pages=300, delay=0.05) as site:
        process = start_crawler(
            "crawl", site.url, "--concurrency", "4", "--json", "--db", db, output=subprocess.PIPE
        )
        wait_for_pages(db, 5)  # not a fixed sleep: a busy machine starts the crawl late
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 130
    stopped = last_json(stdout)
    same_shape(stopped, readme_example("crawl"))
    assert stopped["state"] == "interrupted" and "crawler resume" in stopped["error"]
    assert 0 < stopped["run"]["pages"] == stopped["pages"] < 300
