"""One run of a comparison, in a fresh interpreter of its own, so that the memory and CPU its
`runs` row records are its alone (an earlier run's threads or heap would otherwise count):

    python -m crawler.report.one_run '{"seeds": [...], "backend": "asyncio", ...}'

The spec is crawler.api.crawl's keywords as JSON. The run's figures go to its `runs` row; an
error is one line on stderr, which the comparison reports.
"""

from __future__ import annotations

import json
import sys

from crawler.api import crawl
from crawler.errors import CrawlerError


def main(argv: list[str] | None = None) -> int:
    spec = json.loads((argv or sys.argv[1:])[0])
    try:
        crawl(spec.pop("seeds"), **spec)
    except CrawlerError as exc:
        print(f"crawler: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
