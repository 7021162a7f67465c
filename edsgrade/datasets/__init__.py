"""Dataset generators, one per lab: seeded, deterministic, physical (see each module's docstring).

A generator is a function ``generate(dest: Path, seed: int) -> list[Path]`` that writes the lab's
files into the directory ``dest`` (created if needed) and returns the paths it wrote. The same
seed always gives byte-identical files; another seed gives another draw of the same model, which
the grader can use to re-run a submission on data it has never seen.

A generator module may also define ``generate_hidden(dest: Path, seed: int) -> list[Path]``: the
instructor-only files of the same draw (the labels of a test set, an audit set). The build writes
them into ``build/A/hidden/`` (never into ``source/`` or ``release/``), and hidden test cases read
them through their ``hidden`` parameter (:mod:`edsgrade.grading.context`).
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
    "welllogs": "edsgrade.datasets.welllogs",
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


def generate_hidden(name: str, dest: Path | str, seed: int) -> list[Path]:
    """Write the instructor-only files of dataset ``name`` (draw ``seed``) into ``dest``; [] if it has none."""
    get_generator(name)  # the same error for an unknown name
    module = import_module(REGISTRY[name])
    hidden = getattr(module, "generate_hidden", None)
    if hidden is None:
        return []
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    return hidden(dest, seed)
