"""The same crawl stored in PostgreSQL and in SQLite gives the same pages and links."""

from __future__ import annotations

from sqlalchemy import text

from crawler.store import make_engine
from tests.helpers import TreeSite, cli, last_json

PAGES_AND_LINKS = """
    SELECT p.url, p.title, l.position, l.url, l.followed
    FROM pages p LEFT JOIN links l ON l.page_id = p.id
    ORDER BY p.url, l.position
"""


def stored(db: str) -> list[tuple]:
    with make_engine(db).connect() as conn:
        return [tuple(row) for row in conn.execute(text(PAGES_AND_LINKS))]


def test_crawl_into_postgresql_matches_sqlite(pg_url, db_url):
    with TreeSite(pages=120) as site:
        for db in (pg_url, db_url):
            result = cli("crawl", site.url, "--concurrency", "8", "--json", "--db", db)
            assert result.returncode == 0, result.stderr
            assert last_json(result.stdout)["pages"] == 120
    on_postgres, on_sqlite = stored(pg_url), stored(db_url)
    assert on_postgres == [(u, t, p, lu, bool(f)) for u, t, p, lu, f in on_sqlite]
    assert len(on_postgres) > 120
