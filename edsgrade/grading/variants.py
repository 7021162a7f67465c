"""Variant data: grade a submission on a hidden draw of its lab's dataset.

A master notebook may list hidden seeds of its dataset generator in its metadata::

    "edsgrade": {"dataset": "river", "seed": 2025, "variants": [7141, 90210, 31337]}

Students see the draw of ``seed`` only; the build generates each hidden draw into
``build/A/variants/SEED/data`` and runs the master on it once (cached there with its reference
values); the grader runs every submission on one hidden draw (chosen per student, stably) and
``ref`` then holds the reference solution's values *on that draw*. A hard-coded answer, copied
from the student's own run, fails; a general one passes. The seeds are removed from the release.

This is the read side: which draw a submission gets, and its data and reference values as the build
wrote them (:mod:`edsgrade.build.variants` writes the hidden draws; the students' own draw is read by
:meth:`edsgrade.course.Assignment.reference`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edsgrade.authoring.master import Master, master_digest
from edsgrade.course import HIDDEN_DIR, REF_FILE, VARIANTS_DIR, Assignment, Course, CourseError


def hidden_folder(course: Course, master: Master) -> Path | None:
    """``build/A/hidden`` when the build wrote hidden files for the students' draw, else ``None``."""
    folder = course.build_dir(master.assignment) / HIDDEN_DIR
    return folder if folder.is_dir() else None


@dataclass
class Variant:
    """The data a submission runs on and the reference values that go with it."""

    seed: int | None
    hidden: bool
    data: Path | None  # replaces the release's data/ when set
    refs: dict[str, dict[str, Any]]
    hidden_data: Path | None = None  # the draw's instructor-only files (``hidden`` case parameter)


def variant_seeds(master: Master) -> list[int]:
    """The hidden seeds a master asks for (metadata ``edsgrade.variants``)."""
    seeds = master.settings.get("variants") or []
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
        raise CourseError(f"{master.path}: metadata edsgrade.variants must be a list of integer seeds")
    if seeds and not master.settings.get("dataset"):
        raise CourseError(f"{master.path}: edsgrade.variants needs edsgrade.dataset (the generator to draw from)")
    return seeds


def seed_for(assignment: str, student: str, seeds: list[int]) -> int:
    """The hidden seed a student's submission is graded on: stable, and spread over ``seeds``."""
    digest = hashlib.sha256(f"{assignment}/{student}".encode()).hexdigest()
    return seeds[int(digest, 16) % len(seeds)]


class Variants:
    """Which data and reference values each student's submission is graded with."""

    def __init__(self, course: Course, master: Master) -> None:
        self.course, self.master = course, master
        self.seeds = variant_seeds(master)
        self.base = Assignment(course, master.assignment, master).reference()
        self._cache: dict[int, Variant] = {}

    def for_student(self, student: str) -> Variant:
        if not self.seeds:
            return Variant(None, False, None, self.base, hidden_folder(self.course, self.master))
        seed = seed_for(self.master.assignment, student, self.seeds)
        if seed not in self._cache:
            self._cache[seed] = self._load(seed)
        return self._cache[seed]

    def _load(self, seed: int) -> Variant:
        folder = self.course.build_dir(self.master.assignment) / VARIANTS_DIR / str(seed)
        path = folder / REF_FILE
        if not path.is_file() or json.loads(path.read_text()).get("master") != master_digest(self.master):
            raise CourseError(f"the hidden draw {seed} of {self.master.assignment} is not built (or is older than "
                              f"the master): run `edsgrade build {self.master.assignment}`")
        hidden = folder / HIDDEN_DIR
        return Variant(seed, True, folder / "data", json.loads(path.read_text())["values"],
                       hidden if hidden.is_dir() else None)
