from __future__ import annotations

import pytest
from hypothesis import settings

from tests.helpers import FixtureServer

# `make test` (and so CI) runs the property tests on a fixed seed, so a submission's result does
# not depend on luck; run pytest without it and each run explores new examples.
settings.register_profile("ci", derandomize=True, database=None)


@pytest.fixture(scope="session")
def fixture_site():
    """The hand-written fixture site, served by `crawler fixtures serve` on a free port."""
    with FixtureServer() as server:
        yield server.url


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'crawl.db'}"


@pytest.fixture(scope="session")
def make_httpserver():
    """pytest-httpserver, threaded: a crawler sends requests concurrently, and a slow handler
    must not hold up the next test's requests."""
    from pytest_httpserver import HTTPServer

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture
def httpserver(make_httpserver):
    """pytest-httpserver answering robots.txt with 404 (no rules), as most servers do: a crawl
    asks for it first, and the plugin answers a path it does not know with a 500. A test that
    wants its own robots.txt registers it with `expect_ordered_request`, which comes first."""
    make_httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    yield make_httpserver
    make_httpserver.clear()


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server. Not skipped when missing: CI provides it (.ci/run)."""
    from tests.postgres import private_postgres

    with private_postgres() as url:
        yield url


@pytest.fixture
def own_postgres():
    """A PostgreSQL cluster of the test's own, which it may restart."""
    from tests.postgres import own_cluster

    with own_cluster() as cluster:
        yield cluster


@pytest.fixture
def pg_url(postgres_server, request):
    from tests.postgres import fresh_database

    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:50].lower()
    return fresh_database(postgres_server, name)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request, tmp_path):
    """Each database the crawler supports, for tests that must hold on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'crawl.db'}"
    return request.getfixturevalue("pg_url")
