"""The policy core on its own: no database, no sockets, no clock (time is passed in)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawler.fetch.errors import ErrorKind
from crawler.model import FetchResult, FetchTask, Link, ParsedPage, Timings
from crawler.policy.admission import (
    GIVE_UP,
    LATER,
    NOTHING_HELD,
    ROBOTS_PENDING,
    ROBOTS_UNAVAILABLE,
    TAKE,
    Admit,
    GiveUpHost,
    Held,
    HostView,
    Wait,
    admit_host,
    admit_url,
    deepest_leasable,
)
from crawler.policy.links import RecentKeys, follow_links, sitemap_urls
from crawler.policy.outcomes import DONE, FAILED, RETRY, HostTally, outcome_of, tally_host
from crawler.policy.pending import PendingHosts
from crawler.policy.politeness import Politeness
from crawler.policy.retry import BreakerPolicy, RetryPolicy
from crawler.policy.rules import CrawlRules, Limits
from crawler.robots import RobotsRules
from crawler.urls import Scope

SEED = "http://site.test/"
NOW = 1_000_000.0
RULES = CrawlRules(Scope.for_seeds([SEED]))


def view(**fields) -> HostView:
    base = {
        "host": "site.test",
        "queued": 10,
        "in_flight": 0,
        "next_fetch_at": 0.0,
        "breaker_until": 0.0,
        "urls_started": 0,
    }
    return HostView(**(base | fields))


def task(url: str = f"{SEED}a", depth: int = 1, attempt: int = 1, hops: int = 0) -> FetchTask:
    return FetchTask(1, url, depth, "t", attempt, hops, NOW - 1)


def result(
    status: int | None = 200,
    *,
    kind: str | None = None,
    attempt: int = 1,
    retry_after: float | None = None,
    location: str | None = None,
    hops: int = 0,
    ended: float = NOW,
    links: tuple[str, ...] = (),
) -> FetchResult:
    page = None
    if links:
        page = ParsedPage(
            "t", None, "utf-8", "h", False, tuple(Link(u, "", "", False) for u in links)
        )
    return FetchResult(
        task=task(attempt=attempt, hops=hops),
        worker="w",
        started_at=ended - 0.1,
        status=status,
        error_kind=kind,
        retry_after=retry_after,
        location=location,
        page=page,
        timings=Timings(total=0.1),
    )


# -- admitting a host ---------------------------------------------------------------------


def test_a_host_waits_for_its_next_request_its_breaker_and_what_this_run_holds():
    assert admit_host(view(next_fetch_at=NOW + 5), NOTHING_HELD, None, False, RULES, NOW) == Wait(
        NOW + 5
    )
    assert admit_host(view(breaker_until=NOW + 9), NOTHING_HELD, None, False, RULES, NOW) == Wait(
        NOW + 9
    )
    held = Held(results=1, last_end=NOW, not_before=NOW + 3)
    assert admit_host(view(), held, None, False, RULES, NOW) == Wait(NOW + 3)


def test_robots_being_fetched_makes_every_run_wait_but_sitemaps_only_this_one():
    waiting = admit_host(view(), NOTHING_HELD, ROBOTS_PENDING, False, RULES, NOW)
    assert isinstance(waiting, Wait) and waiting.shared and waiting.until > NOW
    sitemaps = admit_host(view(), NOTHING_HELD, RobotsRules(), True, RULES, NOW)
    assert isinstance(sitemaps, Wait) and not sitemaps.shared


def test_loopback_is_not_capped_the_network_is_capped_at_eight():
    loopback = admit_host(view(host="127.0.0.1:8000"), NOTHING_HELD, None, False, RULES, NOW)
    assert loopback == Admit(0.0, None, None, None)
    network = admit_host(view(in_flight=3), NOTHING_HELD, None, False, RULES, NOW)
    assert network == Admit(0.0, 8, 5, None)


def test_finished_unstored_results_give_their_slots_back():
    rules = CrawlRules(Scope.for_seeds([SEED]), politeness=Politeness(per_host_concurrency=2))
    assert admit_host(view(in_flight=2), NOTHING_HELD, None, False, rules, NOW) == Wait(None)
    held = Held(results=1, last_end=NOW - 1)
    assert admit_host(view(in_flight=2), held, None, False, rules, NOW).slots == 1


def test_a_delay_means_one_at_a_time_counted_from_the_last_request_end():
    rules = CrawlRules(Scope.for_seeds([SEED]), politeness=Politeness(per_host_delay=0.5))
    held = Held(results=1, last_end=NOW - 0.2)
    assert admit_host(view(), held, None, False, rules, NOW) == Wait(NOW + 0.3)
    assert admit_host(view(), NOTHING_HELD, None, False, rules, NOW) == Admit(0.5, 1, 1, None)


def test_crawl_delay_raises_the_delay_up_to_the_ceiling():
    robots = RobotsRules(crawl_delay=999.0)
    admitted = admit_host(view(), NOTHING_HELD, robots, False, RULES, NOW)
    assert (admitted.delay, admitted.cap) == (30.0, 1)


@given(
    in_flight=st.integers(0, 20),
    held=st.integers(0, 20),
    cap=st.integers(1, 10),
    next_fetch_at=st.floats(NOW - 100, NOW + 100),
)
def test_property_never_more_slots_than_the_cap_never_before_its_time(
    in_flight, held, cap, next_fetch_at
):
    held = min(held, in_flight)
    rules = CrawlRules(Scope.for_seeds([SEED]), politeness=Politeness(per_host_concurrency=cap))
    decision = admit_host(
        view(in_flight=in_flight, next_fetch_at=next_fetch_at),
        Held(results=held),
        None,
        False,
        rules,
        NOW,
    )
    if next_fetch_at > NOW:
        assert decision == Wait(next_fetch_at)
    elif isinstance(decision, Admit):
        assert 0 < decision.slots <= cap - (in_flight - held)
    else:
        assert in_flight - held >= cap


# -- which of a host's URLs a lease takes --------------------------------------------------


def test_breadth_first_takes_two_levels_or_one_under_a_limit():
    assert deepest_leasable(3, RULES) == 4
    bounded = CrawlRules(Scope.for_seeds([SEED]), Limits(max_pages=10))
    assert deepest_leasable(3, bounded) == 3


def test_admitting_a_url():
    limits = Limits(max_attempts=3, max_pages_per_host=5)
    rules = CrawlRules(Scope.for_seeds([SEED]), limits)
    url = f"{SEED}private/x"
    disallow = RobotsRules.parse("User-agent: *\nDisallow: /private", "crawler")
    assert admit_url(url, 3, None, 0, None, rules) == GIVE_UP
    assert admit_url(url, 0, ROBOTS_UNAVAILABLE, 0, None, rules) == "robots.txt unavailable"
    assert admit_url(url, 0, disallow, 0, None, rules) == "disallowed by robots.txt"
    assert admit_url(f"{SEED}ok", 0, disallow, 0, None, rules) == TAKE
    assert admit_url(f"{SEED}ok", 0, None, 5, None, rules) == "host page limit (5)"
    assert admit_url(f"{SEED}ok", 1, None, 5, None, rules) == TAKE  # a retry is not a new page
    assert admit_url(f"{SEED}ok", 0, None, 0, 0, rules) == LATER  # the page budget is spent
    assert admit_url(f"{SEED}ok", 2, None, 0, 0, rules) == TAKE


# -- what a result means -------------------------------------------------------------------


def test_a_transient_failure_is_retried_after_a_back_off_then_failed():
    rng = random.Random(1)
    first = outcome_of(result(503, attempt=1), RULES, NOW, rng)
    assert first.state == RETRY and NOW + 0.5 <= first.retry_at <= NOW + 1.0
    assert outcome_of(result(503, attempt=3), RULES, NOW, rng).state == FAILED
    refused = outcome_of(result(None, kind="connect", attempt=3), RULES, NOW, rng)
    assert refused.state == FAILED


@pytest.mark.parametrize("status", [200, 301, 404, 410])
def test_an_answer_that_is_not_transient_is_done_at_once(status):
    assert outcome_of(result(status), RULES, NOW, random.Random()).state == DONE


def test_retry_after_is_obeyed_up_to_its_ceiling():
    rules = CrawlRules(Scope.for_seeds([SEED]), retry=RetryPolicy(max_retry_after_s=60))
    obeyed = outcome_of(result(429, retry_after=20), rules, NOW, random.Random())
    capped = outcome_of(result(429, retry_after=9999), rules, NOW, random.Random())
    assert (obeyed.retry_at, capped.retry_at) == (NOW + 20, NOW + 60)


def test_redirects_are_followed_in_scope_and_within_the_hop_limit():
    hop = outcome_of(result(301, location=f"{SEED}b"), RULES, NOW, random.Random())
    assert hop.redirect_to == f"{SEED}b" and hop.error_kind is None
    away = outcome_of(result(301, location="http://other.test/"), RULES, NOW, random.Random())
    assert away.redirect_to is None
    too_far = outcome_of(result(301, location=f"{SEED}b", hops=5), RULES, NOW, random.Random())
    assert too_far.redirect_to is None
    assert too_far.error_kind == ErrorKind.TOO_MANY_REDIRECTS


@given(
    status=st.sampled_from([None, 200, 404, 408, 429, 500, 503]),
    attempt=st.integers(1, 5),
    retry_after=st.none() | st.floats(0, 1e6),
)
def test_property_a_retry_is_in_the_future_and_bounded(status, attempt, retry_after):
    kind = "read_timeout" if status is None else None
    outcome = outcome_of(
        result(status, kind=kind, attempt=attempt, retry_after=retry_after),
        RULES,
        NOW,
        random.Random(0),
    )
    if outcome.state == RETRY:
        assert attempt < RULES.retry.max_attempts
        ceiling = max(RULES.retry.max_backoff_s, RULES.retry.max_retry_after_s)
        assert NOW <= outcome.retry_at <= NOW + ceiling
    else:
        assert outcome.retry_at is None


# -- what results do to their host ----------------------------------------------------------


def test_the_delay_counts_from_the_last_request_end_and_a_429_rests_the_host():
    tally, _ = tally_host(HostTally(), [result(200, ended=NOW - 1)], 0.5, RULES, NOW)
    assert tally.next_fetch_at == pytest.approx(NOW - 0.5)
    tally, _ = tally_host(HostTally(), [result(429, retry_after=7)], 0.0, RULES, NOW)
    assert tally.next_fetch_at == NOW + 7


def test_the_breaker_opens_doubles_and_gives_the_host_up():
    rules = CrawlRules(Scope.for_seeds([SEED]), breaker=BreakerPolicy(threshold=2, cooldown_s=10))
    tally, skip = tally_host(HostTally(), refused(2, ended=NOW), 0.0, rules, NOW)
    assert (tally.trips, tally.breaker_until, tally.failures, skip) == (1, NOW + 10, 0, None)
    tally, skip = tally_host(tally, refused(2, ended=NOW + 11), 0.0, rules, NOW + 11)
    assert (tally.trips, tally.breaker_until) == (2, NOW + 31)
    tally, skip = tally_host(tally, refused(2, ended=NOW + 32), 0.0, rules, NOW + 32)
    assert skip == "host failing: breaker opened 3 times"
    assert (tally.trips, tally.breaker_until) == (3, 0.0)  # given up: no need to rest it
    given_up = admit_host(view(breaker_trips=3), NOTHING_HELD, None, False, rules, NOW)
    assert given_up == GiveUpHost("host failing: breaker opened 3 times")


def test_requests_in_flight_when_the_breaker_opened_do_not_open_it_again():
    rules = CrawlRules(Scope.for_seeds([SEED]), breaker=BreakerPolicy(threshold=2, cooldown_s=10))
    tally, skip = tally_host(HostTally(), refused(500, ended=NOW), 0.0, rules, NOW)
    assert (tally.trips, skip) == (1, None)  # a burst that failed together: one opening
    in_flight = [
        replace(r, started_at=NOW - 1, timings=Timings(total=6)) for r in refused(500, NOW)
    ]
    late, _ = tally_host(tally, in_flight, 0.0, rules, NOW + 5)
    assert late == tally  # started before it opened (at NOW), ended after
    tally, _ = tally_host(tally, refused(2, ended=NOW + 11), 0.0, rules, NOW + 11)
    assert tally.trips == 2  # asked again after the rest, and failing again


def refused(count: int, ended: float) -> list[FetchResult]:
    """`count` refused connects that ended at `ended`, each started 0.1 s before."""
    return [result(None, kind="connect", ended=ended)] * count


def test_a_success_or_a_408_does_not_count_against_the_host():
    tally, _ = tally_host(HostTally(failures=5), [result(200)], 0.0, RULES, NOW)
    assert tally.failures == 0
    tally, _ = tally_host(HostTally(failures=5), [result(408)], 0.0, RULES, NOW)
    assert tally.failures == 0


@given(st.lists(st.sampled_from([200, 404, 429, 500, 503, None]), max_size=30))
def test_property_a_hosts_next_request_never_moves_earlier(statuses):
    before = HostTally(next_fetch_at=NOW + 1)
    results = [
        result(s, kind=None if s else "connect", retry_after=3 if s == 429 else None)
        for s in statuses
    ]
    after, _ = tally_host(before, results, 0.25, RULES, NOW)
    assert after.next_fetch_at >= before.next_fetch_at
    assert after.breaker_until >= before.breaker_until and after.trips >= before.trips


# -- which links are followed ----------------------------------------------------------------


def test_links_in_scope_are_followed_the_rest_only_stored():
    links = [
        Link(f"{SEED}a", "", "", False),
        Link(f"{SEED}nofollow", "", "nofollow", True),
        Link("http://elsewhere.test/", "", "", False),
        Link(f"{SEED}a/a/a/a/a", "", "", False),  # a trap: a segment four times
        Link(f"{SEED}a", "", "", False),
    ]
    queue: dict = {}
    flags = follow_links(links, 1, 7, RULES, RecentKeys(), queue)
    assert flags == [True, False, False, False, True]
    [new] = queue.values()
    assert (new.url, new.depth, new.found_from) == (f"{SEED}a", 2, 7)


def test_the_depth_limit_stores_links_without_following_them():
    rules = CrawlRules(Scope.for_seeds([SEED]), Limits(max_depth=1))
    queue: dict = {}
    assert follow_links([Link(f"{SEED}x", "", "", False)], 1, 1, rules, RecentKeys(), queue) == [
        False
    ]
    assert queue == {}


def test_in_one_batch_the_shallowest_depth_wins_and_known_urls_are_not_queued_again():
    recent, queue = RecentKeys(), {}
    follow_links([Link(f"{SEED}x", "", "", False)], 3, 1, RULES, recent, queue)
    follow_links([Link(f"{SEED}x", "", "", False)], 1, 2, RULES, recent, queue)
    assert [(u.depth, u.found_from) for u in queue.values()] == [(2, 2)]
    recent.add(next(iter(queue)), 2)
    again: dict = {}
    follow_links([Link(f"{SEED}x", "", "", False)], 4, 3, RULES, recent, again)
    assert again == {}  # known at depth 2: nothing to do
    follow_links([Link(f"{SEED}x", "", "", False)], 0, 3, RULES, recent, again)
    assert [u.depth for u in again.values()] == [1]  # shallower than known: queued again


def test_sitemap_urls_start_at_depth_one_in_scope_only():
    urls = sitemap_urls([f"{SEED}s1", "http://elsewhere.test/", f"{SEED}s1"], RULES)
    assert [(u.url, u.depth) for u in urls] == [(f"{SEED}s1", 1)]
    seeds_only = CrawlRules(Scope.for_seeds([SEED]), Limits(max_depth=0))
    assert sitemap_urls([f"{SEED}s1"], seeds_only) == []


# -- this run's unstored results -------------------------------------------------------------


def test_pending_results_hold_their_host_until_stored():
    rules = CrawlRules(Scope.for_seeds([SEED]), breaker=BreakerPolicy(threshold=2, cooldown_s=30))
    pending = PendingHosts(rules)
    pending.add(result(200, ended=NOW - 2), NOW)
    pending.add(result(429, retry_after=5, ended=NOW - 1), NOW)
    held = pending.held()["site.test"]
    assert (held.results, held.last_end, held.not_before) == (2, NOW - 1, NOW + 5)
    pending.add(result(None, kind="connect"), NOW)
    pending.add(result(None, kind="connect"), NOW)
    assert pending.held()["site.test"].not_before == NOW + 30  # the breaker, before any store
    pending.stored()
    assert pending.held() == {} and len(pending) == 0


def test_a_crawl_is_finished_when_nothing_waits_or_the_budget_is_spent():
    limits = Limits(max_pages=10)
    assert limits.finished(queued=0, in_flight=0, retrying=0, urls_started=3)
    assert not limits.finished(queued=5, in_flight=0, retrying=0, urls_started=3)
    assert limits.finished(queued=5, in_flight=0, retrying=0, urls_started=10)
    assert not limits.finished(queued=5, in_flight=1, retrying=0, urls_started=10)
    assert not limits.finished(queued=0, in_flight=0, retrying=1, urls_started=10)


# -- liveness: when a run beats, judges, and is dead ------------------------------------------


def test_a_run_beats_six_times_per_timeout():
    from crawler.policy.liveness import beat_due

    assert not beat_due(4.9, 30.0)
    assert beat_due(5.0, 30.0)


def test_a_run_judges_only_after_a_whole_timeout_of_steady_beats():
    from crawler.policy.liveness import ends_a_gap, may_judge

    assert not may_judge(5.0, 29.0, 30.0)  # not steady for a whole timeout yet
    assert may_judge(5.0, 30.0, 30.0)
    assert ends_a_gap(16.0, 30.0) and not ends_a_gap(15.0, 30.0)
    assert not may_judge(16.0, 300.0, 30.0)  # this very beat follows a gap (a restart)


def test_a_heartbeat_as_old_as_the_timeout_is_silence():
    from crawler.policy.liveness import is_silent

    assert not is_silent(29.9, 30.0)
    assert is_silent(30.0, 30.0)
