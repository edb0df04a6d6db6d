"""`crawler show`: everything stored about one URL, from how it was found to its last answer."""

from __future__ import annotations

from sqlalchemy import Connection, select

from crawler.query.common import frontier_row, iso, last_fetch_id, ms
from crawler.query.listings import count_links_to, links_on, links_pointing_at
from crawler.query.results import AttemptInfo, URLStory
from crawler.store.tables import fetches_t, frontier_t, pages_t

MAX_HOPS = 30  # more than any redirect limit the crawler allows


def _attempts(conn: Connection, crawl_id: int, frontier_id: int) -> list[AttemptInfo]:
    fe = fetches_t.c
    rows = conn.execute(
        select(fetches_t)
        .where(fe.crawl_id == crawl_id, fe.frontier_id == frontier_id)
        .order_by(fe.id)
    ).all()
    return [
        AttemptInfo(
            attempt=row.attempt,
            run_id=row.run_id,
            worker=row.worker,
            started_at=iso(row.started_at) or "",
            status=row.status,
            error_kind=row.error_kind,
            error_message=row.error_message,
            location=row.location,
            content_type=row.content_type,
            bytes=row.body_bytes,
            queue_wait_ms=ms(row.queue_wait_s) or 0.0,
            connect_ms=ms(row.connect_s),
            first_byte_ms=ms(row.first_byte_s),
            download_ms=ms(row.download_s),
            parse_ms=ms(row.parse_s),
            total_ms=ms(row.total_s) or 0.0,
        )
        for row in rows
    ]


def _location(conn: Connection, crawl_id: int, frontier_id: int) -> str | None:
    """Where a URL's last answer sent it, if it was a redirect."""
    fe = fetches_t.c
    return conn.execute(
        select(fe.location).where(fe.id == last_fetch_id(crawl_id, frontier_id))
    ).scalar()


def _redirected_from(conn: Connection, crawl_id: int, row) -> list[str]:
    """The URLs that redirected to this one, first one first: the redirect hops lead back
    through the rows each was found from."""
    chain: list[str] = []
    f = frontier_t.c
    while row.redirect_hops > 0 and row.found_from is not None and len(chain) < MAX_HOPS:
        row = conn.execute(select(frontier_t).where(f.id == row.found_from)).first()
        if row is None:
            break
        chain.append(row.url)
    return chain[::-1]


def _redirects_to(conn: Connection, crawl_id: int, row) -> list[str]:
    chain: list[str] = []
    seen = {row.url}
    while len(chain) < MAX_HOPS:
        target = _location(conn, crawl_id, row.id)
        if target is None:
            break
        chain.append(target)
        row = frontier_row(conn, crawl_id, target)
        if row is None or row.url in seen:
            break
        seen.add(row.url)
    return chain


def url_story(conn: Connection, crawl_id: int, url: str, *, limit: int = 50) -> URLStory | None:
    """Everything about `url` in the crawl, or None when the crawl never met it."""
    row = frontier_row(conn, crawl_id, url)
    if row is None:
        return None
    f = frontier_t.c
    found_on = None
    if row.found_from is not None:
        found_on = conn.execute(select(f.url).where(f.id == row.found_from)).scalar()
    page = conn.execute(
        select(pages_t.c.title, pages_t.c.canonical).where(pages_t.c.frontier_id == row.id)
    ).first()
    return URLStory(
        url=row.url,
        state=row.state,
        host=row.host,
        depth=row.depth,
        attempts=_attempts(conn, crawl_id, row.id),
        skip_reason=row.skip_reason,
        found_on=found_on,
        redirected_from=_redirected_from(conn, crawl_id, row),
        redirects_to=_redirects_to(conn, crawl_id, row),
        title=page.title if page else None,
        canonical=page.canonical if page else None,
        links_out=links_on(conn, crawl_id, row.id, limit=limit),
        links_in=links_pointing_at(conn, crawl_id, row.url, limit=limit),
        links_in_total=count_links_to(conn, crawl_id, row.url),
    )
