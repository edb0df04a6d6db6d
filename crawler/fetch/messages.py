"""The stored error message of a failed exchange, worded for the person reading the export.

Both fetchers map their library's exception onto an ErrorKind (fetch/sync.py, fetch/aio.py);
the message is then built here from that kind, what the exception chain says about the
network (refused, reset, how many bytes came), and the policy's numbers. Library wording,
class names and Python reprs (b'...', None) never reach a row: the same fault reads the same
under requests and aiohttp, and a server's values are shown as text in plain quotes.
"""

from __future__ import annotations

import errno
import http.client
import re
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

from crawler.fetch.errors import ErrorKind
from crawler.model import FetchPolicy

_MAX_QUOTED = 200  # characters of a server's value shown in a message


def quoted(value: bytes | str) -> str:
    """A server's value as readable text in plain quotes: bytes decoded as UTF-8 (errors
    replaced), control characters replaced, long values cut."""
    text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
    text = "".join(c if c.isprintable() else "\ufffd" for c in text)
    if len(text) > _MAX_QUOTED:
        text = text[:_MAX_QUOTED] + "…"
    return f"'{text}'"


def bad_redirect(status: int, location: bytes | None) -> str:
    """Why a 3xx cannot be followed: no Location, an empty one, or one we cannot crawl."""
    if location is None:
        return f"{status} redirect without a Location header"
    if not location.strip():
        return f"{status} redirect with an empty Location header"
    return f"{status} redirect to an unusable Location: {quoted(location)}"


def parse_failed(exc: BaseException) -> str:
    """A parse that raised: the page arrived, our own work on it failed."""
    if isinstance(exc, MemoryError):
        return "out of memory while parsing the page"
    if isinstance(exc, RecursionError):
        return "the page is nested too deeply to parse"
    return "the page could not be parsed"


def describe(
    kind: ErrorKind, exc: BaseException, url: str, policy: FetchPolicy, answered: bool
) -> str:
    """The message for an exception a fetcher mapped onto `kind`. `answered`: the status
    line had arrived, so the failure came while reading the body."""
    where = _host_port(url)
    if kind is ErrorKind.DNS:
        return f"the host name {quoted(urlsplit(url).hostname or '')} does not resolve"
    if kind is ErrorKind.CONNECT:
        if _refused(exc):
            return f"connection refused by {where}"
        reason = _os_reason(exc)
        return f"no connection to {where}" + (f": {reason}" if reason else "")
    if kind is ErrorKind.CONNECT_TIMEOUT:
        return f"no connection to {where} within {policy.connect_timeout:g} s"
    if kind is ErrorKind.READ_TIMEOUT:
        if answered:
            return f"the body stalled: nothing arrived for {policy.read_timeout:g} s"
        return f"no answer within {policy.read_timeout:g} s"
    if kind is ErrorKind.DEADLINE:
        return f"exchange not complete after {policy.deadline:g} s"
    if kind is ErrorKind.RESET:
        how = "reset" if _reset(exc) else "closed"
        when = "before the body was complete" if answered else "before answering"
        return f"the server {how} the connection {when}"
    if kind is ErrorKind.PROTOCOL:
        if answered:
            counts = _byte_counts(exc)
            return "the body ended before its declared end" + (f" ({counts})" if counts else "")
        line = _status_line(exc)
        return "the answer is not valid HTTP" + (f": status line {quoted(line)}" if line else "")
    if kind is ErrorKind.TLS:
        reason = _tls_reason(exc)
        return f"TLS with {where} failed" + (f": {reason}" if reason else "")
    if kind is ErrorKind.BAD_REQUEST:
        if isinstance(exc, UnicodeError):
            return "the request could not be sent: a header or the URL has characters HTTP lacks"
        return "the request could not be sent: a header or the URL is not valid"
    if kind is ErrorKind.DECODE:
        return "the body is not valid in its declared Content-Encoding"
    reason = _os_reason(exc)
    return "the exchange failed" + (f": {reason}" if reason else "")


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port or (443 if parts.scheme == 'https' else 80)}"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and every exception behind it: requests, urllib3 and aiohttp wrap, and wrap
    again, in causes, contexts, arguments and attributes of their own."""
    seen: set[int] = set()
    todo = [exc]
    while todo and len(seen) < 30:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        behind = [current.__cause__, current.__context__, *current.args]
        behind += [getattr(current, name, None) for name in ("reason", "os_error")]
        todo += [e for e in behind if isinstance(e, BaseException)]


def _refused(exc: BaseException) -> bool:
    return any(
        isinstance(e, ConnectionRefusedError)
        or (isinstance(e, OSError) and e.errno == errno.ECONNREFUSED)
        or "Connection refused" in str(e)
        for e in _chain(exc)
    )


def _reset(exc: BaseException) -> bool:
    """A reset (RST), not a plain close. http.client's "closed without response" is a
    ConnectionResetError too, and aiohttp keeps the reset only in its text."""
    return any(
        (isinstance(e, ConnectionResetError) and not isinstance(e, http.client.RemoteDisconnected))
        or (isinstance(e, OSError) and e.errno == errno.ECONNRESET)
        or "Connection reset" in str(e)
        for e in _chain(exc)
    )


def _os_reason(exc: BaseException) -> str | None:
    """The operating system's words for the failure (e.g. "network is unreachable")."""
    for e in _chain(exc):
        if isinstance(e, OSError) and isinstance(e.strerror, str) and e.strerror:
            return e.strerror[0].lower() + e.strerror[1:]
    return None


def _status_line(exc: BaseException) -> str | None:
    """The status line a client refused, when it kept it. (aiohttp's exception of that name
    is matched by name: fetch/sync.py, in pool children too, need not import aiohttp.)"""
    for e in _chain(exc):
        if isinstance(e, http.client.BadStatusLine) or type(e).__name__ == "BadStatusLine":
            line = getattr(e, "line", None) or (e.args[0] if e.args else "")
            if isinstance(line, str) and line.strip("'\"").strip():
                return line
    return None


def _tls_reason(exc: BaseException) -> str | None:
    for e in _chain(exc):
        if isinstance(e, ssl.SSLCertVerificationError) and e.verify_message:
            return f"certificate not trusted ({e.verify_message})"
    return None


_COUNTS = (
    re.compile(r"received (\d+) of (\d+) bytes"),  # aiohttp
    re.compile(r"IncompleteRead\((\d+) bytes read, (\d+) more expected"),  # urllib3
)


def _byte_counts(exc: BaseException) -> str | None:
    """ "got N of M bytes" when the library says how much of a declared length came."""
    for e in _chain(exc):
        text = str(e)
        if match := _COUNTS[0].search(text):
            got, expected = int(match[1]), int(match[2])
        elif match := _COUNTS[1].search(text):
            got, expected = int(match[1]), int(match[1]) + int(match[2])
        else:
            continue
        return f"got {got} of {expected} bytes"
    return None
