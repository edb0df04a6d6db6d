"""The frontier on a real SQLite database: leases, fencing, dedup, limits."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select, update

from crawler.frontier import Frontier, Limits, frontier_row, insert_ignoring_duplicates
from crawler.model import FetchResult, Link, ParsedPage
from crawler.politeness import Politeness
from crawler.store import make_engine, migrate
from crawler.store.models import Crawl, Fetch, FrontierEntry, Page, Run
from crawler.urls import Scope

SEED = "http://site.test/"


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
        insert_ignoring_duplicates(conn, [frontier_row(crawl_id, url, 0) for url in urls])
        run_ids = [_run(conn, crawl_id) for _ in range(runs)]
    return engine, crawl_id, run_ids


@pytest.fixture
def setup(any_db):
    engine, crawl_id, runs = new_crawl(any_db, [SEED], runs=2)

    def make(run: int = 0, **kwargs) -> Frontier:
        limits = kwargs.pop("limits", Limits())
        # site.test is not loopback: lift the network default of 8 unless a test sets one
        kwargs.setdefault("politeness", Politeness(per_host_concurrency=10_000))
        return Frontier(engine, crawl_id, runs[run], Scope.for_seeds([SEED]), limits, **kwargs)

    return engine, make


def page_result(task, links: list[str]) -> FetchResult:
    page = ParsedPage("t", None, "utf-8", "h", False, tuple(Link(u, "", "", False) for u in links))
    return FetchResult(
        task=task,
        worker="w",
        started_at=time.time(),
        status=200,
        content_type="text/html",
        page=page,
    )


def count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table.__table__)).scalar_one()


def test_a_url_is_never_leased_twice_at_once(setup):
    _engine, make = setup
    one, two = make(0), make(1)
    [seed] = one.lease(10)
    assert two.lease(10) == []
    one.complete([page_result(seed, [f"{SEED}{i}" for i in range(20)])])
    first, second = one.lease(10), two.lease(10)
    assert len(first) == 10 and len(second) == 10
    assert not {t.url for t in first} & {t.url for t in second}


def test_links_are_deduplicated_by_the_unique_key(setup):
    engine, make = setup
    frontier = make()
    [seed] = frontier.lease(1)
    frontier.complete([page_result(seed, [f"{SEED}a", f"{SEED}a", SEED, f"{SEED}b"])])
    assert count(engine, FrontierEntry) == 3  # seed, a, b


def test_expired_lease_is_taken_over_and_the_late_result_is_fenced(setup):
    engine, make = setup
    slow, fast = make(0, lease_seconds=0.05), make(1)
    [stale] = slow.lease(1)
    time.sleep(0.1)
    [fresh] = fast.lease(1)
    assert fresh.url == stale.url and fresh.lease_token != stale.lease_token
    slow.complete([page_result(stale, [f"{SEED}late"])])
    assert slow.progress.fenced == 1
    assert count(engine, Fetch) == 0 and count(engine, Page) == 0
    fast.complete([page_result(fresh, [f"{SEED}x"])])
    assert count(engine, Fetch) == 1 and count(engine, Page) == 1
    assert fast.lease(10)[0].url == f"{SEED}x"


def test_max_pages_counts_urls_leased_for_the_first_time(setup):
    _engine, make = setup
    frontier = make(limits=Limits(max_pages=3))
    [seed] = frontier.lease(5)
    frontier.complete([page_result(seed, [f"{SEED}{i}" for i in range(10)])])
    assert len(frontier.lease(5)) == 2
    assert frontier.lease(5) == []


def test_max_depth_records_links_but_does_not_queue_them(setup):
    engine, make = setup
    frontier = make(limits=Limits(max_depth=0))
    [seed] = frontier.lease(1)
    frontier.complete([page_result(seed, [f"{SEED}deeper"])])
    assert count(engine, FrontierEntry) == 1
    assert frontier.finished()


def test_finished_only_when_nothing_is_queued_or_leased(setup):
    _engine, make = setup
    frontier = make()
    assert not frontier.finished()
    [seed] = frontier.lease(1)
    assert not frontier.finished()
    frontier.complete([page_result(seed, [])])
    assert frontier.finished()


def test_concurrent_leasers_never_share_a_url(setup):
    """Four leasers in threads, each with its own connection, race for 200 URLs."""
    from concurrent.futures import ThreadPoolExecutor

    _engine, make = setup
    first = make(0)
    [seed] = first.lease(1)
    first.complete([page_result(seed, [f"{SEED}{i}" for i in range(200)])])
    leasers = [make(i % 2) for i in range(4)]

    def drain(frontier: Frontier) -> list[str]:
        got = []
        while batch := frontier.lease(7):
            got += [t.url for t in batch]
        return got

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(drain, leasers))
    everything = [url for urls in results for url in urls]
    assert len(everything) == len(set(everything)) == 200


def test_two_runs_storing_the_same_links_in_opposite_orders_do_not_deadlock(setup):
    """Shared navigation: two runs complete pages with the same 2,000 links at once."""
    import threading

    engine, make = setup
    first = make(0)
    [seed] = first.lease(1)
    first.complete([page_result(seed, [f"{SEED}page{i}" for i in range(2)])])
    one, two = make(0), make(1)
    a, b = one.lease(1)[0], two.lease(1)[0]
    links = [f"{SEED}shared{i}" for i in range(2000)]
    barrier = threading.Barrier(2)
    errors = []

    def complete(frontier: Frontier, task, order) -> None:
        barrier.wait()
        try:
            frontier.complete([page_result(task, order)])
        except Exception as exc:  # a deadlock would surface here
            errors.append(exc)

    threads = [
        threading.Thread(target=complete, args=(one, a, links)),
        threading.Thread(target=complete, args=(two, b, links[::-1])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert count(engine, FrontierEntry) == 1 + 2 + 2000


def test_a_url_found_deeper_first_keeps_its_shallowest_depth(setup):
    engine, make = setup
    crawl_id = make().crawl_id

    def depth_of(url: str) -> int:
        with engine.connect() as conn:
            table = FrontierEntry.__table__
            return conn.execute(select(table.c.depth).where(table.c.url == url)).scalar_one()

    with engine.begin() as conn:
        insert_ignoring_duplicates(conn, [frontier_row(crawl_id, f"{SEED}x", 3)])
        insert_ignoring_duplicates(conn, [frontier_row(crawl_id, f"{SEED}x", 1)])
        insert_ignoring_duplicates(conn, [frontier_row(crawl_id, f"{SEED}x", 2)])
        # a URL no longer queued keeps the depth it was fetched at
        insert_ignoring_duplicates(conn, [frontier_row(crawl_id, SEED, 0)])
    assert depth_of(f"{SEED}x") == 1
    frontier = make()
    frontier.lease(10)
    with engine.begin() as conn:
        insert_ignoring_duplicates(conn, [frontier_row(crawl_id, f"{SEED}x", 0)])
    assert depth_of(f"{SEED}x") == 1


def test_released_leases_refund_their_attempt(setup):
    _engine, make = setup
    frontier = make()
    for _ in range(5):  # more stops than max_attempts
        [seed] = frontier.lease(1)
        assert seed.attempt == 1
        frontier.release_leases_of([frontier.run_id], refund_attempt=True)


def test_in_one_batch_the_shallowest_link_sets_the_depth(setup):
    _engine, make = setup
    frontier = make()
    [seed] = frontier.lease(1)
    frontier.complete([page_result(seed, [f"{SEED}a", f"{SEED}b"])])
    tasks = {t.url: t for t in frontier.lease(2)}
    frontier.complete([page_result(tasks[f"{SEED}a"], [f"{SEED}c"])])
    [c] = frontier.lease(1)  # depth 2, leased while b (depth 1) is still out
    assert c.depth == 2
    frontier.complete([page_result(c, [f"{SEED}y"]), page_result(tasks[f"{SEED}b"], [f"{SEED}y"])])
    [y] = frontier.lease(1)
    assert (y.url, y.depth) == (f"{SEED}y", 2)


def test_per_host_cap_holds_across_runs(setup):
    """Two runs share one host's cap through the database: the second gets what is left."""
    _engine, make = setup
    one = make(0, politeness=Politeness(per_host_concurrency=5))
    two = make(1, politeness=Politeness(per_host_concurrency=5))
    [seed] = one.lease(1)
    one.complete([page_result(seed, [f"{SEED}{i}" for i in range(20)])])
    first = one.lease(3)
    second = two.lease(10)
    assert (len(first), len(second)) == (3, 2)
    assert two.lease(10) == []
    one.complete([page_result(first[0], [])])
    assert len(two.lease(10)) == 1


def test_network_hosts_get_eight_at_once_by_default(setup):
    _engine, make = setup
    frontier = make(politeness=Politeness())
    [seed] = frontier.lease(1)
    frontier.complete([page_result(seed, [f"{SEED}{i}" for i in range(20)])])
    assert len(frontier.lease(20)) == 8


def test_a_host_that_must_wait_does_not_hold_up_another(setup):
    """Head-of-line: the first host in key order is at its cap; the next host still leases."""
    _engine, make = setup
    frontier = make(politeness=Politeness(per_host_concurrency=1))
    [seed] = frontier.lease(1)
    other = [f"http://other{i}.test/" for i in range(5)]
    frontier.scope = Scope.for_seeds([SEED, *other])
    frontier.complete([page_result(seed, [f"{SEED}{i}" for i in range(50)] + other)])
    leased = frontier.lease(20)
    hosts = sorted(t.url.split("/")[2] for t in leased)
    assert hosts == sorted(["site.test", *(u.split("/")[2] for u in other)])


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(0, 2), st.sampled_from(["lease", "complete", "expire"]), st.integers(1, 7)
        ),
        min_size=1,
        max_size=25,
    )
)
def test_property_no_url_is_ever_leased_twice_at_once(tmp_path_factory, steps):
    """Any interleaving of three runs leasing, completing and letting leases expire: the
    live leases never share a URL."""
    db_url = f"sqlite:///{tmp_path_factory.mktemp('prop') / 'f.db'}"
    engine, crawl_id, runs = new_crawl(db_url, [f"{SEED}{i}" for i in range(30)], runs=3)
    frontiers = [
        Frontier(
            engine,
            crawl_id,
            run,
            Scope.for_seeds([SEED]),
            Limits(max_attempts=100),
            politeness=Politeness(per_host_concurrency=10_000),
            lease_seconds=60,
        )
        for run in runs
    ]
    held: list[dict[str, object]] = [{}, {}, {}]  # url -> task, per run, while live
    for who, action, k in steps:
        frontier = frontiers[who]
        if action == "lease":
            for task in frontier.lease(k):
                held[who][task.url] = task
        elif action == "complete" and held[who]:
            done = list(held[who].values())[:k]
            frontier.complete([page_result(task, [f"{SEED}{k}x"]) for task in done])
            for task in done:
                held[who].pop(task.url)
        elif action == "expire":  # the run dies: its leases lapse and others may take them
            with engine.begin() as conn:
                conn.execute(
                    update(FrontierEntry.__table__)
                    .where(FrontierEntry.__table__.c.lease_owner == runs[who])
                    .values(lease_expires_at=0.0)
                )
            held[who] = {}
        live = [url for run in held for url in run]
        assert len(live) == len(set(live))
        with engine.connect() as conn:
            leased = (
                conn.execute(
                    select(FrontierEntry.__table__.c.url).where(
                        FrontierEntry.__table__.c.state == "leased",
                        FrontierEntry.__table__.c.lease_expires_at > time.time(),
                    )
                )
                .scalars()
                .all()
            )
        assert len(leased) == len(set(leased))
    engine.dispose()


def test_a_lapsed_lease_does_not_hold_a_host_slot(setup):
    """A run that died on another machine leaves a lease that lapses; its host slot is free
    again, so the URL is taken over instead of the host waiting forever."""
    _engine, make = setup
    dead = make(0, lease_seconds=0.05, politeness=Politeness(per_host_concurrency=1))
    alive = make(1, politeness=Politeness(per_host_concurrency=1))
    [seed] = dead.lease(1)
    time.sleep(0.1)
    assert [task.url for task in alive.lease(5)] == [seed.url]


def test_results_are_stored_as_soon_as_a_batch_is_full(setup):
    _engine, make = setup
    frontier = make(batch_size=5, batch_seconds=3600)
    [seed] = frontier.lease(1)
    frontier.complete([page_result(seed, [f"{SEED}{i}" for i in range(10)])])
    for task in frontier.lease(10)[:5]:
        frontier.add(page_result(task, []))
    assert frontier.pending == 0 and frontier.progress.batches == 2
