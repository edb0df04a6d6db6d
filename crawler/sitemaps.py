"""Reading sitemaps (sitemaps.org): a urlset lists pages, a sitemapindex lists more sitemaps.

Gzipped files are inflated incrementally under the same byte cap as any body, so a bomb stops
at the cap; the XML parser resolves no entities and fetches nothing.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from lxml import etree

MAX_SITEMAP_BYTES = 10 * 1024 * 1024  # decoded; the protocol's own limit is 50 MB
MAX_SITEMAP_URLS = 50_000  # per file, as the protocol says
MAX_SITEMAPS = 100  # files read per origin, indexes included


class SitemapError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Sitemap:
    pages: tuple[str, ...] = ()
    sitemaps: tuple[str, ...] = ()  # from a sitemap index


def gunzip_capped(data: bytes, cap: int = MAX_SITEMAP_BYTES) -> bytes:
    """Inflate gzip data, refusing to produce more than `cap` bytes (a bomb stops there)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, cap + 1)
    except zlib.error as exc:
        raise SitemapError(f"broken gzip: {exc}") from None
    if len(out) > cap:
        raise SitemapError(f"sitemap larger than {cap} bytes once inflated")
    return out


def parse_sitemap(data: bytes) -> Sitemap:
    """The page and sitemap URLs in one sitemap file (gzipped or not), as written."""
    if data[:2] == b"\x1f\x8b":
        data = gunzip_capped(data)
    if len(data) > MAX_SITEMAP_BYTES:
        raise SitemapError(f"sitemap larger than {MAX_SITEMAP_BYTES} bytes")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, recover=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise SitemapError(f"not XML: {exc}") from None
    if root is None:
        raise SitemapError("empty or not XML")
    locs = [(el.text or "").strip() for el in root.iter("{*}loc") if el.text and el.text.strip()][
        :MAX_SITEMAP_URLS
    ]
    if etree.QName(root).localname == "sitemapindex":
        return Sitemap(sitemaps=tuple(locs))
    return Sitemap(pages=tuple(locs))
