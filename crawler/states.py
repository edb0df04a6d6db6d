"""Where a URL of the frontier stands. A URL is queued until it is fetched: ready (it has a
row in `ready`) or in flight (a row in `leases`). Then it is done (a response was stored) or
failed (no usable response after its attempts); a transient failure with attempts left waits
in retry until its next attempt, then is queued again. Skipped URLs are never fetched
(robots.txt, a host's page limit, a host that kept failing), and skip_reason says which."""

QUEUED, RETRY = "queued", "retry"
DONE, FAILED, SKIPPED = "done", "failed", "skipped"
STATES = (QUEUED, RETRY, DONE, FAILED, SKIPPED)
