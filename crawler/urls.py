"""URL rules: resolving a link as a browser does, the canonical form used for dedup, scope, and
the shapes of URL that only a spider trap produces.

Resolution follows the WHATWG URL standard through ada-url; the canonical form then removes
what makes two spellings of one resource look different. No I/O here.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections import Counter
from dataclasses import dataclass

import ada_url

FETCHABLE_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": "80", "https": "443"}
MAX_URL_LENGTH = 2048
# Trap guards: relative links on a page served at many paths (`a/` linking `a/`...) make URLs
# that grow forever; real sites rarely nest this deep or repeat a directory this often.
MAX_PATH_SEGMENTS = 32
MAX_SEGMENT_REPEATS = 3

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})|%")


class BadURL(ValueError):
    """A URL that cannot be crawled; the message says why."""


def _normalise_escape(match: re.Match[str]) -> str:
    """A stray `%` becomes `%25`: left alone, `%%33%30` would decode to a new escape `%30`
    (and to another resource; it means the three characters `%30`)."""
    if match.group(1) is None:
        return "%25"
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def _normalise_percent(text: str) -> str:
    return _ESCAPE.sub(_normalise_escape, text)


_PARTS = ("protocol", "username", "password", "hostname", "port", "pathname", "search")


# A docs page repeats its links (385 on a page of the Python manual): most are seen already.
# Each pool child has its own, so it stays small (about 0.6 MB).
@functools.lru_cache(maxsize=2048)
def canonicalize(url: str) -> str:
    """The dedup form of an absolute http(s) URL: lower-case scheme and host, no default port,
    no fragment, `/` for an empty path, escapes of unreserved characters decoded and the rest
    upper-cased, a `%` that starts no escape written `%25`, query order kept. Idempotent.
    Raises BadURL for anything not crawlable."""
    try:
        parsed = ada_url.parse_url(url, _PARTS)  # one call for all the parts
    except ValueError:
        raise BadURL(f"not a valid URL: {url!r}") from None
    scheme = parsed["protocol"].rstrip(":")
    if scheme not in FETCHABLE_SCHEMES:
        raise BadURL(f"only http and https URLs can be crawled, not {scheme}: {url!r}")
    hostname, port, username, password = (
        parsed["hostname"],
        parsed["port"],
        parsed["username"],
        parsed["password"],
    )
    if not hostname:
        raise BadURL(f"URL has no host: {url!r}")
    port = "" if port in ("", DEFAULT_PORTS[scheme]) else f":{port}"
    path = _normalise_percent(parsed["pathname"] or "/")
    query = _normalise_percent(parsed["search"])
    userinfo = ""
    if username or password:
        userinfo = username + (f":{password}" if password else "") + "@"
    canonical = f"{scheme}://{userinfo}{hostname.lower()}{port}{path}{query}"
    if len(canonical) > MAX_URL_LENGTH:
        raise BadURL(f"URL longer than {MAX_URL_LENGTH} characters")
    return canonical


def resolve(href: str, base: str | None) -> str | None:
    """The WHATWG `href` of `href` parsed against `base` (alone when `base` is None), exactly
    what a browser's `new URL(href, base)` gives. None when it does not parse or is not http(s):
    a crawler cannot fetch mailto:, javascript:, data:... Only the standard's own preprocessing
    (strip C0 controls and spaces, drop tabs and newlines) applies: other stripping would make a
    link point elsewhere than in a browser."""
    try:
        resolved = ada_url.join_url(base, href) if base is not None else ada_url.URL(href).href
    except ValueError:  # includes UnicodeEncodeError: a lone surrogate is no URL code point
        return None
    # the href's scheme is lower case, and a special scheme's is followed by //
    return resolved if resolved.startswith(("http://", "https://")) else None


def resolve_link(href: str, base: str) -> str | None:
    """A link as the crawler stores it: resolved as a browser would, then canonicalised for
    dedup. None when the link cannot be crawled."""
    if href.startswith("#"):  # a place in the document `base` names: that, once the fragment goes
        href = ""
    resolved = resolve(href, base)
    if resolved is None:
        return None
    try:
        return canonicalize(resolved)
    except BadURL:
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


def _path_segments(url: str) -> list[str]:
    """The path's segments, without the empty one a trailing slash leaves."""
    try:
        path = ada_url.URL(url).pathname
    except ValueError:
        raise BadURL(f"not a valid URL: {url!r}") from None
    segments = path.removeprefix("/").split("/")
    return segments[:-1] if segments[-1] == "" else segments


def _most_repeated(segments: list[str]) -> tuple[str, int]:
    """The non-empty segment seen most often (the first of equals) and its count."""
    counts = Counter(segment for segment in segments if segment)
    return max(counts.items(), key=lambda item: item[1], default=("", 0))


def has_repeated_segments(url: str, limit: int = MAX_SEGMENT_REPEATS) -> bool:
    """True when one path segment occurs more than `limit` times (`/a/b/a/b/a/b/a/b`,
    `/x/x/x/x`): the mark of relative links that re-add themselves to the path."""
    return _most_repeated(_path_segments(url))[1] > limit


def trap_reason(url: str) -> str | None:
    """Why a URL looks like a spider trap rather than a page, or None. The frontier skips
    such URLs: each fetch would only discover a longer one. Raises BadURL if it does not parse."""
    segments = _path_segments(url)
    if len(segments) > MAX_PATH_SEGMENTS:
        return f"path deeper than {MAX_PATH_SEGMENTS} segments"
    segment, count = _most_repeated(segments)
    if count > MAX_SEGMENT_REPEATS:
        return f"path repeats segment {segment!r} {count} times"
    return None


def url_key(canonical_url: str) -> str:
    """A fixed-size key for the dedup index (long URLs would overflow a B-tree entry)."""
    return hashlib.blake2b(canonical_url.encode(), digest_size=16).hexdigest()


def _split_origin(url: str) -> tuple[str, str] | None:
    """(origin, host[:port]) of a canonical URL, read from its text: a canonical URL is
    `scheme://host[:port]/...` with a lower-case host and a path that starts with `/`. None
    when the text needs a parser (user info, or not in that form). Asked for every link of
    every page: a parse would cost ten times as much."""
    start = url.find("://") + 3
    end = url.find("/", start)
    if start < 3 or end == -1:
        return None
    authority = url[start:end]
    if "@" in authority or not authority:
        return None
    return url[:end], authority


def host_of(url: str) -> str:
    """`host[:port]` of a canonical URL, the unit of politeness and scope."""
    split = _split_origin(url)
    return split[1] if split else ada_url.URL(url).host


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a canonical URL."""
    split = _split_origin(url)
    if split:
        return split[0]
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
        """Whether a canonical URL is in scope."""
        split = _split_origin(url)
        if split is not None:
            origin, authority = split
            if origin in self.origins:
                return True
            if not self.allowed_hosts:
                return False
            if not authority.startswith("["):  # an IPv6 literal is left to the parser
                hostname = authority.rsplit(":", 1)[0] if ":" in authority else authority
                return hostname.rstrip(".") in self.allowed_hosts
        parsed = ada_url.URL(url)
        if f"{parsed.protocol}//{parsed.host}" in self.origins:
            return True
        return parsed.hostname.lower().rstrip(".") in self.allowed_hosts
