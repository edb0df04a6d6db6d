"""Fetching a whole small document (robots.txt, a sitemap) with requests, following redirects.

Pages go through `fetch()`, where the frontier follows redirects; these documents are read by
the coordinator itself, so the hops are followed here, each one re-checked (http or https
only), and the body is cut at a byte cap rather than refused: RFC 9309 reads the first 500 KiB
of a longer robots.txt.
"""

from __future__ import annotations

from dataclasses import dataclass
from time import perf_counter

import requests
import urllib3

from crawler.fetch import sync
from crawler.fetch.body import Body, BodyDecodeError, BodyTooLarge
from crawler.fetch.errors import ErrorKind
from crawler.fetch.watchdog import WATCHDOG
from crawler.model import FetchPolicy
from crawler.urls import resolve_link


@dataclass(frozen=True, slots=True)
class Document:
    url: str  # where it was found, after redirects
    status: int | None
    body: bytes = b""
    truncated: bool = False
    error_kind: str | None = None
    error_message: str | None = None


def fetch_document(
    session: requests.Session,
    url: str,
    policy: FetchPolicy,
    *,
    max_bytes: int,
    max_redirects: int = 5,
) -> Document:
    """GET `url`, following up to `max_redirects` hops; the body is the first `max_bytes`
    decoded bytes. Never raises for the network's doing: errors come back as a Document."""
    for _hop in range(max_redirects + 1):
        document = _get(session, url, policy, max_bytes)
        if document.status is None or not 300 <= document.status < 400:
            return document
        target = resolve_link(document.error_message or "", url)
        if target is None:
            return Document(
                url,
                document.status,
                error_kind=ErrorKind.BAD_REDIRECT.value,
                error_message=f"{document.status} to a target that cannot be fetched",
            )
        url = target
    return Document(
        url,
        document.status,
        error_kind=ErrorKind.TOO_MANY_REDIRECTS.value,
        error_message=f"more than {max_redirects} redirects",
    )


def _get(session: requests.Session, url: str, policy: FetchPolicy, max_bytes: int) -> Document:
    """One hop. For a 3xx the Location travels in error_message (only _hop reads it)."""
    started = perf_counter()
    sync._current.connect_s = 0.0
    sync._current.ticket = ticket = WATCHDOG.watch(policy.deadline)
    try:
        response = session.get(
            url,
            stream=True,
            allow_redirects=False,
            timeout=(policy.connect_timeout, policy.read_timeout),
        )
        with response:
            if 300 <= response.status_code < 400:
                return Document(
                    url, response.status_code, error_message=response.headers.get("Location")
                )
            body = Body(response.headers.get("Content-Encoding"), max_bytes)
            truncated = False
            try:
                while True:
                    if perf_counter() - started > policy.deadline:
                        raise TimeoutError
                    chunk = response.raw.read1(sync.CHUNK, decode_content=False)
                    if not chunk:
                        body.finish()
                        break
                    body.feed(chunk)
            except BodyTooLarge:
                truncated = True  # read no further: the first max_bytes are what counts
            if ticket.expired:
                raise TimeoutError
            return Document(url, response.status_code, body.so_far(), truncated)
    except BodyDecodeError as exc:
        return Document(url, None, error_kind=ErrorKind.DECODE.value, error_message=str(exc))
    except TimeoutError:
        return Document(
            url,
            None,
            error_kind=ErrorKind.DEADLINE.value,
            error_message=f"not complete after {policy.deadline:g} s",
        )
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        kind = ErrorKind.DEADLINE if ticket.expired else sync._error_kind(exc)
        return Document(
            url, None, error_kind=kind.value, error_message=f"{type(exc).__name__}: {exc}"
        )
    except (UnicodeError, ValueError) as exc:
        return Document(
            url,
            None,
            error_kind=ErrorKind.BAD_REQUEST.value,
            error_message=f"{type(exc).__name__}: {exc}",
        )
    finally:
        WATCHDOG.done(ticket)
        sync._current.ticket = None
