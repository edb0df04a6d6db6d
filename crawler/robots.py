"""robots.txt per RFC 9309: parsed once for our user agent, then asked about many URLs.

Pure: the caller fetches /robots.txt and picks `allow_all` (4xx) or `disallow_all` (5xx,
unreachable). Grouping and matching follow Google's reference parser (google/robotstxt), from
which RFC 9309 was written. Protego 0.7 disagrees with it on grouping, on user-agent values and on
percent-encoding, and its Crawl-delay goes through the same grouping. So this module has its own
small line parser for groups, rules, Crawl-delay and Sitemap.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

MAX_ROBOTS_BYTES = 512 * 1024  # RFC 9309: parse at least 500 KiB; the rest is ignored
_MAX_LINE_BYTES = 2083 * 8 - 1  # Google keeps this much of a line; it also bounds matching work

_TOKEN = re.compile(r"[A-Za-z_-]*")  # RFC 9309 2.2.1 product token (no digits, no "/")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_BLANKS = re.compile(r"[ \t]+")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_PATH_START = re.compile(r"[/?;]")
_DELAY = re.compile(r"\d+(?:\.\d*)?|\.\d+")
_SPACE = " \t\f\v"

# Keys are compared lower-cased. Like Google, we accept the common misspellings.
_USER_AGENT = frozenset({"user-agent", "useragent", "user agent"})
_ALLOW = frozenset({"allow"})
_DISALLOW = frozenset({"disallow", "dissallow", "dissalow", "disalow", "diasllow", "disallaw"})
_CRAWL_DELAY = frozenset({"crawl-delay", "crawldelay", "crawl delay"})
_SITEMAP = frozenset({"sitemap", "site-map"})


class Rule(NamedTuple):
    """One Allow/Disallow pattern, split at `*` so matching needs no regex (and cannot blow up)."""

    priority: int  # length of the encoded pattern: the longest match wins
    allow: bool
    parts: tuple[str, ...]
    anchored: bool  # the pattern ended in "$"

    @classmethod
    def of(cls, pattern: str, allow: bool) -> Rule:
        pattern = _encode(pattern)
        anchored = pattern.endswith("$")
        body = pattern[:-1] if anchored else pattern
        return cls(len(pattern), allow, tuple(body.split("*")), anchored)

    def matches(self, path: str) -> bool:
        # Taking each piece at its leftmost place leaves the most room for the rest, so the
        # greedy scan is exact for "*" globs.
        head, *middle = self.parts
        if not middle:
            return path == head if self.anchored else path.startswith(head)
        if not path.startswith(head):
            return False
        pos = len(head)
        tail = middle.pop()
        for part in middle:
            pos = path.find(part, pos)
            if pos == -1:
                return False
            pos += len(part)
        if self.anchored:
            return path.endswith(tail) and len(path) - len(tail) >= pos
        return path.find(tail, pos) != -1


@dataclass(frozen=True, slots=True)
class RobotsRules:
    """Our group's rules, best first, plus what the file says about pacing and sitemaps."""

    rules: tuple[Rule, ...] = ()
    crawl_delay: float | None = None
    sitemaps: tuple[str, ...] = ()

    @classmethod
    def parse(cls, robots_txt: str, user_agent: str) -> RobotsRules:
        """Pick our group once: every group that names our product token, else every `*` group."""
        token = product_token(user_agent).lower()
        ours, anyone = _Group(), _Group()
        feeding: list[_Group] = []  # groups the current user-agent lines belong to
        in_rules = False  # a rule was seen, so the next user-agent line starts a new group
        sitemaps: list[str] = []
        for key, value in _records(robots_txt):
            if key in _USER_AGENT:
                if in_rules:
                    feeding, in_rules = [], False
                target = _agent_group(value, token, ours, anyone)
                if target is not None and target not in feeding:
                    target.named = True
                    feeding.append(target)
            elif key in _ALLOW or key in _DISALLOW:
                in_rules = True
                if value:  # an empty pattern matches nothing (RFC 9309 2.2.2)
                    rule = Rule.of(value, allow=key in _ALLOW)
                    for group in feeding:
                        group.rules.append(rule)
            elif key in _CRAWL_DELAY:
                delay = _delay(value)
                if delay is not None:
                    for group in feeding:
                        group.delays.append(delay)
            elif key in _SITEMAP and value:
                sitemaps.append(value)
            # Anything else is ignored and, per RFC 9309 2.2.4, does not end a group.
        chosen = ours if ours.named else anyone
        return cls(
            rules=tuple(sorted(chosen.rules, key=lambda r: (-r.priority, not r.allow))),
            crawl_delay=max(chosen.delays, default=None),  # if groups disagree, the politest
            sitemaps=tuple(dict.fromkeys(sitemaps)),
        )

    @classmethod
    def allow_all(cls) -> RobotsRules:
        """For a 4xx robots.txt (RFC 9309 2.3.1.3): crawl as if there were none."""
        return cls()

    @classmethod
    def disallow_all(cls) -> RobotsRules:
        """For a 5xx or unreachable robots.txt (RFC 9309 2.3.1.4): assume complete disallow."""
        return cls(rules=(Rule.of("/", allow=False),))

    def allowed(self, url: str) -> bool:
        """Longest match wins, Allow wins a tie, no match allows. /robots.txt is always allowed."""
        path = _path(url)
        if path.partition("?")[0] == "/robots.txt":
            return True
        for rule in self.rules:  # sorted best first
            if rule.matches(path):
                return rule.allow
        return True


def allowed(robots_txt: str, user_agent: str, url: str) -> bool:
    """For tests: RobotsRules.parse(robots_txt, user_agent).allowed(url)."""
    return RobotsRules.parse(robots_txt, user_agent).allowed(url)


def product_token(user_agent: str) -> str:
    """Our full User-Agent header ('crawler/0.1 (educational...)') -> the token matched against
    robots groups ('crawler'), per RFC 9309 2.2.1."""
    match = _TOKEN.match(user_agent.strip())
    return match[0] if match else ""


@dataclass(slots=True, eq=False)
class _Group:
    """What parsing gathers for our agent, or for `*`, across all the groups that name it."""

    named: bool = False
    rules: list[Rule] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)


def _agent_group(value: str, token: str, ours: _Group, anyone: _Group) -> _Group | None:
    """Which of our two groups a User-agent value feeds. Its product token is only the leading
    letters: 'FooBot/2.1' and 'Foo Bar' name 'foobot' and 'foo'."""
    if value[:1] == "*" and value[1:2] in ("", " ", "\t"):
        return anyone
    named = product_token(value).lower()
    return ours if named and named == token else None


def _records(robots_txt: str) -> Iterator[tuple[str, str]]:
    """(lower-cased key, value) per line. Comments are dropped. As Google does, a missing colon
    is forgiven when a blank separates exactly two words ('disallow /x')."""
    text = _cut(robots_txt, MAX_ROBOTS_BYTES).removeprefix("\ufeff")
    for raw in _LINE_BREAK.split(text):
        line = _cut(raw, _MAX_LINE_BYTES).partition("#")[0].strip(_SPACE)
        key, colon, value = line.partition(":")
        if not colon:
            words = _BLANKS.split(line)
            if len(words) != 2:
                continue
            key, value = words
        yield key.strip(_SPACE).lower(), value.strip(_SPACE)


def _delay(value: str) -> float | None:
    """Seconds from a Crawl-delay value; None unless it is a plain non-negative number."""
    if not _DELAY.fullmatch(value):
        return None
    seconds = float(value)
    return seconds if math.isfinite(seconds) else None  # a thousand digits parse as inf


def _cut(text: str, limit: int) -> str:
    """The head of `text` that fits in `limit` UTF-8 bytes; a character split by the cut is
    dropped."""
    if len(text) <= limit // 4:  # at most 4 bytes per character: it fits
        return text
    data = text.encode("utf-8", "surrogatepass")
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore")


def _encode(pattern: str) -> str:
    """Google's MaybeEscapePattern: non-ASCII becomes UTF-8 %XX and existing %xx is upper-cased.
    Nothing is decoded, so '/%62' does not match '/b'."""
    pattern = _ESCAPE.sub(lambda m: m[0].upper(), pattern)
    return _NON_ASCII.sub(
        lambda m: "".join(f"%{b:02X}" for b in m[0].encode("utf-8", "surrogatepass")), pattern
    )


def _path(url: str) -> str:
    """Path, params and query of `url`, as given (Google's GetPathParamsQuery): what rules see.
    A URL with no path (or an empty one) is '/'. A bare path is accepted too."""
    start = 2 if url.startswith("//") else 0
    early = _PATH_START.search(url, start)
    scheme_end = url.find("://", start)
    if scheme_end == -1 or (early is not None and early.start() < scheme_end):
        after = start  # no scheme, or "://" only appears inside the path or query
    else:
        after = scheme_end + 3
    found = _PATH_START.search(url, after)
    if found is None:
        return "/"
    begin = found.start()
    hash_at = url.find("#", start)
    if hash_at != -1 and hash_at < begin:
        return "/"
    path = url[begin : hash_at if hash_at != -1 else len(url)]
    return path if path.startswith("/") else "/" + path
