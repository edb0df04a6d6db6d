"""The questions' choices and defaults, in a module light enough for the command line to
import before it knows which command it runs (the queries themselves pull in SQLAlchemy)."""

DEFAULT_LIMIT = 100  # rows of a listing
STATUS_LIMIT = 20  # rows in each of status's tables
SHOW_LIMIT = 50  # links in and out that show lists
MAX_LIMIT = 1_000_000
FORMATS = ("jsonl", "csv", "json")  # of an export
TABLES = ("urls", "fetches", "pages", "links", "runs")  # an export can write
BROWSE_PORT = 8001
