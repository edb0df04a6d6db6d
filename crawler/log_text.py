"""Small pieces of the sentences the crawler logs, kept out of the modules that log them."""

from __future__ import annotations

from dataclasses import fields
from typing import Any


def changed_settings(settings: Any) -> str:
    """`name=value` of each field of a settings dataclass that is not its default, so a run's
    first log line says how this crawl differs from a plain one."""
    changed = [
        f"{f.name}={value!r}"
        for f in fields(settings)
        if (value := getattr(settings, f.name)) != f.default
    ]
    return ", ".join(changed) or "none"


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ... 11th, 12th, 13th, 21st."""
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return str(n) + {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
