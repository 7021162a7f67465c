"""``edsgrade demo``: the whole course pipeline on the course's labs, with a simulated cohort.

build -> release -> each student fetches, answers (see :mod:`edsgrade.simulate.cohort`) and submits ->
collect -> grade -> feedback -> score table. Running it again starts the cohort afresh.

``rebuild=False`` (``edsgrade demo --reuse-build``) starts from the lab's current build when there is
one (its release notebook and reference values, written from the master as it is now): the rest of
the pipeline is the same. The test suite uses it so that the demo does not build again the labs that
the session's lab tests built already.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from edsgrade import exchange
from edsgrade.build.release import BuildReport, build
from edsgrade.simulate.cohort import PROFILES, write_submission
from edsgrade.course import Course, CourseError
from edsgrade.feedback import write_feedback
from edsgrade.grading.autograde import SubmissionResult, grade_run

#: the labs ``edsgrade demo`` runs, in order, when none is named
DEMO_ASSIGNMENTS: tuple[str, ...] = ("lab0-python", "lab1-calibration", "lab2-volcano", "lab3-location", "lab4-lidar",
                                     "lab5-deep-learning")
COHORT: dict[str, str] = {
    "ada": "full", "ben": "partial", "chloe": "blank", "dmitri": "raises", "eve": "never-finishes",
    "farid": "edits-test-cell", "gaia": "deletes-test-cells", "hugo": "corrupt",
}


@dataclass
class DemoReport:
    assignment: str
    results: list[SubmissionResult]
    feedback: list[Path]
    seconds: float


def is_built(course: Course, assignment: str) -> bool:
    """Whether ``assignment`` has a release and reference values built from its master as it is now.

    It does not see changes to the package's own code (a dataset generator, say): build again after those.
    """
    lab = course.assignment(assignment)
    if not (lab.release_dir / lab.master.path.name).is_file():
        return False
    try:
        lab.reference()  # refuses values built from another version of the master
    except CourseError:
        return False
    return True


def run_demo(course: Course, assignment: str, cohort: dict[str, str] | None = None,
             *, cell_timeout: int = 20, echo: Callable[[str], Any] = print, progress: bool = True,
             rebuild: bool = True) -> DemoReport:
    """Run the pipeline on ``assignment`` for ``cohort`` (student -> profile) and return what it produced.

    Parameters
    ----------
    rebuild:
        ``True`` (``make demo``): build the lab first. ``False``: reuse its current build when
        :func:`is_built` says it is up to date with the master, and build it otherwise.
    """
    start = time.monotonic()
    cohort = cohort or COHORT
    if rebuild or not is_built(course, assignment):
        report: BuildReport = build(course, assignment, echo=echo)
        echo(f"built {assignment}: {report.questions} autograded questions ({report.auto_points:g} points), "
             f"{report.manual_points:g} points graded by hand, Otter export {report.autograder_zip}")
    else:
        echo(f"{assignment} is built from its current master: reusing that build")
    exchange.release(course, assignment)
    echo(f"released {assignment} to the exchange {course.exchange_root}")
    master = course.assignment(assignment).master
    for student, profile in cohort.items():
        folder = exchange.fetch(course, assignment, student, replace=True)
        write_submission(profile, folder / master.path.name, master, folder / master.path.name)
        exchange.submit(course, assignment, student)
        echo(f"  {student:8s} fetched, answered ({PROFILES[profile][0]}) and submitted")
    collected = exchange.collect(course, assignment)
    echo(f"collected {len(collected)} submissions into {course.root / 'submitted'}")
    results = grade_run(course, assignment, list(cohort), cell_timeout=cell_timeout, progress=progress).results
    paths = write_feedback(course, assignment, list(cohort))
    return DemoReport(assignment, results, paths, time.monotonic() - start)
