"""docker-compose.yml and the Dockerfile, checked without a Docker engine: Debian's
docker-compose validates the file, every command in it is one our command line accepts, the
steps run in order, and the README documents the very commands the stack runs."""

from __future__ import annotations

import shlex
import shutil
import subprocess

import pytest
import yaml

from crawler.cli import build_parser
from tests.helpers import ROOT

COMPOSE = ROOT / "docker-compose.yml"
README = (ROOT / "README.md").read_text()


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_docker_compose_accepts_the_file():
    compose = shutil.which("docker-compose")
    assert compose, "docker-compose is needed: apt-get install docker-compose (.ci/run does)"
    checked = subprocess.run(
        [compose, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, cwd=ROOT
    )
    assert checked.returncode == 0, checked.stderr


def test_every_command_is_one_the_crawler_accepts(services):
    for name, service in services.items():
        command = service.get("command")
        if command is None:
            continue
        assert command[0] == "crawler", name
        args = command[1:]
        if args[:2] == ["fixtures", "serve"]:  # its own parser, behind `crawler fixtures serve`
            from fixtures.server import build_parser as fixture_parser

            fixture_parser().parse_args(args[2:])
            continue
        build_parser().parse_args(args)


def test_the_stack_migrates_then_submits_then_runs_three_frontends_on_one_crawl(services):
    assert "healthcheck" in services["postgres"]
    assert "healthcheck" in services["site"]
    assert services["migrate"]["command"][1:] == ["db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    submit = services["submit"]
    assert submit["command"][1] == "submit"
    assert submit["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert submit["depends_on"]["site"]["condition"] == "service_healthy"
    crawl = submit["command"][submit["command"].index("--name") + 1]
    workers = {n: s for n, s in services.items() if s.get("command", [None, None])[1] == "worker"}
    backends = set()
    for name, worker in workers.items():
        args = build_parser().parse_args(worker["command"][1:])
        assert args.crawl == crawl, name
        backends.add(args.backend)
        assert worker["depends_on"]["submit"]["condition"] == "service_completed_successfully"
    assert backends == {"threads", "processes", "asyncio"}
    for name, service in services.items():
        if name != "postgres":
            assert service["environment"]["CRAWLER_DB"].startswith("postgresql+psycopg://"), name
    assert services["cli"]["profiles"] == ["cli"]  # `run` only, not part of `up`


def test_the_readme_documents_the_commands_the_stack_runs(services):
    for name, service in services.items():
        if "command" in service:
            line = shlex.join(service["command"])
            assert line in README, f"{name}: `{line}` is not in the README"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --no-cache-dir -e ." in dockerfile
    assert "pip install --no-cache-dir -e ." in README
    assert "docker compose up" in README
    assert f"docker compose run --rm cli crawler status {crawl_of(services)}" in README


def crawl_of(services: dict) -> str:
    command = services["submit"]["command"]
    return command[command.index("--name") + 1]
