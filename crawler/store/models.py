"""The schema, as SQLAlchemy 2.0 typed models. Every change to it is an Alembic migration.

Machine times (leases, next attempts, fetch starts) are epoch seconds in floats, so the same
comparisons work on SQLite and PostgreSQL; human-facing times are timezone-aware datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# re-exported: the write side names the states through the models
from crawler.states import DONE, FAILED, QUEUED, RETRY, SKIPPED, STATES  # noqa: F401

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


# BIGINT on PostgreSQL, but INTEGER on SQLite so that the id is the rowid and autoincrements.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Crawl(Base):
    """One crawl: its seeds and settings. Many runs, on many machines, may work on it."""

    __tablename__ = "crawls"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    seeds: Mapped[list[str]] = mapped_column(JSON, doc="canonical seed URLs")
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, doc="limits, scope, fetch policy")
    state: Mapped[str] = mapped_column(String(20), default="running", doc="running|finished")
    urls_started: Mapped[int] = mapped_column(
        Integer, default=0, doc="frontier rows ever leased; what --max-pages limits"
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class FrontierEntry(Base):
    """One canonical URL of a crawl and where it stands. The unique key is the dedup."""

    __tablename__ = "frontier"
    __table_args__ = (
        UniqueConstraint("crawl_id", "url_key"),
        # Retries that are due: the index holds only the rows waiting for one, so finding the
        # due ones never reads the rest of the queue.
        Index(
            "ix_frontier_retry",
            "crawl_id",
            "next_attempt_at",
            sqlite_where=text("state = 'retry'"),
            postgresql_where=text("state = 'retry'"),
        ),
        # The read side: counts by state, by host and by depth read this index alone, and a
        # listing of one state (or one host, through the states) seeks into it.
        Index("ix_frontier_state", "crawl_id", "state", "host", "depth"),
        # Looking URLs up by their keys (dedup, `show`, link targets) goes through this one,
        # with the crawl as a filter (see tables.in_crawl): the unique index leads with the
        # crawl, and a crawl the planner's statistics do not know yet (a new one) looks so
        # small that it would read the whole crawl through any index on the crawl instead.
        Index("ix_frontier_url_key", "url_key", "crawl_id"),
        # Skipped URLs by reason: only the skipped rows are in it.
        Index(
            "ix_frontier_skipped",
            "crawl_id",
            "skip_reason",
            sqlite_where=text("state = 'skipped'"),
            postgresql_where=text("state = 'skipped'"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    crawl_id: Mapped[int] = mapped_column(ForeignKey("crawls.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text, doc="canonical URL")
    url_key: Mapped[str] = mapped_column(String(32), doc="hash of url, for the unique index")
    host: Mapped[str] = mapped_column(String(300), doc="host[:port], the unit of politeness")
    depth: Mapped[int] = mapped_column(Integer, doc="links from a seed; redirects keep it")
    redirect_hops: Mapped[int] = mapped_column(Integer, default=0, doc="redirects to get here")
    state: Mapped[str] = mapped_column(String(10), default=QUEUED, doc="|".join(STATES))
    attempts: Mapped[int] = mapped_column(
        Integer, default=0, doc="times leased, as of its last result (ready/leases: now)"
    )
    next_attempt_at: Mapped[float] = mapped_column(Float, default=0.0, doc="for state=retry")
    found_from: Mapped[int | None] = mapped_column(
        ForeignKey("frontier.id"), doc="the page (or redirect) that first led here"
    )
    skip_reason: Mapped[str | None] = mapped_column(String(100), doc="why it was never fetched")


class ReadyURL(Base):
    """A queued URL ready to be leased: a narrow copy of its frontier row, stored in the order
    a lease takes URLs (host, depth, key; WITHOUT ROWID on SQLite, so the table is that
    B-tree). Leasing reads and removes neighbouring entries and never writes the frontier's
    wide rows, which are scattered over the whole table once a crawl is large: a URL's row is
    written once, when its outcome is known."""

    __tablename__ = "ready"
    __table_args__ = ({"sqlite_with_rowid": False},)

    crawl_id: Mapped[int] = mapped_column(
        ForeignKey("crawls.id", ondelete="CASCADE"), primary_key=True
    )
    host: Mapped[str] = mapped_column(String(300), primary_key=True)
    depth: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    url_key: Mapped[str] = mapped_column(String(32), primary_key=True)
    frontier_id: Mapped[int] = mapped_column(Id, doc="its frontier row (derived: no key)")
    url: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, doc="times leased so far")
    redirect_hops: Mapped[int] = mapped_column(Integer)


class Lease(Base):
    """A URL in flight: which run holds it, until when, the token that fences a late result,
    and what it takes to put the URL back in `ready` should the lease lapse. Leasing and
    completing, a crawl's hottest writes, touch this small table and `ready`; the frontier's
    row is written once, with the result."""

    __tablename__ = "leases"
    __table_args__ = (
        Index("ix_leases_expiry", "crawl_id", "expires_at"),
        Index("ix_leases_run", "run_id"),
        Index("ix_leases_host", "crawl_id", "host", "depth"),  # a host's shallowest lease
    )

    frontier_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    crawl_id: Mapped[int] = mapped_column(ForeignKey("crawls.id", ondelete="CASCADE"))
    host: Mapped[str] = mapped_column(String(300), doc="the URL's host, for its counts")
    depth: Mapped[int] = mapped_column(Integer)
    url_key: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, doc="this lease's attempt, the first is 1")
    redirect_hops: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), doc="the run holding it")
    token: Mapped[str] = mapped_column(String(40), doc="fences a result from a lapsed lease")
    expires_at: Mapped[float] = mapped_column(Float, doc="epoch seconds; then it lapses")


class Host(Base):
    """One host[:port] of a crawl, shared by every run through the database: when it may next
    be asked, its circuit breaker, and counts of its URLs by state, kept in step with the
    frontier in the same transactions, so that a lease finds the hosts with work without
    reading the queue."""

    __tablename__ = "hosts"
    __table_args__ = (
        UniqueConstraint("crawl_id", "host"),
        # The hosts a lease may claim: those with ready URLs, least recently leased first.
        Index(
            "ix_hosts_ready",
            "crawl_id",
            "leased_at",
            sqlite_where=text("queued > 0"),
            postgresql_where=text("queued > 0"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    crawl_id: Mapped[int] = mapped_column(ForeignKey("crawls.id", ondelete="CASCADE"))
    host: Mapped[str] = mapped_column(String(300))
    next_fetch_at: Mapped[float] = mapped_column(Float, default=0.0, doc="epoch seconds")
    failures: Mapped[int] = mapped_column(Integer, default=0, doc="failures in a row")
    breaker_until: Mapped[float] = mapped_column(Float, default=0.0, doc="open until then")
    breaker_trips: Mapped[int] = mapped_column(Integer, default=0)
    urls_started: Mapped[int] = mapped_column(Integer, default=0, doc="for --max-pages-per-host")
    queued: Mapped[int] = mapped_column(Integer, server_default="0", doc="URLs ready now")
    in_flight: Mapped[int] = mapped_column(Integer, server_default="0", doc="URLs leased")
    retrying: Mapped[int] = mapped_column(Integer, server_default="0", doc="URLs in retry")
    delay: Mapped[float] = mapped_column(
        Float, server_default="0", doc="seconds between requests, as the last lease found"
    )
    cap: Mapped[int | None] = mapped_column(Integer, doc="most in flight; NULL: none or unknown")
    leased_at: Mapped[float] = mapped_column(
        Float, server_default="0", doc="last lease that took its URLs: hosts take turns"
    )


class Robots(Base):
    """robots.txt of one origin (scheme://host[:port]) as fetched, so that every run and
    machine obeys the same rules and it is fetched once per crawl (until it expires)."""

    __tablename__ = "robots"
    __table_args__ = (UniqueConstraint("crawl_id", "origin"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    crawl_id: Mapped[int] = mapped_column(ForeignKey("crawls.id", ondelete="CASCADE"))
    origin: Mapped[str] = mapped_column(String(300))
    verdict: Mapped[str] = mapped_column(
        String(20), doc="fetching|rules|allow_all|disallow_all|unavailable"
    )
    body: Mapped[str | None] = mapped_column(Text, doc="the rules, for verdict=rules")
    status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    fetched_at: Mapped[float | None] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, default=0.0, doc="refetch after this")
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    claim_expires_at: Mapped[float | None] = mapped_column(Float)


class Run(Base):
    """One process working on a crawl, and what it cost."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    crawl_id: Mapped[int] = mapped_column(ForeignKey("crawls.id", ondelete="CASCADE"), index=True)
    frontend: Mapped[str] = mapped_column(String(20))
    concurrency: Mapped[int] = mapped_column(Integer)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    pool_returns: Mapped[str | None] = mapped_column(
        String(10), doc="processes: what a child sent back, pages or bodies"
    )
    parser: Mapped[str | None] = mapped_column(
        String(20), doc="beautifulsoup or lxml; None: a run from before 0006 (beautifulsoup)"
    )
    machine: Mapped[dict[str, Any] | None] = mapped_column(
        JSON, doc="CPUs, memory, Python and library versions of the machine it ran on"
    )
    state: Mapped[str] = mapped_column(
        String(20), default="running", doc="running|finished|interrupted|failed|dead"
    )
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    heartbeat_at: Mapped[float | None] = mapped_column(
        Float,
        doc="the run's last sign of life, on the database's clock (epoch seconds); a run "
        "whose heartbeat is older than the crawl's worker_timeout is dead to the others",
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    wall_s: Mapped[float | None] = mapped_column(Float)
    startup_s: Mapped[float | None] = mapped_column(Float, doc="pool or loop start-up")
    store_s: Mapped[float | None] = mapped_column(Float, doc="time spent writing batches")
    user_cpu_s: Mapped[float | None] = mapped_column(Float, doc="children included")
    system_cpu_s: Mapped[float | None] = mapped_column(Float, doc="children included")
    peak_rss_kb: Mapped[int | None] = mapped_column(
        Integer, doc="children included, summed: shared pages once per child"
    )
    peak_pss_kb: Mapped[int | None] = mapped_column(
        BigInteger, doc="proportional set size, children included: shared pages divided"
    )
    peak_vms_kb: Mapped[int | None] = mapped_column(
        BigInteger, doc="virtual memory reserved, children included (thread stacks count whole)"
    )
    ctx_voluntary: Mapped[int | None] = mapped_column(BigInteger)
    ctx_involuntary: Mapped[int | None] = mapped_column(BigInteger)
    workers: Mapped[int | None] = mapped_column(Integer, doc="threads, processes or tasks")
    ipc_bytes: Mapped[int | None] = mapped_column(BigInteger, doc="moved between processes")
    pages: Mapped[int] = mapped_column(Integer, default=0)
    fetches: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, doc="why it failed, for state=failed")


class Fetch(Base):
    """One HTTP exchange (or the attempt at one), with our own timing of each phase."""

    __tablename__ = "fetches"
    __table_args__ = (
        Index("ix_fetches_crawl_frontier", "crawl_id", "frontier_id"),
        # The read side: answers by status (and the rate over time), failures by kind, and
        # each host's fetch times in order, for its median and 95th percentile.
        Index("ix_fetches_status", "crawl_id", "status", "started_at"),
        Index("ix_fetches_error", "crawl_id", "error_kind", "started_at"),
        Index("ix_fetches_host_time", "crawl_id", "host", "total_s"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    crawl_id: Mapped[int] = mapped_column(ForeignKey("crawls.id", ondelete="CASCADE"))
    frontier_id: Mapped[int] = mapped_column(ForeignKey("frontier.id", ondelete="CASCADE"))
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    worker: Mapped[str] = mapped_column(String(100), doc="thread, process or task name")
    url: Mapped[str] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(300), doc="the URL's host[:port]")
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[float] = mapped_column(Float, doc="epoch seconds")
    status: Mapped[int | None] = mapped_column(Integer)
    content_type: Mapped[str | None] = mapped_column(String(200))
    body_bytes: Mapped[int] = mapped_column(BigInteger, default=0, doc="decoded body read")
    location: Mapped[str | None] = mapped_column(Text, doc="resolved redirect target")
    error_kind: Mapped[str | None] = mapped_column(String(40))
    error_message: Mapped[str | None] = mapped_column(Text)
    queue_wait_s: Mapped[float] = mapped_column(Float, default=0.0)
    connect_s: Mapped[float | None] = mapped_column(Float)
    first_byte_s: Mapped[float | None] = mapped_column(Float)
    download_s: Mapped[float | None] = mapped_column(Float)
    parse_s: Mapped[float | None] = mapped_column(Float)
    total_s: Mapped[float] = mapped_column(Float)


class Page(Base):
    """A successfully fetched HTML page: what we keep of it (never the body)."""

    __tablename__ = "pages"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    crawl_id: Mapped[int] = mapped_column(ForeignKey("crawls.id", ondelete="CASCADE"), index=True)
    frontier_id: Mapped[int] = mapped_column(
        ForeignKey("frontier.id", ondelete="CASCADE"), unique=True
    )
    fetch_id: Mapped[int] = mapped_column(ForeignKey("fetches.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    canonical: Mapped[str | None] = mapped_column(Text, doc='<link rel="canonical">')
    charset: Mapped[str | None] = mapped_column(String(40))
    link_count: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64), doc="sha256 of the body")


class PageLink(Base):
    """A link from a page, in document order, whether or not it was followed."""

    __tablename__ = "links"
    # Which pages link to a URL (`crawler links --to`, broken links).
    __table_args__ = (Index("ix_links_url", "url"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(Text, doc="resolved canonical target")
    anchor_text: Mapped[str] = mapped_column(Text, default="")
    rel: Mapped[str] = mapped_column(String(200), default="")
    nofollow: Mapped[bool] = mapped_column(default=False)
    followed: Mapped[bool] = mapped_column(default=False, doc="in scope and within limits")
