"""One HTTP exchange under the fetch policy. Library types stop at this package's border:
callers get a FetchResult with our error kinds, never a requests or aiohttp exception."""

from crawler.fetch.errors import ErrorKind

__all__ = ["ErrorKind"]
