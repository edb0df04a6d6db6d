"""How each frontend reads, counted from our own source (claim 7): lines of code (no blank
lines, comments or docstrings), the synchronisation primitives it calls, and for asyncio the
points where it yields (`await`, `async with`, `async for`). Each frontend is counted with the
fetcher it uses, since that is the code a reader follows from a task to its result."""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent
SOURCES = {
    "threads": ("frontends/threads.py", "fetch/sync.py"),
    "processes": ("frontends/processes.py", "fetch/sync.py"),
    "asyncio": ("frontends/aio.py", "fetch/aio.py"),
}
SHARED = "coordinator.py"  # the loop every frontend shares, counted apart
PRIMITIVES = {
    "Lock": "locks",
    "RLock": "locks",
    "Condition": "locks",
    "Semaphore": "locks",
    "BoundedSemaphore": "locks",
    "Event": "events",
    "Barrier": "barriers",
    "Queue": "queues",
    "SimpleQueue": "queues",
    "JoinableQueue": "queues",
    "Pipe": "queues",
    "local": "thread-locals",
    "call_soon_threadsafe": "cross-thread calls",
    "run_coroutine_threadsafe": "cross-thread calls",
}
KINDS = ("locks", "events", "barriers", "queues", "thread-locals", "cross-thread calls")


@dataclass(frozen=True, slots=True)
class SourceCount:
    frontend: str
    files: tuple[str, ...]
    frontend_lines: int  # the frontend module alone
    lines: int  # the frontend and its fetcher
    primitives: dict[str, int]  # kind -> calls, over both files
    yield_points: int  # await / async with / async for

    @property
    def primitive_calls(self) -> int:
        return sum(self.primitives.values())


def code_lines(source: str) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    tree = ast.parse(source)
    docstrings: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                docstrings.update(range(body[0].lineno, (body[0].end_lineno or 0) + 1))
    lines: set[int] = set()
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skip and token.type != tokenize.ENDMARKER:
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - docstrings)


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def primitives_and_yields(source: str) -> tuple[dict[str, int], int]:
    counts = dict.fromkeys(KINDS, 0)
    yields = 0
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and _called_name(node) in PRIMITIVES:
            counts[PRIMITIVES[_called_name(node)]] += 1
        elif isinstance(node, ast.Await | ast.AsyncWith | ast.AsyncFor):
            yields += 1
    return counts, yields


def count_frontend(frontend: str, package: Path = PACKAGE) -> SourceCount:
    files = SOURCES[frontend]
    texts = [(package / name).read_text() for name in files]
    primitives = dict.fromkeys(KINDS, 0)
    yields = 0
    for text in texts:
        found, awaited = primitives_and_yields(text)
        yields += awaited
        for kind, calls in found.items():
            primitives[kind] += calls
    return SourceCount(
        frontend=frontend,
        files=tuple(f"crawler/{name}" for name in files),
        frontend_lines=code_lines(texts[0]),
        lines=sum(code_lines(text) for text in texts),
        primitives=primitives,
        yield_points=yields,
    )


def count_all(package: Path = PACKAGE) -> list[SourceCount]:
    return [count_frontend(frontend, package) for frontend in SOURCES]


def shared_lines(package: Path = PACKAGE) -> int:
    return code_lines((package / SHARED).read_text())
