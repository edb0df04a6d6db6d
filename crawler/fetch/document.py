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

from crawler.fetch import sync
from crawler.fetch.body import Body, BodyDecodeError, BodyTooLarge
from crawler.fetch.errors import ErrorKind
from crawler.model import FetchPolicy
from crawler.urls import resolve_link


@dataclass(frozen=True, slots=True)
class Document:
    url: str  # where it was found, after redirects
    status: int | None
    body: bytes = b""
    truncated: bool = False
    location: str | None = None  # of a 3xx hop
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
        target = resolve_link(document.location or "", url)
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
    """One hop, through the same exchange as a page fetch (sync.py)."""
    deadline = perf_counter() + policy.deadline
    response = None
    with sync.watched(policy) as ticket:
        try:
            response = sync.get(session, url, policy)
            with response:
                if 300 <= response.status_code < 400:
                    location = response.headers.get("Location")
                    return Document(url, response.status_code, location=location)
                body = Body(response.headers.get("Content-Encoding"), max_bytes)
                truncated = False
                try:
                    sync.read_body(response, body, policy, deadline)
                except BodyTooLarge:
                    truncated = True  # read no further: the first max_bytes are what counts
                if ticket.expired:
                    raise sync.Deadline(f"not complete after {policy.deadline:g} s")
                return Document(url, response.status_code, body.so_far(), truncated)
        except sync.Deadline as exc:
            kind, message = ErrorKind.DEADLINE, str(exc)
        except BodyDecodeError as exc:
            kind, message = ErrorKind.DECODE, str(exc)
        except (*sync.TRANSPORT_ERRORS, UnicodeError, ValueError) as exc:
            kind, message = sync.failure(exc, ticket, policy, url, response is not None)
    return Document(url, None, error_kind=kind.value, error_message=message)
