"""The errors a user sees. Each message says what was wrong and what to do; the command line
prints it as one line and exits with the error's code."""

from __future__ import annotations


class CrawlerError(Exception):
    """The crawler cannot go on; the message says what was wrong and what to do. `summary`:
    what the crawl and its run came to, when a run had started (a CrawlSummary)."""

    exit_code = 1
    summary = None


class UsageError(CrawlerError):
    """Bad input from the user: a malformed seed, an unknown backend, a bad --db URL."""

    exit_code = 2


class Interrupted(CrawlerError):
    """Ctrl-C or SIGTERM stopped a run; what finished is stored and the crawl can be resumed."""

    exit_code = 130


class DatabaseError(CrawlerError):
    """The database failed in a way waiting does not mend: full, read-only, gone for longer than
    the retry window. What was stored before stays consistent and resumable."""


class DeclaredDead(CrawlerError):
    """This run was silent past the crawl's worker timeout (paused, or cut off from the
    database), so the other workers took its URLs over; it stops without storing more."""

    exit_code = 3
