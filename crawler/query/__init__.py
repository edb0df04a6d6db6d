"""The read side: the questions users ask of a crawl (status, pages, links, errors, hosts, one
URL's story, exports, read-only SQL), answered on a read-only connection as our dataclasses.
Nothing here writes."""
