"""URL rules: resolving a link as a browser does, the canonical form used for dedup, and scope.

Resolution follows the WHATWG URL standard through ada-url; the canonical form then removes
what makes two spellings of one resource look different. No I/O here.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import ada_url

FETCHABLE_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": "80", "https": "443"}
MAX_URL_LENGTH = 2048

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


class BadURL(ValueError):
    """A URL that cannot be crawled; the message says why."""


def _normalise_escape(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def _normalise_percent(text: str) -> str:
    return _ESCAPE.sub(_normalise_escape, text)


def canonicalize(url: str) -> str:
    """The dedup form of an absolute http(s) URL: lower-case scheme and host, no default port,
    no fragment, `/` for an empty path, escapes of unreserved characters decoded and the rest
    upper-cased, query order kept. Idempotent. Raises BadURL for anything not crawlable."""
    try:
        parsed = ada_url.URL(url)
    except ValueError:
        raise BadURL(f"not a valid URL: {url!r}") from None
    scheme = parsed.protocol.rstrip(":")
    if scheme not in FETCHABLE_SCHEMES:
        raise BadURL(f"only http and https URLs can be crawled, not {scheme}: {url!r}")
    if not parsed.hostname:
        raise BadURL(f"URL has no host: {url!r}")
    port = "" if parsed.port in ("", DEFAULT_PORTS[scheme]) else f":{parsed.port}"
    path = _normalise_percent(parsed.pathname or "/")
    query = _normalise_percent(parsed.search)
    userinfo = ""
    if parsed.username or parsed.password:
        userinfo = parsed.username + (f":{parsed.password}" if parsed.password else "") + "@"
    canonical = f"{scheme}://{userinfo}{parsed.hostname.lower()}{port}{path}{query}"
    if len(canonical) > MAX_URL_LENGTH:
        raise BadURL(f"URL longer than {MAX_URL_LENGTH} characters")
    return canonical


def resolve(href: str, base: str) -> str | None:
    """Resolve a link against its page (or `<base href>`) as a browser would, then
    canonicalise it. None means the link is not crawlable (bad syntax, mailto:, javascript:...)."""
    try:
        return canonicalize(ada_url.join_url(base, href.strip()))
    except ValueError:
        return None


def normalize_host(text: str) -> str:
    """A host name as the scope test compares it: lower case, punycode, no trailing dot.
    Raises BadURL for anything that is not a bare host (a scheme, port, path...)."""
    host = text.strip()
    if not host or any(c in host for c in "/?#@") or "://" in host:
        raise BadURL(f"not a host name: {text!r}")
    try:
        parsed = ada_url.URL(f"http://{host}/")
    except ValueError:
        raise BadURL(f"not a valid host name: {text!r}") from None
    if parsed.port:
        raise BadURL(f"a host without a port (any port is allowed), not {text!r}")
    return parsed.hostname.rstrip(".")


def url_key(canonical_url: str) -> str:
    """A fixed-size key for the dedup index (long URLs would overflow a B-tree entry)."""
    return hashlib.blake2b(canonical_url.encode(), digest_size=16).hexdigest()


def host_of(url: str) -> str:
    """`host[:port]` of a canonical URL, the unit of politeness and scope."""
    return ada_url.URL(url).host


def origin_of(url: str) -> str:
    parsed = ada_url.URL(url)
    return f"{parsed.protocol}//{parsed.host}"


@dataclass(frozen=True, slots=True)
class Scope:
    """Which URLs a crawl may fetch: the seeds' origins (scheme, host and port), plus any host
    named with --allow-host (on any port, over http or https)."""

    origins: frozenset[str]
    allowed_hosts: frozenset[str] = frozenset()

    @classmethod
    def for_seeds(cls, seeds: list[str], allowed_hosts: list[str] | tuple[str, ...] = ()) -> Scope:
        return cls(
            frozenset(origin_of(seed) for seed in seeds),
            frozenset(normalize_host(host) for host in allowed_hosts),
        )

    def __contains__(self, url: str) -> bool:
        parsed = ada_url.URL(url)
        if f"{parsed.protocol}//{parsed.host}" in self.origins:
            return True
        return parsed.hostname.lower().rstrip(".") in self.allowed_hosts
