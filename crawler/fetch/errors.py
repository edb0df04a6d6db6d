"""The error kinds every fetcher maps its library's exceptions onto, so rows compare across
frontends."""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    DNS = "dns"  # the host name does not resolve
    CONNECT = "connect"  # refused, unreachable
    CONNECT_TIMEOUT = "connect_timeout"
    READ_TIMEOUT = "read_timeout"  # no byte for read_timeout seconds
    DEADLINE = "deadline"  # the whole exchange took longer than the total deadline
    TOO_LARGE = "too_large"  # the decoded body passed the cap
    RESET = "reset"  # the connection closed or reset mid-exchange
    PROTOCOL = "protocol"  # malformed HTTP, wrong Content-Length, bad chunking
    DECODE = "decode"  # a broken Content-Encoding
    TLS = "tls"
    BAD_REDIRECT = "bad_redirect"  # a 3xx whose Location is missing or not crawlable
    TOO_MANY_REDIRECTS = "too_many_redirects"
    ABANDONED = "abandoned"  # leased max_attempts times, never completed (its runs died)
    BAD_REQUEST = "bad_request"  # we could not even send it (e.g. a bad header value)
    FORBIDDEN_ADDRESS = "forbidden_address"  # the peer is not public and the policy says so
    PARSE = "parse_error"  # the page arrived but parsing it raised (out of memory, a bug)
    OTHER = "other"
