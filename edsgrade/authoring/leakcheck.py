"""Refuse to release a secret: find lines of solutions or hidden tests in a folder's files."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator


@dataclass(frozen=True)
class Leak:
    """A secret line found in a released file."""

    path: Path
    line: str

    def __str__(self) -> str:
        return f"{self.path}: {self.line!r}"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)


def _lines_of(path: Path) -> Iterator[str]:
    """The text lines of a file; for a notebook, of every string in its JSON (sources, outputs)."""
    raw = path.read_bytes()
    if b"\0" in raw[:8192]:
        return  # binary data: no source line hides in it as text
    text = raw.decode("utf-8", errors="replace")
    chunks: list[str] = [text]
    if path.suffix == ".ipynb":
        try:
            # a notebook keeps each line as a JSON string, with escapes: read the strings
            chunks = list(_strings(json.loads(text)))
        except ValueError:
            pass
    for chunk in chunks:
        yield from chunk.splitlines()


def find_leaks(folder: Path, secret: set[str]) -> list[Leak]:
    """Every line of every file under ``folder`` that, stripped, is one of the ``secret`` lines."""
    leaks: list[Leak] = []
    if not secret:
        return leaks
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        seen: set[str] = set()
        for line in _lines_of(path):
            stripped = line.strip()
            if stripped in secret and stripped not in seen:
                seen.add(stripped)
                leaks.append(Leak(path, stripped))
    return leaks
