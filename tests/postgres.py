"""PostgreSQL for the tests: the private cluster from fixtures/postgres.py, and a fresh
database on it per test."""

from __future__ import annotations

from fixtures.postgres import Cluster, PostgresUnavailable, own_cluster, private_postgres

__all__ = ["Cluster", "PostgresUnavailable", "fresh_database", "own_cluster", "private_postgres"]


def fresh_database(server_url: str, name: str) -> str:
    """A new empty database on the server, so tests do not see each other's crawls."""
    import psycopg

    plain = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"
