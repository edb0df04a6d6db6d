"""Record writers for exports: JSON lines, CSV, or one JSON array written as it streams."""

from __future__ import annotations

import csv
import json
from typing import Any, TextIO


class JsonLines:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def record(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record, ensure_ascii=False) + "\n")

    def close(self) -> None:
        pass


class JsonArray:
    """One JSON array, written a record at a time: never held whole in memory."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.first = True
        out.write("[")

    def record(self, record: dict[str, Any]) -> None:
        self.out.write(("\n" if self.first else ",\n") + json.dumps(record, ensure_ascii=False))
        self.first = False

    def close(self) -> None:
        self.out.write("\n]\n" if not self.first else "]\n")


class Csv:
    def __init__(self, out: TextIO, fields: tuple[str, ...]) -> None:
        self.writer = csv.DictWriter(out, fieldnames=fields)
        self.writer.writeheader()

    def record(self, record: dict[str, Any]) -> None:
        self.writer.writerow(record)

    def close(self) -> None:
        pass


def writer_for(format: str, out: TextIO, fields: tuple[str, ...]) -> JsonLines | JsonArray | Csv:
    if format == "csv":
        return Csv(out, fields)
    return JsonArray(out) if format == "json" else JsonLines(out)
