"""The listings: a crawl's URLs with their last answer, its links (and the broken ones), its
failures by kind and its hosts. Each reads through an index and stops at its limit, so that it
answers as fast on a crawl of a million URLs as on a small one."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, and_, func, literal_column, select
from sqlalchemy.sql import Select

from crawler.query.common import is_last_attempt, iso, last_fetch_id, ms, ranked
from crawler.query.crawls import counts_by_host_and_depth
from crawler.query.options import DEFAULT_LIMIT
from crawler.query.results import ErrorCount, HostInfo, LinkInfo, PageInfo
from crawler.store.clock import DatabaseClock
from crawler.store.models import STATES
from crawler.store.tables import (
    fetches_t,
    frontier_t,
    hosts_t,
    in_crawl,
    links_t,
    pages_t,
    robots_t,
)
from crawler.urls import url_key

TARGETS_AT_ONCE = 500


@dataclass(frozen=True, slots=True)
class PageFilter:
    """What `crawler pages` narrows the URLs to; None: any."""

    status: int | None = None
    error: str | None = None
    host: str | None = None
    depth: int | None = None
    state: str | None = None
    title_contains: str | None = None


def error_counts(
    conn: Connection, crawl_id: int, *, limit: int = DEFAULT_LIMIT, with_urls: bool = True
) -> list[ErrorCount]:
    """Failures by error kind, then by 4xx/5xx status: attempts that ended so, URLs whose last
    attempt did (unless not `with_urls`: that looks up every failed attempt's URL), and the
    newest example."""
    fe = fetches_t.c
    found = []
    for kind, attempts in conn.execute(
        select(fe.error_kind, func.count())
        .where(fe.crawl_id == crawl_id, fe.error_kind.is_not(None))
        .group_by(fe.error_kind)
    ):
        found.append((kind, attempts, fe.error_kind == kind))
    for status, attempts in conn.execute(
        select(fe.status, func.count())
        .where(fe.crawl_id == crawl_id, fe.status >= 400, fe.error_kind.is_(None))
        .group_by(fe.status)
    ):
        found.append(
            (f"HTTP {status}", attempts, and_(fe.status == status, fe.error_kind.is_(None)))
        )
    found.sort(key=lambda item: (-item[1], item[0]))
    counts = []
    for kind, attempts, match in found[:limit]:
        where = (fe.crawl_id == crawl_id, match)
        urls = None
        if with_urls:
            urls = conn.execute(
                select(func.count()).where(*where, is_last_attempt(crawl_id, fetches_t))
            ).scalar_one()
        example = conn.execute(
            select(fe.url, fe.error_message)
            .where(*where)
            .order_by(fe.started_at.desc())  # the kind and status indexes' own order
            .limit(1)
        ).first()
        counts.append(ErrorCount(kind, attempts, urls, example.url, example.error_message))
    return counts


def _page_columns(crawl_id: int, fetch):
    f = frontier_t.c
    return (
        f.url,
        f.state,
        f.host,
        f.depth,
        f.attempts,
        f.skip_reason,
        fetch.c.status,
        fetch.c.error_kind,
        fetch.c.content_type,
        fetch.c.body_bytes,
        fetch.c.total_s,
        fetch.c.started_at,
        pages_t.c.title,
    )


def _state_filter(states: tuple[str, ...]):
    """`state IN (...)` with the states written out, so that a query on one host (or depth)
    seeks into (crawl_id, state, host, depth) once per state instead of reading the crawl."""
    return frontier_t.c.state.in_([literal_column(f"'{s}'") for s in states])


def _escaped_like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _frontier_filters(query: Select, where: PageFilter) -> Select:
    f = frontier_t.c
    if where.host is not None:
        query = query.where(f.host == where.host)
    if where.depth is not None:
        query = query.where(f.depth == where.depth)
    if where.state is not None:
        query = query.where(f.state == where.state)
    return query


def _chosen(crawl_id: int, where: PageFilter, limit: int, dialect: str) -> tuple[Select, str]:
    """The rows to show, at most `limit`, as a query of their ids, and what it selects (a
    fetch's id, or a frontier row's): read from the indexes alone where it can be, so that a
    URL's last attempt is looked up for the rows shown, not for every row that matches."""
    f = frontier_t.c
    if where.status is not None or where.error is not None:
        # from the answers, in the order they were started (the indexes' own order)
        fetch = fetches_t.alias("chosen")
        query = (
            select(fetch.c.id)
            .join(frontier_t, f.id == fetch.c.frontier_id)
            .where(fetch.c.crawl_id == crawl_id, is_last_attempt(crawl_id, fetch))
            .order_by(fetch.c.started_at, fetch.c.id)
        )
        if where.status is not None:
            query = query.where(fetch.c.status == where.status)
        if where.error is not None:
            query = query.where(fetch.c.error_kind == where.error)
        if where.title_contains:
            query = query.join(pages_t, pages_t.c.frontier_id == f.id).where(
                pages_t.c.title.ilike(_escaped_like(where.title_contains), escape="\\")
            )
        return _frontier_filters(query, where).limit(limit), "fetch"
    if where.title_contains:
        # from the crawl's pages, in the order they were stored: a title is only on a page
        query = (
            select(pages_t.c.frontier_id)
            .join(frontier_t, f.id == pages_t.c.frontier_id)
            .where(
                pages_t.c.crawl_id == crawl_id,
                pages_t.c.title.ilike(_escaped_like(where.title_contains), escape="\\"),
            )
            .order_by(pages_t.c.id)
        )
        return _frontier_filters(query, where).limit(limit), "frontier"
    query = select(f.id).order_by(f.id)
    if where.host is not None or where.depth is not None or where.state is not None:
        # (crawl_id, state, host, depth), sought once per state
        query = query.where(
            f.crawl_id == crawl_id, _state_filter((where.state,) if where.state else STATES)
        )
    elif dialect == "sqlite":
        # the table in id order, stopping at the limit (by the crawl's index, SQLite would
        # read and sort every id of the crawl first)
        query = query.where(f.crawl_id + 0 == crawl_id)
    else:
        query = query.where(f.crawl_id == crawl_id)
    return _frontier_filters(query, where).limit(limit), "frontier"


def _pages_query(crawl_id: int, where: PageFilter, limit: int, dialect: str) -> Select:
    """The chosen rows with their URL, last attempt and title."""
    f = frontier_t.c
    fetch = fetches_t.alias("fetch")
    chosen, kind = _chosen(crawl_id, where, limit, dialect)
    query = select(*_page_columns(crawl_id, fetch))
    if kind == "fetch":
        query = (
            query.select_from(fetch)
            .join(frontier_t, f.id == fetch.c.frontier_id)
            .where(fetch.c.id.in_(chosen))
            .order_by(fetch.c.started_at, fetch.c.id)
        )
    else:
        query = (
            query.select_from(frontier_t)
            .outerjoin(fetch, fetch.c.id == last_fetch_id(crawl_id, f.id))
            .where(f.id.in_(chosen))
            .order_by(f.id)
        )
    return query.outerjoin(pages_t, pages_t.c.frontier_id == f.id)


def list_pages(
    conn: Connection, crawl_id: int, where: PageFilter, *, limit: int = DEFAULT_LIMIT
) -> list[PageInfo]:
    rows = conn.execute(_pages_query(crawl_id, where, limit, conn.dialect.name)).all()
    return [
        PageInfo(
            url=row.url,
            state=row.state,
            host=row.host,
            depth=row.depth,
            attempts=row.attempts,
            status=row.status,
            error_kind=row.error_kind,
            title=row.title,
            content_type=row.content_type,
            bytes=row.body_bytes,
            total_ms=ms(row.total_s),
            fetched_at=iso(row.started_at),
            skip_reason=row.skip_reason,
        )
        for row in rows
    ]


def _targets(conn: Connection, crawl_id: int, urls: set[str]) -> dict[str, tuple]:
    """Each URL's frontier state and last answer (status, error kind), by the dedup key."""
    if not urls:
        return {}
    f = frontier_t.c
    fetch = fetches_t.alias("fetch")
    keys = {url_key(url): url for url in urls}
    listed = list(keys)
    found = {}
    for at in range(0, len(listed), TARGETS_AT_ONCE):  # under every driver's parameter limit
        for row in conn.execute(
            select(f.url_key, f.state, fetch.c.status, fetch.c.error_kind)
            .select_from(frontier_t)
            .outerjoin(fetch, fetch.c.id == last_fetch_id(crawl_id, f.id))
            .where(in_crawl(f.crawl_id, crawl_id), f.url_key.in_(listed[at : at + TARGETS_AT_ONCE]))
        ):
            found[keys[row.url_key]] = (row.state, row.status, row.error_kind)
    return found


def _link_infos(conn: Connection, crawl_id: int, rows) -> list[LinkInfo]:
    targets = _targets(conn, crawl_id, {row.to_url for row in rows})
    infos = []
    for row in rows:
        state, status, error = targets.get(row.to_url, (None, None, None))
        infos.append(
            LinkInfo(
                from_url=row.from_url,
                to_url=row.to_url,
                anchor_text=row.anchor_text,
                nofollow=bool(row.nofollow),
                followed=bool(row.followed),
                target_state=state,
                target_status=status,
                target_error=error,
            )
        )
    return infos


def _links_query() -> Select:
    lk = links_t.c
    return select(
        pages_t.c.url.label("from_url"),
        lk.url.label("to_url"),
        lk.anchor_text,
        lk.nofollow,
        lk.followed,
    ).join(pages_t, pages_t.c.id == lk.page_id)


def links_on(conn: Connection, crawl_id: int, frontier_id: int, *, limit: int = DEFAULT_LIMIT):
    """The links on one URL's page, in document order (none when it is not a stored page)."""
    query = (
        _links_query()
        .where(pages_t.c.frontier_id == frontier_id)
        .order_by(links_t.c.position)
        .limit(limit)
    )
    return _link_infos(conn, crawl_id, conn.execute(query).all())


def links_pointing_at(conn: Connection, crawl_id: int, target: str, *, limit: int = DEFAULT_LIMIT):
    """The links of this crawl's pages whose resolved, canonical target is `target`."""
    query = (
        _links_query()
        .where(links_t.c.url == target, pages_t.c.crawl_id == crawl_id)
        .order_by(links_t.c.id)
        .limit(limit)
    )
    return _link_infos(conn, crawl_id, conn.execute(query).all())


def count_links_to(conn: Connection, crawl_id: int, url: str) -> int:
    return conn.execute(
        select(func.count())
        .select_from(links_t)
        .join(pages_t, pages_t.c.id == links_t.c.page_id)
        .where(links_t.c.url == url, pages_t.c.crawl_id == crawl_id)
    ).scalar_one()


def all_links(conn: Connection, crawl_id: int, *, limit: int = DEFAULT_LIMIT):
    query = (
        _links_query()
        .where(pages_t.c.crawl_id == crawl_id)
        .order_by(pages_t.c.id, links_t.c.position)
        .limit(limit)
    )
    return _link_infos(conn, crawl_id, conn.execute(query).all())


def broken_links(conn: Connection, crawl_id: int, *, limit: int = DEFAULT_LIMIT):
    """Links whose target failed or answered 4xx/5xx at its last attempt, with the pages they
    are on: found from the failed answers (an index each), then the links to each."""
    fe = fetches_t.c
    found: list = []
    # Two queries, one per index (an OR of the two would read every attempt of the crawl),
    # each read only as far as the limit needs: the failures first, then 4xx/5xx answers.
    for match in (fe.error_kind.is_not(None), and_(fe.status >= 400, fe.error_kind.is_(None))):
        targets = conn.execute(
            select(fe.url)
            .where(fe.crawl_id == crawl_id, match, is_last_attempt(crawl_id, fetches_t))
            .order_by(fe.started_at, fe.id)
        ).scalars()
        for target in targets:
            found += conn.execute(
                _links_query()
                .where(links_t.c.url == target, pages_t.c.crawl_id == crawl_id)
                .order_by(links_t.c.id)
                .limit(limit - len(found))
            ).all()
            if len(found) >= limit:
                return _link_infos(conn, crawl_id, found)
    return _link_infos(conn, crawl_id, found)


def _percentile(conn: Connection, crawl_id: int, host: str, count: int, fraction: float):
    """A host's fetch time at `fraction` (nearest rank), read in order from its index."""
    fe = fetches_t.c
    return ranked(conn, fe.total_s, [fe.crawl_id == crawl_id, fe.host == host], count, fraction)


def _breaker(row, now: float) -> str:
    if row.breaker_until > now:
        return f"open for {row.breaker_until - now:.0f} s (trips {row.breaker_trips})"
    return f"closed (trips {row.breaker_trips})" if row.breaker_trips else "closed"


def list_hosts(conn: Connection, crawl_id: int, *, limit: int = DEFAULT_LIMIT) -> list[HostInfo]:
    """Each host with the most URLs first: its URLs by outcome, its attempts and how long they
    took (median and 95th percentile), its robots.txt verdict and its breaker. (Its failed
    attempts are not counted: that would read each one; `errors` counts them by kind.)"""
    now = DatabaseClock().read(conn)  # the clock the leases were written on
    fe = fetches_t.c
    urls, _ = counts_by_host_and_depth(conn, crawl_id)
    fetches = dict(
        conn.execute(
            select(fe.host, func.count()).where(fe.crawl_id == crawl_id).group_by(fe.host)
        ).all()
    )
    host_rows = {
        row.host: row for row in conn.execute(select(hosts_t).where(hosts_t.c.crawl_id == crawl_id))
    }
    verdicts = {
        row.origin.split("://", 1)[-1]: row.verdict
        for row in conn.execute(
            select(robots_t.c.origin, robots_t.c.verdict).where(robots_t.c.crawl_id == crawl_id)
        )
    }
    ordered = sorted(urls, key=lambda host: (-sum(urls[host].values()), host))[:limit]
    infos = []
    for host in ordered:
        count = fetches.get(host, 0)
        median = _percentile(conn, crawl_id, host, count, 0.5)
        p95 = _percentile(conn, crawl_id, host, count, 0.95)
        row = host_rows.get(host)
        infos.append(
            HostInfo(
                host=host,
                urls=sum(urls[host].values()),
                done=urls[host]["done"],
                failed=urls[host]["failed"],
                skipped=urls[host]["skipped"],
                fetches=count,
                median_ms=ms(median),
                p95_ms=ms(p95),
                robots=verdicts.get(host),
                breaker=_breaker(row, now) if row is not None else "closed",
                delay_s=row.delay if row is not None else 0.0,
            )
        )
    return infos
