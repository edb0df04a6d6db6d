"""The fetch frontends: each owns its pool or event loop and nothing else.

Every frontend module has `run(frontier, policy, concurrency, on_progress) -> FrontendReport`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # a pool child imports this package: keep SQLAlchemy out of it
    from crawler.frontier import Frontier, Progress
    from crawler.model import FetchPolicy

BACKENDS = ("threads", "processes", "asyncio")
_MODULES = {
    "threads": "crawler.frontends.threads",
    "processes": "crawler.frontends.processes",
    "asyncio": "crawler.frontends.aio",
}

ProgressCallback = Callable[["Progress"], None]


@dataclass(frozen=True, slots=True)
class FrontendReport:
    """What only the frontend knows about its run."""

    workers: int  # threads, processes or tasks
    startup_s: float = 0.0
    ipc_bytes: int = 0


class Frontend(Protocol):
    def run(
        self,
        frontier: Frontier,
        policy: FetchPolicy,
        concurrency: int,
        on_progress: ProgressCallback | None = None,
    ) -> FrontendReport: ...


class BackendUnavailable(LookupError):
    pass


def load(backend: str) -> Frontend:
    if backend not in BACKENDS:
        raise BackendUnavailable(
            f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}"
        )
    if backend not in _MODULES:
        raise BackendUnavailable(f"backend {backend!r} is not available yet; use --backend threads")
    return importlib.import_module(_MODULES[backend])  # type: ignore[return-value]
