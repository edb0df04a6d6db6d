"""When a run beats its heartbeat, when it may judge the others, and when a run is dead to
them: pure, with the times passed in (seconds).

A run beats six times per worker timeout, so one or two late beats never make a live run
dead. It judges the others only once its own beats have got through on time for a whole
timeout: after a database restart, or after it was paused itself, the others have had that
long to beat again before any of them is taken for dead.
"""

from __future__ import annotations

BEATS_PER_TIMEOUT = 6


def beat_due(since_beat: float, timeout: float) -> bool:
    return since_beat >= timeout / BEATS_PER_TIMEOUT


def ends_a_gap(since_beat: float, timeout: float) -> bool:
    """A beat this long after the last one that got through follows a gap (an outage, a
    pause): steadiness counts from it again."""
    return since_beat > timeout / 2


def may_judge(since_beat: float, steady_for: float, timeout: float) -> bool:
    return not ends_a_gap(since_beat, timeout) and steady_for >= timeout


def is_silent(heartbeat_age: float, timeout: float) -> bool:
    return heartbeat_age >= timeout
