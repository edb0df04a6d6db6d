"""The tables as SQLAlchemy Core handles, for the statements both sides write by hand: the
frontier's (the write side) and the questions' (the read side)."""

from __future__ import annotations

from sqlalchemy import literal_column

from crawler.store.models import (
    Crawl,
    Fetch,
    FrontierEntry,
    Host,
    Lease,
    Page,
    PageLink,
    ReadyURL,
    Robots,
    Run,
)

crawls_t = Crawl.__table__
frontier_t = FrontierEntry.__table__
ready_t = ReadyURL.__table__
leases_t = Lease.__table__
hosts_t = Host.__table__
robots_t = Robots.__table__
runs_t = Run.__table__
fetches_t = Fetch.__table__
pages_t = Page.__table__
links_t = PageLink.__table__


def in_crawl(column, crawl_id: int):
    """`column = crawl_id`, written so that no index can seek on it: a lookup by URL key then
    goes through ix_frontier_url_key (key, then crawl), whatever the statistics say of the
    crawl (a crawl too new to be in them is estimated at one row, and its every row would be
    read through an index on the crawl instead)."""
    return column + literal_column("0") == crawl_id
