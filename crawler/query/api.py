"""The questions as Python functions, so that a notebook gets the answers the command line
prints: each opens the database read-only, finds the crawl (a name, or `#N` for its id),
checks its filters and returns our dataclasses.

    import crawler
    crawler.status("demo").verdict
    [p.url for p in crawler.pages("demo", status=404)]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO, TypeVar

from sqlalchemy import Connection, Engine

from crawler.errors import UsageError
from crawler.fetch.errors import ErrorKind
from crawler.query import export as exporting
from crawler.query.common import canonical_or_none, frontier_row
from crawler.query.crawls import crawl_info, list_crawls
from crawler.query.listings import (
    PageFilter,
    all_links,
    broken_links,
    links_on,
    links_pointing_at,
    list_hosts,
    list_pages,
)
from crawler.query.listings import (
    error_counts as count_errors,
)
from crawler.query.options import DEFAULT_LIMIT, MAX_LIMIT, SHOW_LIMIT, STATUS_LIMIT
from crawler.query.results import (
    CrawlInfo,
    CrawlStatus,
    ErrorCount,
    HostInfo,
    LinkInfo,
    PageInfo,
    URLStory,
)
from crawler.query.status import crawl_status
from crawler.query.story import url_story
from crawler.query.writers import writer_for
from crawler.store.engine import reading, where
from crawler.store.failures import retrying
from crawler.store.models import STATES
from crawler.store.queries import find_crawl

T = TypeVar("T")
ERROR_KINDS = tuple(kind.value for kind in ErrorKind)


def _engine(db: str | None) -> Engine:
    from crawler.api import open_db_read_only  # the API opens databases one way for all

    engine = open_db_read_only(db)
    if engine.dialect.name == "postgresql":  # one snapshot for every count in an answer
        return engine.execution_options(isolation_level="REPEATABLE READ")
    return engine


def _asking(
    db: str | None, crawl: str | int | None, question: Callable[..., T], *, again: bool = True
) -> T:
    """Run `question(conn, crawl_row)` (or `question(conn)` without a crawl) in one read-only
    transaction, so that every count in an answer comes from the same moment; a dropped
    connection is waited out and the question asked again, unless `again` is false (an
    export has written part of its records by then)."""
    engine = _engine(db)

    def work(conn: Connection) -> T:
        if crawl is None:
            return question(conn)
        row = find_crawl(conn, crawl)
        if row is None:
            raise UsageError(
                f"no crawl {crawl!r} in database {where(engine)}; list them with `crawler crawls`"
            )
        return question(conn, row)

    try:
        if not again:
            with reading(engine) as conn, conn.begin():
                return work(conn)
        return retrying(engine, work, read_only=True)
    finally:
        engine.dispose()


def _shown_db(db: str | None) -> str | None:
    """The --db a suggested command repeats: as given, unless it holds a password."""
    if db is None:
        return None
    from sqlalchemy.engine import make_url

    return "URL" if make_url(db).password else db


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise UsageError(f"--limit takes 1 to {MAX_LIMIT:,}, not {limit}")
    return limit


def crawls(db: str | None = None) -> list[CrawlInfo]:
    """The crawls in a database, each with its state, URLs by state and runs."""
    return _asking(db, None, lambda conn: list_crawls(conn, db=_shown_db(db)))


def crawl(name: str | int, *, db: str | None = None) -> CrawlInfo:
    return _asking(db, name, lambda conn, row: crawl_info(conn, row, db=_shown_db(db)))


def status(name: str | int, *, db: str | None = None, limit: int = STATUS_LIMIT) -> CrawlStatus:
    """One crawl in depth: its verdict and next step, URLs by state, host and depth, its runs
    and their cost, the oldest lease, errors, skip reasons and the rate over time."""
    limit = _limit(limit)
    return _asking(
        db, name, lambda conn, row: crawl_status(conn, row, db=_shown_db(db), limit=limit)
    )


def pages(
    name: str | int,
    *,
    db: str | None = None,
    status: int | None = None,
    error: str | None = None,
    host: str | None = None,
    depth: int | None = None,
    state: str | None = None,
    title_contains: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[PageInfo]:
    """The crawl's URLs with their last answer, in the order they were found (with `status`
    or `error`, in the order of their last attempts), narrowed by the
    filters given (all must hold)."""
    if status is not None and not 100 <= status <= 599:
        raise UsageError(f"--status takes an HTTP status, 100 to 599, not {status}")
    if error is not None and error not in ERROR_KINDS:
        raise UsageError(f"unknown error kind {error!r}; the kinds are {', '.join(ERROR_KINDS)}")
    if state is not None and state not in STATES:
        raise UsageError(f"unknown state {state!r}; the states are {', '.join(STATES)}")
    if depth is not None and depth < 0:
        raise UsageError(f"--depth takes 0 or more, not {depth}")
    where_ = PageFilter(status, error, host, depth, state, title_contains)
    limit = _limit(limit)
    return _asking(db, name, lambda conn, row: list_pages(conn, row.id, where_, limit=limit))


def links(
    name: str | int,
    *,
    db: str | None = None,
    to: str | None = None,
    from_: str | None = None,
    broken: bool = False,
    limit: int = DEFAULT_LIMIT,
) -> list[LinkInfo]:
    """Links of the crawl's pages: those to one URL, those on one page, or the broken ones
    (the target failed or answered 4xx/5xx), each with what became of its target."""
    if sum((to is not None, from_ is not None, broken)) > 1:
        raise UsageError("give one of --to URL, --from URL and --broken")
    limit = _limit(limit)

    def question(conn: Connection, row) -> list[LinkInfo]:
        if to is not None:
            known = frontier_row(conn, row.id, to)
            target = known.url if known else canonical_or_none(to) or to.strip()
            return links_pointing_at(conn, row.id, target, limit=limit)
        if from_ is not None:
            page = frontier_row(conn, row.id, from_)
            if page is None:
                raise UsageError(
                    f"{from_!r} is not a URL of crawl {row.name!r}; `crawler pages {row.name}` "
                    "lists its URLs"
                )
            return links_on(conn, row.id, page.id, limit=limit)
        if broken:
            return broken_links(conn, row.id, limit=limit)
        return all_links(conn, row.id, limit=limit)

    return _asking(db, name, question)


def error_counts(
    name: str | int, *, db: str | None = None, limit: int = DEFAULT_LIMIT
) -> list[ErrorCount]:
    """Failures by kind and 4xx/5xx status, the most frequent first, with an example each."""
    limit = _limit(limit)
    return _asking(db, name, lambda conn, row: count_errors(conn, row.id, limit=limit))


def hosts(name: str | int, *, db: str | None = None, limit: int = DEFAULT_LIMIT) -> list[HostInfo]:
    """The crawl's hosts, the largest first: URLs, failures, fetch times, robots.txt, breaker."""
    limit = _limit(limit)
    return _asking(db, name, lambda conn, row: list_hosts(conn, row.id, limit=limit))


def show(name: str | int, url: str, *, db: str | None = None, limit: int = SHOW_LIMIT) -> URLStory:
    """Everything about one URL: each attempt with its timings, its redirects, its links in
    and out, why it was skipped."""
    limit = _limit(limit)

    def question(conn: Connection, row) -> URLStory:
        story = url_story(conn, row.id, url, limit=limit)
        if story is None:
            raise UsageError(
                f"{url!r} is not a URL of crawl {row.name!r}; `crawler pages {row.name}` "
                "lists its URLs"
            )
        return story

    return _asking(db, name, question)


def export(
    name: str | int,
    out: TextIO,
    *,
    format: str = "jsonl",
    table: str = "urls",
    db: str | None = None,
    on_total: Callable[[int], Any] | None = None,
    on_record: Callable[[], Any] | None = None,
) -> int:
    """Stream `table` of the crawl to `out` as JSON lines, CSV or one JSON array, in constant
    memory; returns how many records. `on_total(n)` is told the count first and `on_record()`
    after each record, for a progress bar."""
    if format not in exporting.FORMATS:
        raise UsageError(f"unknown export format {format!r}; choose {', '.join(exporting.FORMATS)}")
    if table not in exporting.TABLES:
        raise UsageError(f"unknown table {table!r}; choose {', '.join(exporting.TABLES)}")

    def question(conn: Connection, row) -> int:
        if on_total is not None:
            on_total(exporting.count(conn, row.id, table))
        write = writer_for(format, out, exporting.fields(table))
        written = 0
        for record in exporting.records(conn, row.id, table):
            write.record(record)
            written += 1
            if on_record is not None:
                on_record()
        write.close()
        return written

    return _asking(db, name, question, again=False)
