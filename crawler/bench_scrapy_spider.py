"""The Scrapy side of `python -m crawler.bench_sites`: one spider that follows every same-origin
`<a href>` and `<area href>` from a seed and yields one item (URL and title) per HTML page.

Run only by the benchmark venv's interpreter, never imported by the crawler package (which
does not depend on Scrapy):

    .bench-venv/bin/python -P crawler/bench_scrapy_spider.py SEED CONCURRENCY FEED.jsonl

`-P` keeps this file's folder off sys.path, so the crawler's modules cannot shadow a library's.
The settings are Scrapy's defaults except those a fair comparison fixes: as many requests in
flight as our crawler is given, robots.txt obeyed as ours obeys it, no delay, no throttling,
no cache, no depth limit. The dupefilter is Scrapy's default, as users get it.
"""

from __future__ import annotations

import sys
from urllib.parse import urldefrag, urlsplit

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.http import HtmlResponse
from scrapy.linkextractors import LinkExtractor


class SiteSpider(scrapy.Spider):
    """Every HTML page reachable from the seed on its own scheme, host and port."""

    name = "bench-site"

    def __init__(self, seed: str, **kwargs) -> None:
        super().__init__(**kwargs)
        parts = urlsplit(seed)
        self.start_urls = [seed]
        self.allowed_domains = [parts.hostname]
        self.origin = (parts.scheme, parts.netloc)
        # `a`, `area` and href are LinkExtractor's defaults, said here as the count depends on
        # them. Not `allow_domains`: it compares host:port with the domain, so on a port it
        # drops every link; the origin test in `parse` does its work.
        self.links = LinkExtractor(tags=("a", "area"), attrs=("href",))

    def parse(self, response):
        """One item per HTML page, then its same-origin links (the dupefilter drops repeats)."""
        if not isinstance(response, HtmlResponse):
            return
        yield {"url": urldefrag(response.url)[0], "title": response.css("title::text").get()}
        for link in self.links.extract_links(response):
            parts = urlsplit(link.url)
            if (parts.scheme, parts.netloc) == self.origin:
                yield response.follow(link, callback=self.parse)


def main(argv: list[str]) -> int:
    seed, concurrency, feed = argv
    process = CrawlerProcess(
        settings={
            "CONCURRENT_REQUESTS": int(concurrency),
            "CONCURRENT_REQUESTS_PER_DOMAIN": int(concurrency),
            "ROBOTSTXT_OBEY": True,
            "DOWNLOAD_DELAY": 0,
            "AUTOTHROTTLE_ENABLED": False,
            "HTTPCACHE_ENABLED": False,
            "DEPTH_LIMIT": 0,
            "LOG_LEVEL": "INFO",
            "FEEDS": {feed: {"format": "jsonlines", "overwrite": True}},
        }
    )
    process.crawl(SiteSpider, seed=seed)
    process.start()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
