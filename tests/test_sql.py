"""`crawler sql`: read-only by construction. A statement that would write is refused by the
database itself (SQLite opened read-only with an authorizer, PostgreSQL in a READ ONLY
transaction through a cursor), on both databases, with one line and exit code 2, and the
database is left as it was: for SQLite byte for byte, file and write-ahead log. Reads work,
stream, and come out as a table, JSON lines or CSV."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

import crawler
from crawler.api import open_db_read_only
from crawler.cli import main
from crawler.errors import UsageError
from crawler.query import sql as sql_module
from crawler.query.sql import RefusedStatement, read_only_statement, sql
from tests.helpers import TreeSite, sqlite_path

PAGES = 7
REFUSED = "crawler: error: crawler sql only reads: "
# Where a statement that escaped would make a file ({escape} in a statement): in /tmp, which
# the PostgreSQL server's own user may write too, so a COPY TO PROGRAM that ran would leave
# its mark. Named anew in each process; the test ids stay the same in every xdist worker.
ESCAPE = f"/tmp/crawler_sql_escape_{uuid.uuid4().hex}"

# Refused on both databases. Some are not valid on one of them at all (a data-modifying WITH
# in SQLite): those only have to be refused, not for a particular reason.
BOTH = [
    "INSERT INTO crawls (name, seeds, settings, state) VALUES ('x', '[]', '{}', 'running')",
    "UPDATE pages SET title = 'changed'",
    "DELETE FROM pages",
    "DROP TABLE links",
    "CREATE TABLE extra (x INTEGER)",
    "CREATE TEMP TABLE extra (x INTEGER)",
    "CREATE INDEX extra ON pages (title)",
    "CREATE VIEW extra AS SELECT 1",
    "ALTER TABLE pages ADD COLUMN extra INTEGER",
    "/* x */ DELETE FROM pages",
    "-- c\nDROP TABLE pages",
    "SELECT 1; DELETE FROM pages",
    "SELECT 1; /* */ DELETE FROM pages",
    "SELECT 1; -- c\nDELETE FROM pages",
    "WITH x AS (SELECT 1) DELETE FROM pages",
    "WITH x AS (SELECT 1) INSERT INTO links SELECT * FROM links",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT s",
    "VACUUM",
    "ANALYZE",
]
SQLITE_ONLY = [
    "VACUUM INTO '{escape}'",  # works on a read-only database in plain SQLite
    "ATTACH '{escape}' AS other",  # would create the file
    "ATTACH ':memory:' AS other",
    "DETACH main",
    "PRAGMA query_only=0",
    "PRAGMA query_only=ON",  # the engine's own statement, cached: still asked about
    "PRAGMA journal_mode=delete",
    "PRAGMA user_version=5",
    "PRAGMA main.application_id=5",
    "PRAGMA writable_schema=1",
    "PRAGMA foreign_keys=OFF",
    "PRAGMA wal_checkpoint(TRUNCATE)",
    "PRAGMA wal_checkpoint",
    "PRAGMA optimize",
    "PRAGMA incremental_vacuum",
    "SELECT load_extension('nothing')",
    "CREATE TRIGGER extra AFTER INSERT ON pages BEGIN SELECT 1; END",
    "CREATE VIRTUAL TABLE extra USING fts5(x)",
    "INSERT INTO pages SELECT * FROM pages; SELECT 1",
    "REPLACE INTO crawls SELECT * FROM crawls",
    "UPDATE pages SET title = 'x' RETURNING id",
    "RELEASE s",
    "REINDEX pages",
]
POSTGRES_ONLY = [
    "WITH d AS (DELETE FROM pages RETURNING *) SELECT * FROM d",
    "WITH d AS (UPDATE pages SET title = 'x' RETURNING id) SELECT count(*) FROM d",
    "SELECT nextval(pg_get_serial_sequence('pages', 'id'))",
    "SELECT setval(pg_get_serial_sequence('pages', 'id'), 1)",
    "SELECT set_config('transaction_read_only', 'off', true)",
    "SET TRANSACTION READ WRITE",
    "SET default_transaction_read_only = off",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "COMMIT; DELETE FROM pages",
    "ROLLBACK; DELETE FROM pages",
    "END",
    "START TRANSACTION READ WRITE",
    "COPY pages TO '{escape}'",
    "COPY (SELECT 1) TO PROGRAM 'touch {escape}'",
    "COPY pages FROM STDIN",
    "COPY pages TO STDOUT",
    "DO $$ BEGIN DELETE FROM pages; END $$",
    "DO $$ BEGIN COMMIT; END $$",
    "VACUUM FULL pages",
    "CLUSTER pages",
    "REINDEX TABLE pages",
    "TRUNCATE links",
    "LOCK TABLE pages IN ACCESS EXCLUSIVE MODE",
    "SELECT * FROM pages FOR UPDATE",
    "SELECT * FROM pages FOR SHARE",
    "PREPARE p AS DELETE FROM pages",
    "EXPLAIN ANALYZE DELETE FROM pages",
    "MERGE INTO pages USING pages p2 ON false WHEN NOT MATCHED THEN DO NOTHING",
    "CREATE TABLE extra AS SELECT * FROM pages",
    "SELECT * INTO extra FROM pages",
    "CREATE EXTENSION IF NOT EXISTS dblink",
    "REFRESH MATERIALIZED VIEW nothing",
    "NOTIFY crawler",
    "LISTEN crawler",
    "DISCARD ALL",
    "CHECKPOINT",
    "GRANT SELECT ON pages TO PUBLIC",
    "SECURITY LABEL ON TABLE pages IS 'x'",
    "COMMENT ON TABLE pages IS 'x'",
    "SELECT pg_create_physical_replication_slot('crawler_sql_escape')",
    "SELECT pg_reload_conf()",
    "SELECT pg_stat_reset()",
    "SELECT lo_export(0, '{escape}')",
]


# A crawl database to query, one of each kind per test module (and xdist worker): the refusals
# must leave it as it was, so the tests can share it, each checking before and after.


@pytest.fixture(scope="module")
def sqlite_crawl(tmp_path_factory) -> str:
    return _crawl(f"sqlite:///{tmp_path_factory.mktemp('sql') / 'crawl.db'}")


@pytest.fixture(scope="module")
def pg_crawl(postgres_server) -> str:
    from tests.postgres import fresh_database

    return _crawl(fresh_database(postgres_server, f"t_sql_{uuid.uuid4().hex[:12]}"))


@pytest.fixture(params=["sqlite", "postgresql"])
def crawled(request) -> str:
    """Each database the crawler supports (as `any_db`), holding a finished crawl."""
    return request.getfixturevalue("sqlite_crawl" if request.param == "sqlite" else "pg_crawl")


def _crawl(db: str) -> str:
    with TreeSite(pages=PAGES) as site:
        summary = crawler.crawl([site.url], db=db, name="tree", concurrency=2)
    assert summary.pages == PAGES
    return db


def _sha256(path: Path) -> str:
    """A missing file hashes as an empty one: SQLite may leave an empty -wal behind a
    read-only connection, which holds nothing."""
    return hashlib.sha256(path.read_bytes() if path.exists() else b"").hexdigest()


def snapshot(db: str) -> dict:
    """Everything a write could change: for SQLite the bytes of the file and its -wal (read
    first, before this function's own connection), and on either database every table's rows
    (count and a digest), the sequences, large objects and replication slots."""
    if db.startswith("sqlite"):
        path = Path(sqlite_path(db))
        state = {"file": _sha256(path), "wal": _sha256(Path(f"{path}-wal"))}
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            tables = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            for table in tables:
                state[table] = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
            state["schema"] = conn.execute("SELECT * FROM sqlite_master ORDER BY name").fetchall()
        conn.close()
        return state
    plain = db.replace("postgresql+psycopg://", "postgresql://")
    state = {}
    with psycopg.connect(plain) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "ORDER BY 1"
        ).fetchall()
        for (table,) in tables:
            state[table] = conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) "
                f'FROM "{table}" t'
            ).fetchone()
        for name, query in {
            "sequences": "SELECT sequencename, last_value FROM pg_sequences ORDER BY 1",
            "large objects": "SELECT count(*) FROM pg_largeobject_metadata",
            "slots": "SELECT slot_name FROM pg_replication_slots",
            "temp": "SELECT count(*) FROM pg_class WHERE relpersistence = 't'",
        }.items():
            state[name] = conn.execute(query).fetchall()
    return state


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """`crawler ARGS` in this process, as the command line runs it."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_refused(capsys, db: str, statement: str) -> None:
    statement = statement.replace("{escape}", ESCAPE)
    before = snapshot(db)
    code, out, err = run_cli(capsys, "sql", statement, "--db", db)
    assert code == 2, (statement, out, err)
    assert err.startswith(REFUSED) and err.count("\n") == 1, (statement, err)
    assert out == ""
    assert snapshot(db) == before, statement
    assert not Path(ESCAPE).exists(), statement


@pytest.mark.parametrize("statement", BOTH)
def test_a_statement_that_would_write_is_refused_and_changes_nothing(capsys, crawled, statement):
    assert_refused(capsys, crawled, statement)


@pytest.mark.parametrize("statement", SQLITE_ONLY)
def test_sqlite_refuses_what_a_read_only_file_alone_would_let_through(
    capsys, sqlite_crawl, statement
):
    assert_refused(capsys, sqlite_crawl, statement)


@pytest.mark.parametrize("statement", POSTGRES_ONLY)
def test_postgres_refuses_writes_escapes_and_server_side_effects(capsys, pg_crawl, statement):
    assert_refused(capsys, pg_crawl, statement)


def test_the_refusal_says_what_was_refused(crawled):
    with pytest.raises(RefusedStatement) as refused:
        sql("DELETE FROM pages", db=crawled)
    assert refused.value.exit_code == 2
    message = str(refused.value)
    assert message.startswith("crawler sql only reads: ") and "\n" not in message
    assert "DELETE" in message or "delete from pages" in message
    with pytest.raises(RefusedStatement, match="one statement at a time"):
        sql("SELECT 1; SELECT 2", db=crawled)


def test_sqlite_names_the_action_it_denied(sqlite_crawl):
    cases = {
        "DELETE FROM pages": "SQLite refused to delete from pages",
        f"VACUUM INTO '{ESCAPE}'": f"SQLite refused to attach the database file '{ESCAPE}'",
        "PRAGMA query_only=0": "SQLite refused to set PRAGMA query_only",
        "CREATE TEMP TABLE t (x)": "SQLite refused to insert into sqlite_temp_master",
        "BEGIN": "SQLite refused to begin a transaction",
        "SELECT load_extension('x')": "SQLite refused to call load_extension()",
    }
    for statement, said in cases.items():
        with pytest.raises(RefusedStatement) as refused:
            sql(statement, db=sqlite_crawl)
        assert str(refused.value).startswith(f"crawler sql only reads: {said} "), statement


def test_postgres_says_the_statement_is_not_a_query(pg_crawl):
    with pytest.raises(RefusedStatement, match=r"runs only a query here .*\"DELETE\""):
        sql("DELETE FROM pages", db=pg_crawl)
    with pytest.raises(RefusedStatement, match="in a read-only transaction"):
        sql("SELECT * FROM pages FOR UPDATE", db=pg_crawl)
    with pytest.raises(RefusedStatement, match="in a read-only cursor"):
        sql("WITH d AS (DELETE FROM pages RETURNING *) SELECT * FROM d", db=pg_crawl)


@pytest.mark.parametrize(
    "statement, said",
    [
        ("SELEC 1", "SELEC"),
        ("SELECT * FROM no_such_table", "no_such_table"),
        ("DELETE FROM no_such_table", "no_such_table"),
        ("SELECT nope FROM pages", "nope"),
        ("SELECT ?", ""),
    ],
)
def test_sql_that_is_not_valid_is_one_line_too(capsys, crawled, statement, said):
    if crawled.startswith("postgresql") and statement == "SELECT ?":
        statement = "SELECT $1"
    before = snapshot(crawled)
    code, out, err = run_cli(capsys, "sql", statement, "--db", crawled)
    assert code == 2 and out == ""
    assert err.startswith("crawler: error: not valid SQL: ") and err.count("\n") == 1, err
    assert said in err
    assert snapshot(crawled) == before


def test_an_empty_statement_is_a_usage_error(crawled):
    with pytest.raises(UsageError, match="give one SQL statement"):
        sql("  \n", db=crawled)


def test_a_join_returns_the_right_rows(crawled):
    """Each page's links, joined to the pages they lead to: page N links to its children
    2N+1 and 2N+2, home and itself (TreeSite)."""
    columns, rows = sql(
        "SELECT p.title AS page, t.title AS target, p.link_count "
        "FROM pages p JOIN links l ON l.page_id = p.id JOIN pages t ON t.url = l.url "
        "ORDER BY p.title, l.position",
        db=crawled,
    )
    assert columns == ("page", "target", "link_count")
    found: dict[str, list[str]] = {}
    for page, target, link_count in rows:
        found.setdefault(page, []).append(target)
        assert link_count == 4 if page in ("Page 0", "Page 1", "Page 2") else 2
    assert found == {
        f"Page {n}": [f"Page {c}" for c in (2 * n + 1, 2 * n + 2) if c < PAGES]
        + ["Page 0", f"Page {n}"]
        for n in range(PAGES)
    }


def test_an_empty_result_has_columns_and_no_rows(crawled):
    assert sql("SELECT url, title FROM pages WHERE 1 = 0", db=crawled) == (("url", "title"), [])


def test_limit_takes_the_first_rows(crawled):
    columns, rows = sql("SELECT title FROM pages ORDER BY title", db=crawled, limit=2)
    assert (columns, rows) == (("title",), [("Page 0",), ("Page 1",)])
    with pytest.raises(UsageError):
        sql("SELECT 1", db=crawled, limit=-1)


def test_rows_stream_from_an_endless_query(crawled):
    """A query with no end: only streaming rows (a cursor) can give the first ones."""
    endless = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i FROM n"
        if crawled.startswith("sqlite")
        else "SELECT generate_series(1, 2000000000) AS i"
    )
    engine = open_db_read_only(crawled)
    started = time.monotonic()
    try:
        with read_only_statement(engine, endless) as result:
            assert isinstance(result.rows, Iterator)
            assert [next(result.rows) for _ in range(3)] == [(1,), (2,), (3,)]
            assert result.columns == ("i",)
    finally:
        engine.dispose()
    assert time.monotonic() - started < 20


def test_one_engine_runs_statement_after_statement(crawled):
    """A refused statement leaves nothing behind on the engine's connections: the next one
    (on the same engine, as a program using the API would) runs, read-only again."""
    engine = open_db_read_only(crawled)
    try:
        for statement in ("DELETE FROM pages", "SELEC", "DELETE FROM pages"):
            with pytest.raises(UsageError), read_only_statement(engine, statement):
                pass
        with read_only_statement(engine, "SELECT count(*) FROM pages") as result:
            assert list(result.rows) == [(PAGES,)]
    finally:
        engine.dispose()


def test_json_lines_and_csv(capsys, crawled):
    statement = "SELECT title, link_count FROM pages ORDER BY title"
    code, out, err = run_cli(capsys, "sql", statement, "--json", "--db", crawled)
    assert (code, err) == (0, "")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["title"] for r in rows] == [f"Page {n}" for n in range(PAGES)]
    assert all(set(r) == {"title", "link_count"} and isinstance(r["link_count"], int) for r in rows)

    code, out, err = run_cli(capsys, "sql", statement, "--csv", "--db", crawled)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "title,link_count" and len(lines) == PAGES + 1
    assert lines[1].startswith("Page 0,")


def test_the_table_shows_at_most_limit_rows(capsys, crawled):
    code, out, err = run_cli(
        capsys, "sql", "SELECT title FROM pages ORDER BY title", "--limit", "2", "--db", crawled
    )
    assert code == 0
    assert "Page 0" in out and "Page 1" in out and "Page 2" not in out
    assert "first 2 rows shown" in err


def test_sqlite_allows_explain_and_the_pragmas_that_only_report(sqlite_crawl):
    before = snapshot(sqlite_crawl)
    columns, rows = sql("PRAGMA table_info(pages)", db=sqlite_crawl)
    assert "name" in columns and "title" in [r[columns.index("name")] for r in rows]
    _, rows = sql("SELECT name FROM pragma_table_info('pages') ORDER BY cid", db=sqlite_crawl)
    assert ("url",) in rows
    columns, rows = sql("EXPLAIN SELECT * FROM pages", db=sqlite_crawl)
    assert "opcode" in columns and rows
    _, rows = sql("EXPLAIN QUERY PLAN SELECT * FROM pages WHERE id = 1", db=sqlite_crawl)
    assert rows
    for reporting in (
        "PRAGMA index_list(pages)",
        "PRAGMA foreign_key_list(pages)",
        "PRAGMA user_version",
        "PRAGMA query_only",
        "PRAGMA integrity_check",
        "PRAGMA foreign_key_check",
    ):
        sql(reporting, db=sqlite_crawl)
    assert sql("PRAGMA query_only", db=sqlite_crawl) == (("query_only",), [(1,)])
    assert snapshot(sqlite_crawl) == before


def test_postgres_reads_in_a_read_only_transaction(pg_crawl):
    _, rows = sql(
        "SELECT current_setting('transaction_read_only'), current_setting('statement_timeout')",
        db=pg_crawl,
    )
    assert rows == [("on", "5min")]
    columns, rows = sql("TABLE crawls", db=pg_crawl)
    assert rows[0][columns.index("name")] == "tree"
    assert sql("VALUES (1, 'a')", db=pg_crawl) == (("column1", "column2"), [(1, "a")])


def test_postgres_what_a_statement_may_do_does_not_outlive_it(pg_crawl):
    """Some things are not writes and run (a session setting, an advisory lock, a large
    object, which PostgreSQL 15 creates even in a read-only transaction); the transaction is
    rolled back and the connection closed, so none of them is there afterwards."""
    before = snapshot(pg_crawl)
    sql("SELECT set_config('default_transaction_read_only', 'off', false)", db=pg_crawl)
    sql("SELECT pg_advisory_lock(4242)", db=pg_crawl)
    sql("SELECT lo_create(0)", db=pg_crawl)
    assert snapshot(pg_crawl) == before
    plain = pg_crawl.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as conn:
        assert conn.execute("SELECT pg_try_advisory_lock(4242)").fetchone() == (True,)
    engine = open_db_read_only(pg_crawl)
    try:
        statement = "SELECT current_setting('default_transaction_read_only')"
        with read_only_statement(engine, statement) as result:
            assert list(result.rows) == [("on",)]
    finally:
        engine.dispose()


def test_postgres_stops_a_statement_that_runs_too_long(capsys, pg_crawl, monkeypatch):
    monkeypatch.setattr(sql_module, "STATEMENT_TIMEOUT_S", 1)
    code, out, err = run_cli(capsys, "sql", "SELECT pg_sleep(10)", "--db", pg_crawl)
    assert code == 1 and out == ""
    assert "ran longer than 1 s" in err and err.count("\n") == 1


def test_a_pending_wal_is_read_and_not_checkpointed(capsys, sqlite_crawl, tmp_path):
    """A database whose last commits are still in its -wal (a crawl that was killed, or is
    running): `crawler sql` reads them, and neither its refusals nor its reads move them
    into the file."""
    source = Path(sqlite_path(sqlite_crawl))
    work = tmp_path / "work.db"
    shutil.copy(source, work)
    writer = sqlite3.connect(work)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("UPDATE pages SET title = 'from the wal' WHERE title = 'Page 0'")
    writer.commit()
    pending = tmp_path / "pending.db"
    shutil.copy(work, pending)
    shutil.copy(f"{work}-wal", f"{pending}-wal")
    writer.close()
    db = f"sqlite:///{pending}"
    assert Path(f"{pending}-wal").stat().st_size > 0
    before = snapshot(db)
    for statement in (
        "PRAGMA wal_checkpoint(TRUNCATE)",
        "PRAGMA journal_mode=delete",
        "VACUUM",
        f"VACUUM INTO '{ESCAPE}'",
        "DELETE FROM pages",
    ):
        assert_refused(capsys, db, statement)
    _, rows = sql("SELECT count(*) FROM pages WHERE title = 'from the wal'", db=db)
    assert rows == [(1,)]
    assert snapshot(db) == before


WRITER_REFUSED = [
    "SELECT nextval(pg_get_serial_sequence('pages', 'id'))",
    "SELECT setval(pg_get_serial_sequence('pages', 'id'), 1)",
    "SELECT * FROM pages FOR UPDATE",
    "SELECT set_config('transaction_read_only', 'off', true)",
    "WITH d AS (DELETE FROM pages RETURNING *) SELECT * FROM d",
    "DELETE FROM pages",
    "SELECT 1; DELETE FROM pages",
]


def test_postgres_refuses_a_login_that_may_write_everything(capsys, pg_crawl):
    """Not a superuser, so there is no read-only role to run as: the login's own privileges
    would allow every write here, and the READ ONLY transaction and the cursor refuse them."""
    role = f"writer_{uuid.uuid4().hex[:8]}"
    plain = pg_crawl.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'w'")
        conn.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        conn.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
    writer = make_url(pg_crawl).set(username=role, password="w").render_as_string(False)
    assert sql("SELECT current_user", db=writer)[1] == [(role,)]
    for statement in WRITER_REFUSED:
        assert_refused(capsys, writer, statement)
    with pytest.raises(RefusedStatement, match="cannot execute nextval"):
        sql(WRITER_REFUSED[0], db=writer)
