"""The fetch frontends: each says only how it waits for I/O (see crawler.coordinator.Frontend).

`load(backend)` gives a new frontend. A pool child imports this package: nothing here may pull
in SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crawler.coordinator import Frontend

BACKENDS = ("threads", "processes", "asyncio")
_MODULES = {
    "threads": "crawler.frontends.threads",
    "processes": "crawler.frontends.processes",
    "asyncio": "crawler.frontends.aio",
}


class BackendUnavailable(LookupError):
    pass


def load(backend: str, *, pool_returns: str = "pages") -> Frontend:
    """A new frontend; `pool_returns` is the processes frontend's (pages or bodies)."""
    if backend not in _MODULES:
        raise BackendUnavailable(
            f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}"
        )
    frontend_class = importlib.import_module(_MODULES[backend]).Frontend
    if backend == "processes":
        return frontend_class(pool_returns)
    return frontend_class()
