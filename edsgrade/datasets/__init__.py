"""Dataset generators, one per lab: seeded, deterministic, physical (see each module's docstring).

A generator is a function ``generate(dest: Path, seed: int) -> list[Path]`` that writes the lab's
files into the directory ``dest`` (created if needed) and returns the paths it wrote. The same
seed always gives byte-identical files; another seed gives another draw of the same model, which
the grader can use to re-run a submission on data it has never seen.
"""
from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Callable

#: dataset name (as written in a master notebook's ``edsgrade.dataset`` metadata) -> module
REGISTRY: dict[str, str] = {
    "river": "edsgrade.datasets.river",
    "volcano": "edsgrade.datasets.volcano",
    "location": "edsgrade.datasets.location",
    "lidar": "edsgrade.datasets.lidar",
    "deeplearning": "edsgrade.datasets.deeplearning",
}

Generator = Callable[[Path, int], list[Path]]


def get_generator(name: str) -> Generator:
    """Return the generator registered as ``name``; the error lists the known ones."""
    if name not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise KeyError(f"unknown dataset {name!r}; known datasets: {known}. "
                       "Fix the master notebook's metadata 'edsgrade.dataset'.")
    return import_module(REGISTRY[name]).generate


def generate(name: str, dest: Path | str, seed: int) -> list[Path]:
    """Generate dataset ``name`` with ``seed`` into ``dest`` and return the files written."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    return get_generator(name)(dest, seed)
