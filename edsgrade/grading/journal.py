"""The grading journal: which submissions are graded, so that a killed run resumes where it stopped.

One JSON line per finished submission in ``build/A/journal.jsonl``, appended and flushed to disk
only after the submission's ``autograded/`` folder was swapped in and its scores committed to the
gradebook. A submission is *done* when the journal has a line for the same collected notebook
(its digest) graded against the same build (the reference digest); anything else is graded (again).
A line half-written by a kill is ignored; changing the grading settings (limits) regrades. Regrading is idempotent (the folder is replaced in one
rename, the gradebook scores are set in one transaction), so a submission interrupted between
those steps and the journal line is simply graded again: one consistent result each.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

from edsgrade.course import REF_FILE, VARIANTS_DIR, Course

JOURNAL_FILE = "journal.jsonl"


def submission_digest(course: Course, student: str, assignment: str) -> str:
    """A digest of a collected submission: its files' names and contents (``timestamp.txt`` included),
    read as the working copy reads them (:func:`edsgrade.exchange.safecopy.digest_tree`: no link followed, no
    FIFO opened, a deep or huge tree bounded), so an odd file never stops the class's grading."""
    from edsgrade.exchange.safecopy import digest_tree

    return digest_tree(course.submitted_dir(student, assignment))


def build_digest(course: Course, assignment: str) -> str:
    """A digest of what grading depends on in the build (reference values, hidden draws)."""
    digest = hashlib.sha256()
    build = course.build_dir(assignment)
    for path in sorted([build / REF_FILE, *build.glob(f"{VARIANTS_DIR}/*/{REF_FILE}")]):
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


class Journal:
    """Append-only record of graded submissions of one assignment."""

    def __init__(self, course: Course, assignment: str, settings: str = "") -> None:
        self.path = course.build_dir(assignment) / JOURNAL_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # what the results depend on: the build, and the grading settings (limits) given as text
        self.build = hashlib.sha256((build_digest(course, assignment) + settings).encode()).hexdigest()
        self._lock = threading.Lock()
        self._done: dict[str, str] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a kill
                if entry.get("build") == self.build:
                    self._done[entry["student"]] = entry["submission"]

    def is_done(self, student: str, submission: str) -> bool:
        return self._done.get(student) == submission

    def mark(self, student: str, submission: str, score: float) -> None:
        """Record ``student``'s submission as graded (durably, before returning)."""
        line = json.dumps({"student": student, "submission": submission, "build": self.build,
                           "score": score, "at": time.strftime("%Y-%m-%dT%H:%M:%S")})
        with self._lock:
            with open(self.path, "a") as fh:
                fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            self._done[student] = submission

    @property
    def graded(self) -> dict[str, str]:
        return dict(self._done)


def path_of(course: Course, assignment: str) -> Path:
    return course.build_dir(assignment) / JOURNAL_FILE
