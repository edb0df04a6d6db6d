"""A site on several loopback hosts that records every request it answers (host, start, end),
so tests can measure what the crawler did to each host: requests in flight, gaps between them."""

from __future__ import annotations

import itertools
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class CountingSite:
    """`hosts` servers (127.0.0.1, 127.0.0.2, ...), each with an index linking to `pages`
    pages; each answer takes `delay[host]` seconds (default `delay`). robots.txt is whatever
    `robots[host]` says (404 when absent)."""

    def __init__(
        self,
        hosts: int = 1,
        pages: int = 20,
        delay: float = 0.05,
        delays: dict[int, float] | None = None,
        robots: dict[int, str] | None = None,
    ) -> None:
        self.pages = pages
        self.delays = {h: (delays or {}).get(h, delay) for h in range(hosts)}
        self.robots = robots or {}
        self.lock = threading.Lock()
        self.requests: list[tuple[int, str, float, float]] = []  # host, path, start, end
        self.robots_fetched = dict.fromkeys(range(hosts), 0)
        self.servers = [self._server(h) for h in range(hosts)]
        self.threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in self.servers]

    def _server(self, host: int) -> ThreadingHTTPServer:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                started = time.monotonic()
                if self.path == "/robots.txt":
                    with site.lock:
                        site.robots_fetched[host] += 1
                    body = site.robots.get(host)
                    self._answer(200 if body is not None else 404, body or "", "text/plain")
                    return
                time.sleep(site.delays[host])
                if self.path == "/":
                    links = "".join(f'<a href="/p/{n}">{n}</a>' for n in range(site.pages))
                    self._answer(200, f"<title>index</title>{links}", "text/html")
                else:
                    self._answer(200, f"<title>{self.path}</title>", "text/html")
                with site.lock:
                    site.requests.append((host, self.path, started, time.monotonic()))

            def _answer(self, status: int, body: str, content_type: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        server = ThreadingHTTPServer((f"127.0.0.{host + 1}", 0), Handler)
        server.daemon_threads = True
        server.request_queue_size = 128
        return server

    @property
    def urls(self) -> list[str]:
        return [
            f"http://127.0.0.{h + 1}:{s.server_address[1]}/" for h, s in enumerate(self.servers)
        ]

    def of_host(self, host: int) -> list[tuple[float, float]]:
        with self.lock:
            return sorted((s, e) for h, p, s, e in self.requests if h == host)

    def most_in_flight(self, host: int) -> int:
        events = sorted(
            [(s, 1) for s, _ in self.of_host(host)] + [(e, -1) for _, e in self.of_host(host)],
            key=lambda ev: (ev[0], ev[1]),
        )
        now = peak = 0
        for _, change in events:
            now += change
            peak = max(peak, now)
        return peak

    def smallest_gap(self, host: int) -> float:
        """Least time from the end of one request to the start of the next, on one host."""
        spans = self.of_host(host)
        return min(
            (nxt[0] - cur[1] for cur, nxt in itertools.pairwise(spans)),
            default=float("inf"),
        )

    def __enter__(self) -> CountingSite:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
