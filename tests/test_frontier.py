"""The frontier repository on real databases (SQLite and PostgreSQL): leases, fencing, dedup,
limits, host counts kept in step, and a lease path that never reads the queue."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, insert, select, text, update

from crawler.frontier.enqueue import enqueue
from crawler.frontier.leasing import adopt
from crawler.frontier.repository import Frontier
from crawler.model import FetchResult, Link, ParsedPage, Timings
from crawler.policy.admission import Held
from crawler.policy.links import NewURL
from crawler.policy.politeness import Politeness
from crawler.policy.retry import RetryPolicy
from crawler.policy.rules import CrawlRules, Limits
from crawler.store import make_engine, migrate
from crawler.store.models import Crawl, Fetch, FrontierEntry, Host, Lease, Page, Run
from crawler.urls import Scope

SEED = "http://site.test/"
frontier_t = FrontierEntry.__table__


def _run(conn, crawl_id: int) -> int:
    return conn.execute(
        insert(Run.__table__).returning(Run.__table__.c.id),
        {
            "crawl_id": crawl_id,
            "frontend": "test",
            "concurrency": 1,
            "hostname": "h",
            "pid": 1,
            "state": "running",
            "pages": 0,
            "fetches": 0,
            "errors": 0,
        },
    ).scalar_one()


def new_crawl(db_url: str, urls: list[str], runs: int):
    """A migrated database holding one crawl with `urls` queued at depth 0, and `runs` runs."""
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        crawl_id = conn.execute(
            insert(Crawl.__table__).returning(Crawl.__table__.c.id),
            {"name": "t", "seeds": [SEED], "settings": {}, "state": "running", "urls_started": 0},
        ).scalar_one()
        enqueue(conn, crawl_id, [NewURL.of(url, 0) for url in urls])
        run_ids = [_run(conn, crawl_id) for _ in range(runs)]
    return engine, crawl_id, run_ids


def rules_for(*seeds: str, **kwargs) -> CrawlRules:
    # site.test is not loopback: lift the network default of 8 unless a test sets one
    kwargs.setdefault("politeness", Politeness(per_host_concurrency=10_000))
    return CrawlRules(Scope.for_seeds(list(seeds or [SEED])), obey_robots=False, **kwargs)


@pytest.fixture
def setup(any_db):
    engine, crawl_id, runs = new_crawl(any_db, [SEED], runs=2)

    def make(run: int = 0, rules: CrawlRules | None = None, **kwargs) -> Frontier:
        return Frontier(engine, crawl_id, runs[run], rules or rules_for(), **kwargs)

    yield engine, make
    engine.dispose()


def page_result(task, links: list[str], status: int = 200, **kwargs) -> FetchResult:
    page = ParsedPage("t", None, "utf-8", "h", False, tuple(Link(u, "", "", False) for u in links))
    return FetchResult(
        task=task,
        worker="w",
        started_at=time.time(),
        status=status,
        content_type="text/html",
        page=page if status == 200 else None,
        timings=Timings(total=0.001),
        **kwargs,
    )


def lease(frontier: Frontier, n: int, held: dict | None = None):
    return frontier.lease(n, held or {}).tasks


def count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table.__table__)).scalar_one()


def assert_counts_match(engine) -> None:
    """The hosts' maintained counts are what the tables hold: ready URLs, leases, retries;
    and every URL waiting to be fetched is ready or leased, never both, never neither."""
    with engine.connect() as conn:
        actual = {}
        for name, sql in (
            ("ready", "SELECT host, count(*) FROM ready GROUP BY host"),
            ("leases", "SELECT host, count(*) FROM leases GROUP BY host"),
            ("retry", "SELECT host, count(*) FROM frontier WHERE state = 'retry' GROUP BY host"),
        ):
            actual.update(((host, name), n) for host, n in conn.execute(text(sql)))
        for row in conn.execute(select(Host.__table__)):
            kept = (row.queued, row.in_flight, row.retrying)
            truth = tuple(actual.get((row.host, name), 0) for name in ("ready", "leases", "retry"))
            assert kept == truth, row.host
        waiting = set(
            conn.execute(text("SELECT id FROM frontier WHERE state = 'queued'")).scalars()
        )
        ready = list(conn.execute(text("SELECT frontier_id FROM ready")).scalars())
        leased = list(conn.execute(text("SELECT frontier_id FROM leases")).scalars())
        assert sorted(ready + leased) == sorted(waiting)


def test_a_url_is_never_leased_twice_at_once(setup):
    engine, make = setup
    one, two = make(0), make(1)
    [seed] = lease(one, 10)
    assert lease(two, 10) == []
    one.store([page_result(seed, [f"{SEED}{i}" for i in range(20)])])
    first, second = lease(one, 10), lease(two, 10)
    assert len(first) == 10 and len(second) == 10
    assert not {t.url for t in first} & {t.url for t in second}
    assert_counts_match(engine)


def test_links_are_deduplicated_by_the_unique_key(setup):
    engine, make = setup
    frontier = make()
    [seed] = lease(frontier, 1)
    frontier.store([page_result(seed, [f"{SEED}a", f"{SEED}a", SEED, f"{SEED}b"])])
    assert count(engine, FrontierEntry) == 3  # seed, a, b
    assert_counts_match(engine)


def test_expired_lease_is_taken_over_and_the_late_result_is_fenced(setup):
    engine, make = setup
    slow, fast = make(0, lease_seconds=0.05), make(1)
    [stale] = lease(slow, 1)
    time.sleep(0.1)
    [fresh] = lease(fast, 1)
    assert fresh.url == stale.url and fresh.lease_token != stale.lease_token
    assert slow.store([page_result(stale, [f"{SEED}late"])]).fenced == 1
    assert count(engine, Fetch) == 0 and count(engine, Page) == 0
    fast.store([page_result(fresh, [f"{SEED}x"])])
    assert count(engine, Fetch) == 1 and count(engine, Page) == 1
    assert lease(fast, 10)[0].url == f"{SEED}x"
    assert_counts_match(engine)


def test_max_pages_counts_urls_leased_for_the_first_time(setup):
    _engine, make = setup
    frontier = make(rules=rules_for(limits=Limits(max_pages=3)))
    [seed] = lease(frontier, 5)
    frontier.store([page_result(seed, [f"{SEED}{i}" for i in range(10)])])
    assert len(lease(frontier, 5)) == 2
    assert lease(frontier, 5) == []


def test_max_depth_records_links_but_does_not_queue_them(setup):
    engine, make = setup
    frontier = make(rules=rules_for(limits=Limits(max_depth=0)))
    [seed] = lease(frontier, 1)
    frontier.store([page_result(seed, [f"{SEED}deeper"])])
    assert count(engine, FrontierEntry) == 1
    assert frontier.finished()


def test_finished_only_when_nothing_is_queued_leased_or_waiting_for_a_retry(setup):
    _engine, make = setup
    frontier = make(rules=rules_for(retry=RetryPolicy(backoff_s=0.01)))
    assert not frontier.finished()
    [seed] = lease(frontier, 1)
    assert not frontier.finished()
    frontier.store([page_result(seed, [], status=503)])
    assert not frontier.finished()  # a retry is pending
    time.sleep(0.05)
    [again] = lease(frontier, 1)
    assert again.attempt == 2
    frontier.store([page_result(again, [])])
    assert frontier.finished()


def test_concurrent_leasers_never_share_a_url(setup):
    """Four leasers in threads, each with its own connection, race for 200 URLs."""
    engine, make = setup
    first = make(0)
    [seed] = lease(first, 1)
    first.store([page_result(seed, [f"{SEED}{i}" for i in range(200)])])
    leasers = [make(i % 2) for i in range(4)]

    def drain(frontier: Frontier) -> list[str]:
        got = []
        while batch := lease(frontier, 7):
            got += [t.url for t in batch]
        return got

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(drain, leasers))
    everything = [url for urls in results for url in urls]
    assert len(everything) == len(set(everything)) == 200
    assert_counts_match(engine)


def test_two_runs_storing_the_same_links_in_opposite_orders_do_not_deadlock(setup):
    """Shared navigation: two runs complete pages with the same 2,000 links at once."""
    engine, make = setup
    first = make(0)
    [seed] = lease(first, 1)
    first.store([page_result(seed, [f"{SEED}page{i}" for i in range(2)])])
    one, two = make(0), make(1)
    a, b = lease(one, 1)[0], lease(two, 1)[0]
    links = [f"{SEED}shared{i}" for i in range(2000)]
    barrier = threading.Barrier(2)
    errors = []

    def store(frontier: Frontier, task, order) -> None:
        barrier.wait()
        try:
            frontier.store([page_result(task, order)])
        except Exception as exc:  # a deadlock would surface here
            errors.append(exc)

    threads = [
        threading.Thread(target=store, args=(one, a, links)),
        threading.Thread(target=store, args=(two, b, links[::-1])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert count(engine, FrontierEntry) == 1 + 2 + 2000
    assert_counts_match(engine)


def test_a_url_found_deeper_first_keeps_its_shallowest_depth(setup):
    engine, make = setup
    frontier = make()

    def depth_of(url: str) -> int:
        with engine.connect() as conn:
            return conn.execute(
                select(frontier_t.c.depth).where(frontier_t.c.url == url)
            ).scalar_one()

    for depth in (3, 1, 2):
        frontier.enqueue([NewURL.of(f"{SEED}x", depth)])
    frontier.enqueue([NewURL.of(SEED, 5)])  # a URL already fetched or leased keeps its depth
    assert depth_of(f"{SEED}x") == 1
    lease(frontier, 10)
    frontier.enqueue([NewURL.of(f"{SEED}x", 0)])
    assert depth_of(f"{SEED}x") == 1
    assert_counts_match(engine)


def test_released_leases_refund_their_attempt(setup):
    engine, make = setup
    frontier = make()
    for _ in range(5):  # more stops than max_attempts
        [seed] = lease(frontier, 1)
        assert seed.attempt == 1
        frontier.release([frontier.run_id], refund=True)
    assert_counts_match(engine)
    with engine.connect() as conn:
        assert conn.execute(select(Crawl.__table__.c.urls_started)).scalar() == 0


def test_in_one_batch_the_shallowest_link_sets_the_depth(setup):
    _engine, make = setup
    frontier = make()
    [seed] = lease(frontier, 1)
    frontier.store([page_result(seed, [f"{SEED}a", f"{SEED}b"])])
    tasks = {t.url: t for t in lease(frontier, 2)}
    frontier.store([page_result(tasks[f"{SEED}a"], [f"{SEED}c"])])
    [c] = lease(frontier, 1)  # depth 2, leased while b (depth 1) is still out
    assert c.depth == 2
    frontier.store([page_result(c, [f"{SEED}y"]), page_result(tasks[f"{SEED}b"], [f"{SEED}y"])])
    [y] = lease(frontier, 1)
    assert (y.url, y.depth) == (f"{SEED}y", 2)


def test_per_host_cap_holds_across_runs(setup):
    """Two runs share one host's cap through the database: the second gets what is left."""
    _engine, make = setup
    capped = rules_for(politeness=Politeness(per_host_concurrency=5))
    one, two = make(0, rules=capped), make(1, rules=capped)
    [seed] = lease(one, 1)
    one.store([page_result(seed, [f"{SEED}{i}" for i in range(20)])])
    first = lease(one, 3)
    second = lease(two, 10)
    assert (len(first), len(second)) == (3, 2)
    assert lease(two, 10) == []
    one.store([page_result(first[0], [])])
    assert len(lease(two, 10)) == 1


def test_finished_results_not_yet_stored_give_their_slot_back(setup):
    _engine, make = setup
    frontier = make(rules=rules_for(politeness=Politeness(per_host_concurrency=2)))
    [seed] = lease(frontier, 1)
    frontier.store([page_result(seed, [f"{SEED}{i}" for i in range(20)])])
    assert len(lease(frontier, 10)) == 2
    assert lease(frontier, 10) == []
    held = {"site.test": Held(results=1, last_end=time.time() - 1)}
    assert len(lease(frontier, 10, held)) == 1


def test_network_hosts_get_eight_at_once_by_default(setup):
    _engine, make = setup
    frontier = make(rules=rules_for(politeness=Politeness()))
    [seed] = lease(frontier, 1)
    frontier.store([page_result(seed, [f"{SEED}{i}" for i in range(20)])])
    assert len(lease(frontier, 20)) == 8


def test_a_host_that_must_wait_does_not_hold_up_another(setup):
    """The first host is at its cap; the other hosts still lease."""
    _engine, make = setup
    other = [f"http://other{i}.test/" for i in range(5)]
    frontier = make(rules=rules_for(SEED, *other, politeness=Politeness(per_host_concurrency=1)))
    [seed] = lease(frontier, 1)
    frontier.store([page_result(seed, [f"{SEED}{i}" for i in range(50)] + other)])
    hosts = sorted(t.url.split("/")[2] for t in lease(frontier, 20))
    assert hosts == sorted(["site.test", *(u.split("/")[2] for u in other)])


def test_a_retrying_url_does_not_hold_back_its_hosts_deeper_urls(setup):
    """/slow waits a minute for its retry; the levels below its siblings go on meanwhile."""
    engine, make = setup
    frontier = make(rules=rules_for(retry=RetryPolicy(backoff_s=60.0)))
    [seed] = lease(frontier, 1)
    frontier.store([page_result(seed, [f"{SEED}slow", f"{SEED}a"])])
    tasks = {t.url: t for t in lease(frontier, 10)}
    frontier.store(
        [
            page_result(tasks[f"{SEED}slow"], [], status=503),
            page_result(tasks[f"{SEED}a"], [f"{SEED}a/b"]),
        ]
    )
    for depth, url in ((2, f"{SEED}a/b"), (3, f"{SEED}a/b/c")):
        [task] = lease(frontier, 10)
        assert (task.url, task.depth) == (url, depth)
        frontier.store([page_result(task, [f"{url}/{'cd'[depth - 2]}"])])
    [deepest] = lease(frontier, 10)
    assert deepest.depth == 4
    with engine.connect() as conn:
        state, at = conn.execute(
            select(frontier_t.c.state, frontier_t.c.next_attempt_at).where(
                frontier_t.c.url == f"{SEED}slow"
            )
        ).one()
    assert state == "retry" and at > time.time() + 25  # half the back-off at least (jitter)
    assert_counts_match(engine)


def test_a_lapsed_lease_does_not_hold_a_host_slot(setup):
    """A run that died elsewhere leaves a lease that lapses; the URL is taken over instead of
    the host waiting for ever."""
    _engine, make = setup
    capped = rules_for(politeness=Politeness(per_host_concurrency=1))
    dead, alive = make(0, rules=capped, lease_seconds=0.05), make(1, rules=capped)
    [seed] = lease(dead, 1)
    time.sleep(0.1)
    assert [task.url for task in lease(alive, 5)] == [seed.url]


def test_a_lease_cut_off_as_it_committed_is_taken_up_again(setup):
    """adopt(): the leases a lease made under its token prefix, found again."""
    engine, make = setup
    frontier = make()
    [seed] = lease(frontier, 1)
    from crawler.frontier.leasing import LeaseRequest

    prefix = seed.lease_token.rsplit("-", 1)[0] + "-"
    request = LeaseRequest(frontier.crawl_id, frontier.run_id, frontier.rules, 120.0, prefix)
    with engine.connect() as conn:
        [again] = adopt(conn, request, time.time())
    assert (again.frontier_id, again.lease_token, again.attempt) == (
        seed.frontier_id,
        seed.lease_token,
        1,
    )


def test_the_lease_path_reads_no_table_in_full(tmp_path):
    """Every statement a lease or a store runs on a crawl with a long queue finds its rows
    through an index (SQLite's EXPLAIN QUERY PLAN says SEARCH, never SCAN, for the frontier)."""
    db = f"sqlite:///{tmp_path / 'plan.db'}"
    urls = [f"http://h{i % 20}.test/p{i}" for i in range(3000)]
    engine, crawl_id, [run] = new_crawl(db, urls, runs=1)
    scope = [f"http://h{i}.test/" for i in range(20)]
    frontier = Frontier(engine, crawl_id, run, rules_for(*scope), lease_seconds=0.01)
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def remember(_conn, _cursor, statement, _params, _context, _many) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")):
            statements.append(statement)

    tasks = lease(frontier, 50)
    frontier.store([page_result(t, [f"{t.url}/n"]) for t in tasks[:25]])
    frontier.store([page_result(t, [], status=503) for t in tasks[25:40]])
    time.sleep(0.05)  # the other leases lapse
    tasks = lease(frontier, 50)
    frontier.release([run], refund=True)
    frontier.finished()
    event.remove(engine, "before_cursor_execute", remember)
    plans = []
    with engine.connect() as conn:
        for statement in set(statements):
            if "?" in statement:
                params = tuple([0] * statement.count("?"))
                plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()
            else:
                plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement).all()
            plans.append((statement, " / ".join(row[-1] for row in plan)))
    tables = ("frontier", "fetches", "leases", "ready")
    # A SCAN reads a whole table; a SEARCH that pins only the crawl reads all of the crawl's.
    scans = [
        (s, p)
        for s, p in plans
        if any(
            f"SCAN {t}" in p or re.search(rf"SEARCH {t} USING [^(]*\(crawl_id=\?\)", p)
            for t in tables
        )
    ]
    assert plans and scans == []
    engine.dispose()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(0, 2),
            st.sampled_from(["lease", "complete", "fail", "expire", "release"]),
            st.integers(1, 7),
        ),
        min_size=1,
        max_size=25,
    )
)
def test_property_no_url_is_ever_leased_twice_and_the_counts_hold(tmp_path_factory, steps):
    """Any interleaving of three runs leasing, storing pages or failures, dying (their leases
    lapse) and stopping (their leases are given back): the live leases never share a URL, and
    every host's counts match the frontier."""
    db_url = f"sqlite:///{tmp_path_factory.mktemp('prop') / 'f.db'}"
    hosts = [f"http://h{i}.test/" for i in range(3)]
    urls = [f"{hosts[i % 3]}{i}" for i in range(30)]
    engine, crawl_id, runs = new_crawl(db_url, urls, runs=3)
    rules = rules_for(*hosts, limits=Limits(max_attempts=100), retry=RetryPolicy(backoff_s=0.0))
    frontiers = [Frontier(engine, crawl_id, run, rules, lease_seconds=60) for run in runs]
    held: list[dict[str, object]] = [{}, {}, {}]  # url -> task, per run, while live
    for who, action, k in steps:
        frontier = frontiers[who]
        if action == "lease":
            for task in lease(frontier, k):
                held[who][task.url] = task
        elif action in ("complete", "fail") and held[who]:
            done = list(held[who].values())[:k]
            status = 200 if action == "complete" else 503
            frontier.store([page_result(t, [f"{hosts[k % 3]}{k}x"], status) for t in done])
            for task in done:
                held[who].pop(task.url)
        elif action == "expire":  # the run dies: its leases lapse and others may take them
            with engine.begin() as conn:
                conn.execute(
                    update(Lease.__table__)
                    .where(Lease.__table__.c.run_id == runs[who])
                    .values(expires_at=0.0)
                )
            held[who] = {}
        elif action == "release":
            frontier.release([runs[who]], refund=True)
            held[who] = {}
        live = [url for run in held for url in run]
        assert len(live) == len(set(live))
        with engine.connect() as conn:
            leased = (
                conn.execute(
                    select(Lease.__table__.c.url).where(Lease.__table__.c.expires_at > time.time())
                )
                .scalars()
                .all()
            )
        assert len(leased) == len(set(leased))
        assert_counts_match(engine)
    engine.dispose()


def test_results_of_a_failing_host_skip_its_waiting_urls_and_those_found_later(setup):
    """A host whose breaker opened too often is given up: its queued URLs are skipped at
    once, and URLs of it found afterwards are skipped when a lease meets them."""
    engine, make = setup
    from crawler.policy.retry import BreakerPolicy

    rules = rules_for(breaker=BreakerPolicy(threshold=1, cooldown_s=0.0, max_trips=2))
    frontier = make(rules=rules)
    [seed] = lease(frontier, 1)
    frontier.store([page_result(seed, [f"{SEED}{i}" for i in range(10)])])
    [first] = lease(frontier, 1)
    frontier.store([FetchResult(first, "w", started_at=time.time(), error_kind="connect")])
    [second] = lease(frontier, 1)  # asked again after its (zero) rest, and failing again
    refused = FetchResult(second, "w", started_at=time.time(), error_kind="connect")
    assert frontier.store([refused]).skipped == 10  # 8 queued, and the 2 waiting for a retry
    assert_counts_match(engine)
    frontier.enqueue([NewURL.of(f"{SEED}found-later", 2)])
    assert lease(frontier, 10) == []
    assert_counts_match(engine)
    with engine.connect() as conn:
        reasons = conn.execute(
            select(frontier_t.c.skip_reason, func.count())
            .where(frontier_t.c.state == "skipped")
            .group_by(frontier_t.c.skip_reason)
        ).all()
    assert reasons == [("host failing: breaker opened 2 times", 11)]
    assert frontier.finished()
