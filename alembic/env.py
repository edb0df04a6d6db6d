"""Alembic environment: migrate the connection the crawler hands us, or the `-x db=URL` one."""

from __future__ import annotations

from alembic import context
from crawler.store.engine import default_db_url, make_engine
from crawler.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("db") or default_db_url()
    with make_engine(url).connect() as conn:
        run_migrations(conn)
