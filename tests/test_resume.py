"""`crawler resume` remembers how the crawl ran, takes new budgets, and starts no run on a
crawl that is finished."""

from __future__ import annotations

import json

from tests.helpers import TreeSite, cli, last_json, query


def resume(*args: str) -> dict:
    result = cli("resume", *args, "--json")
    assert result.returncode == 0, result.stderr
    return last_json(result.stdout)


def test_resume_remembers_the_frontend_and_takes_a_larger_budget(tmp_path):
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with TreeSite(pages=40) as site:
        first = cli(
            "crawl",
            site.url,
            "--name",
            "r",
            "--backend",
            "processes",
            "--concurrency",
            "2",
            "--max-pages",
            "5",
            "--parser",
            "lxml",
            "--json",
            "--db",
            db,
        )
        assert first.returncode == 0, first.stderr
        assert last_json(first.stdout)["pages"] == 5

        spent = resume("r", "--db", db)  # the budget is spent: nothing to do, no run
        assert (spent["state"], spent["run"], spent["pages"]) == ("finished", None, 5)
        assert spent["queued"] > 0
        assert query(db, "SELECT count(*) FROM runs") == [(1,)]
        said = cli("resume", "r", "--db", db)
        assert said.returncode == 0 and "is finished" in said.stdout

        more = resume("r", "--max-pages", "12", "--db", db)
        assert (more["run"]["backend"], more["run"]["concurrency"]) == ("processes", 2)
        assert (more["state"], more["pages"], more["run"]["pages"]) == ("finished", 12, 7)
        [(stored,)] = query(db, "SELECT settings FROM crawls")
        assert json.loads(stored)["max_pages"] == 12  # the change is the crawl's now

        other = resume(
            "r",
            "--backend",
            "asyncio",
            "--parser",
            "beautifulsoup",
            "--max-pages",
            "40",
            "--db",
            db,
        )
        assert (other["run"]["backend"], other["run"]["concurrency"]) == (
            "asyncio",
            16,
        )  # not 2 processes
        assert (other["state"], other["pages"], other["queued"]) == ("finished", 40, 0)
        assert query(db, "SELECT frontend, concurrency, parser FROM runs ORDER BY id") == [
            ("processes", 2, "lxml"),
            ("processes", 2, "lxml"),  # the parser is remembered too
            ("asyncio", 16, "beautifulsoup"),
        ]


def test_resume_refuses_a_setting_that_is_not_a_budget_and_a_bad_budget(tmp_path):
    db = f"sqlite:///{tmp_path / 'b.db'}"
    with TreeSite(pages=3) as site:
        assert cli("crawl", site.url, "--name", "b", "--db", db).returncode == 0
    bad = cli("resume", "b", "--max-pages", "0", "--db", db)
    assert bad.returncode == 2 and "--max-pages" in bad.stderr
    not_a_budget = cli("resume", "b", "--timeout", "3", "--db", db)
    assert not_a_budget.returncode == 2 and "--timeout" in not_a_budget.stderr
