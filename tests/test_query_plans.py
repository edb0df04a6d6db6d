"""Every statement the questions run reads `fetches` and `links` through an index, never a
scan of either table: the query plans of all of them, recorded as each command runs, on SQLite
(EXPLAIN QUERY PLAN: no SCAN, and no search on the crawl alone through an index that does not
cover the query, which reads every row of a crawl) and PostgreSQL (EXPLAIN with sequential
scans priced out, so that the plan shows whether an index path exists at all: on a test's small
tables a scan is cheaper)."""

from __future__ import annotations

import re
import sqlite3

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

import crawler
from crawler.store import make_engine
from tests.helpers import sqlite_path

WATCHED = ("fetches", "links")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def crawled(request, tmp_path_factory, fixture_site):
    if request.param == "sqlite":
        db = f"sqlite:///{tmp_path_factory.mktemp('plans') / 'p.db'}"
    else:
        from tests.postgres import fresh_database

        db = fresh_database(request.getfixturevalue("postgres_server"), "t_query_plans")
        _without_autoanalyze(db)
    crawler.crawl([fixture_site], name="plans", db=db, concurrency=4)
    return db, fixture_site


def _without_autoanalyze(db: str) -> None:
    """The schema, with autovacuum off on every table: the plans are judged on the planner's
    default estimates, the same in every run. Statistics gathered at some moment of the
    crawl (or not, on a loaded machine) made a 43-row `fetches` cheaper to read whole through
    its primary key than through the lookup a real crawl's size takes, and the test flaky."""
    crawler.upgrade_db(db)
    engine = make_engine(db)
    with engine.begin() as conn:
        tables = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ).scalars()
        for table in tables:
            conn.execute(text(f'ALTER TABLE "{table}" SET (autovacuum_enabled = false)'))
    engine.dispose()


def questions(site: str) -> dict[str, object]:
    """Each listing question, by name, as the command line asks it."""
    return {
        "crawls": lambda db: crawler.crawls(db),
        "status": lambda db: crawler.status("plans", db=db),
        "pages": lambda db: crawler.pages("plans", db=db),
        "pages --status": lambda db: crawler.pages("plans", db=db, status=404),
        "pages --error": lambda db: crawler.pages("plans", db=db, error="read_timeout"),
        "pages --host": lambda db: crawler.pages("plans", db=db, host="127.0.0.1:1"),
        "pages --depth": lambda db: crawler.pages("plans", db=db, depth=2),
        "pages --state": lambda db: crawler.pages("plans", db=db, state="failed"),
        "pages --title-contains": lambda db: crawler.pages("plans", db=db, title_contains="x"),
        "links": lambda db: crawler.links("plans", db=db),
        "links --to": lambda db: crawler.links("plans", db=db, to=site + "links.html"),
        "links --from": lambda db: crawler.links("plans", db=db, from_=site),
        "links --broken": lambda db: crawler.links("plans", db=db, broken=True),
        "errors": lambda db: crawler.error_counts("plans", db=db),
        "hosts": lambda db: crawler.hosts("plans", db=db),
        "show": lambda db: crawler.show("plans", site + "links.html", db=db),
        "show (a redirect)": lambda db: crawler.show("plans", site + "redirect", db=db),
    }


def recorded(ask, db: str) -> list[tuple[str, object]]:
    """The statements (with their parameters) that asking `ask` runs."""
    seen: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, parameters, _context, _many) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            seen.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        ask(db)
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    return seen


ALIASES = "fetches|links|fetch|later|chosen"


def sqlite_scans(db: str, statement: str, parameters) -> list[str]:
    """A SCAN reads the whole table; a SEARCH on the crawl alone through an index that does
    not cover the query reads every row of the crawl (the same, on a one-crawl database)."""
    with sqlite3.connect(f"file:{sqlite_path(db)}?mode=ro", uri=True) as conn:
        plan = conn.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
    details = [row[-1] for row in plan]
    return [
        d
        for d in details
        if re.match(rf"SCAN ({ALIASES})\b", d)
        or re.match(rf"SEARCH ({ALIASES}) USING INDEX \S+ \(crawl_id=\?\)$", d)
    ]


def postgres_scans(db: str, statement: str, parameters) -> list[str]:
    engine = make_engine(db)
    try:
        with engine.connect() as conn:
            conn.execute(text("SET enable_seqscan = off"))
            raw = conn.connection.driver_connection
            plan = [row[0] for row in raw.execute(f"EXPLAIN {statement}", parameters)]
    finally:
        engine.dispose()
    return whole_reads(plan)


def whole_reads(plan: list[str]) -> list[str]:
    """Nodes of a PostgreSQL plan that read all of fetches or links: a sequential scan, or an
    index scan with no condition. (Which index PostgreSQL picks among those that apply is
    costed from the table's statistics, so on a test's small tables it says little; SQLite's
    choice, made without statistics, is the one checked for reading a crawl's every row.)"""
    found = []
    for at, line in enumerate(plan):
        if re.search(r"Seq Scan on (fetches|links)\b", line):
            found.append(line.strip())
            continue
        node = re.search(r"(Index Scan using|Bitmap Index Scan on) (ix|pk)_(fetches|links)", line)
        if not node or "Index Only Scan" in line:
            continue
        details = []
        for following in plan[at + 1 :]:
            if "->" in following:
                break
            details.append(following.strip())
        conditions = [d for d in details if d.startswith("Index Cond:")]
        if not conditions:
            found.append(f"{line.strip()} {conditions}")
    return found


def test_no_question_scans_fetches_or_links(crawled):
    db, site = crawled
    scans = sqlite_scans if db.startswith("sqlite") else postgres_scans
    checked = 0
    for name, ask in questions(site).items():
        for statement, parameters in recorded(ask, db):
            if not any(re.search(rf"\b{table}\b", statement) for table in WATCHED):
                continue
            found = scans(db, statement, parameters)
            assert not found, f"{name}: {found}\n{statement}"
            checked += 1
    assert checked >= 25  # the recorder saw the questions' statements


def test_the_postgresql_rule_catches_each_way_of_reading_everything():
    plan = [
        "Aggregate  (cost=1.00..2.00 rows=1 width=8)",
        "  ->  Seq Scan on links  (cost=0.00..1.00 rows=1 width=0)",
        "  ->  Index Scan using ix_fetches_host_time on fetches  (cost=0.29..8.30 rows=1)",
        "        Index Cond: (crawl_id = 1)",
        "  ->  Index Scan using pk_fetches on fetches fetch  (cost=0.29..8.30 rows=1)",
        "        Filter: (crawl_id = 1)",
        "  ->  Index Only Scan using ix_fetches_status on fetches  (cost=0.29..8.30 rows=1)",
        "        Index Cond: (crawl_id = 1)",
        "  ->  Index Scan using ix_fetches_status on fetches  (cost=0.29..8.30 rows=1)",
        "        Index Cond: ((crawl_id = 1) AND (status = 404))",
    ]
    assert [line.split("  (")[0] for line in whole_reads(plan)] == [
        "->  Seq Scan on links",
        "->  Index Scan using pk_fetches on fetches fetch",
    ]
