"""The tables as SQLAlchemy Core handles, for the statements both sides write by hand: the
frontier's (the write side) and the questions' (the read side)."""

from __future__ import annotations

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
