"""Storage: the schema, the engine factory, migrations, and read-side queries."""

from crawler.store.engine import (
    DatabaseOpenError,
    DatabaseURLError,
    default_db_url,
    make_engine,
    reading,
)

__all__ = [
    "DatabaseOpenError",
    "DatabaseURLError",
    "default_db_url",
    "make_engine",
    "reading",
]
