"""Autograde collected submissions: working copy -> sandboxed run -> judge -> autograded/ + gradebook.

``submitted/`` is only read. Each submission runs in a throw-away copy made of the release's
files (data, public checks) with the student's files on top, in a sandbox
(:mod:`edsgrade.grading.sandbox.confinement`), several at a time (:mod:`edsgrade.grading.backends`). Whatever a
submission does, it ends with a recorded :class:`SubmissionResult`: a score per question, or a
clear error (invalid notebook, timeout, crash). A journal (:mod:`edsgrade.grading.journal`) makes
a killed run resumable: running the same command again grades only what is left.
"""
from __future__ import annotations

import json
import logging
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from edsgrade.course import Course, CourseError
from edsgrade.grading.backends import default_workers, run_dask, run_local
from edsgrade.grading.engine import RESULT_FILE, GradingOptions, SubmissionResult, read_result
from edsgrade.grading.journal import Journal, submission_digest

log = logging.getLogger("edsgrade")
__all__ = ["GradingRun", "SubmissionResult", "grade_run", "read_result", "RESULT_FILE"]


def _check_built(course: Course, assignment: str) -> None:
    from nbgrader.api import MissingEntry

    if not course.release_dir(assignment).is_dir():
        raise CourseError(f"{course.release_dir(assignment)} is missing: run `edsgrade build {assignment}` first.")
    with course.gradebook() as gb:
        try:
            gb.find_assignment(assignment)
        except MissingEntry:
            raise CourseError(f"{assignment} is not in the gradebook {course.db_url}: "
                              f"run `edsgrade build {assignment}` to record it.") from None


@dataclass
class GradingRun:
    """What one ``grade`` command did: results in the order asked, and its times."""

    results: list[SubmissionResult]
    graded: list[str] = field(default_factory=list)  # graded by this run
    skipped: list[str] = field(default_factory=list)  # already graded (journal), not graded again
    workers: int = 1
    backend: str = "local"
    wall: float = 0.0

    def summary(self) -> str:
        done = [r for r in self.results if r.student in set(self.graded)]
        text = f"graded {len(done)} submission(s) in {self.wall:.1f} s ({self.backend}, {self.workers} worker(s))"
        if done:
            times = [r.seconds for r in done]
            cells = [r.execution.get("seconds", 0.0) for r in done]
            text += (f"; per submission: median {statistics.median(times):.2f} s, max {max(times):.2f} s, "
                     f"of which the notebooks' own cells took a median {statistics.median(cells):.2f} s")
        if self.skipped:
            text += (f"; {len(self.skipped)} already graded and unchanged, not graded again "
                     "(use --force to regrade them)")
        return text


def grade_run(course: Course, assignment: str, students: Iterable[str] | None = None, *,
              on_result: Callable[[SubmissionResult], None] | None = None, progress: bool = True,
              force: bool = False, workers: int | None = None, backend: str = "local",
              scheduler: str | None = None, **overrides: Any) -> GradingRun:
    """Grade the collected submissions of ``assignment`` (all, or ``students``) and record them.

    Already graded, unchanged submissions are skipped (their recorded results are returned)
    unless ``force``. ``overrides`` (``cell_timeout``, ``timeout``, ``memory``...) come on top of
    the course's and the master's settings. Scores go to nbgrader's gradebook as each submission
    finishes, one transaction each. Returns a :class:`GradingRun` (results in the order asked, what was
    skipped, times).
    """
    from edsgrade.gradebook.store import record
    from edsgrade.grading.variants import Variants

    start = time.monotonic()
    master = course.assignment(assignment).master
    Variants(course, master)  # errors now if the build is missing or older than the master
    _check_built(course, assignment)
    available = course.submitted_students(assignment)
    wanted = list(dict.fromkeys(students)) if students else available
    unknown = [s for s in wanted if s not in available]
    if unknown:
        raise CourseError(f"no collected submission of {assignment} for {', '.join(unknown)} "
                          f"(collected: {', '.join(available) or 'none'}); run `edsgrade collect {assignment}` first.")
    if backend not in ("local", "dask"):
        raise CourseError(f"unknown backend {backend!r}: use 'local' or 'dask'")
    if backend == "dask" and not scheduler:
        raise CourseError("the dask backend needs --scheduler tcp://HOST:PORT (the address of a running scheduler)")
    options = GradingOptions.resolve(course, master, **overrides)
    options.confine()  # errors now if the sandbox is required but impossible
    journal = Journal(course, assignment, json.dumps(options.to_dict(), sort_keys=True))
    digests = {s: submission_digest(course, s, assignment) for s in wanted}
    todo = [s for s in wanted if force or not journal.is_done(s, digests[s]) or read_result(course, s, assignment) is None]
    skipped = [s for s in wanted if s not in todo]
    n_workers = default_workers(workers or course.grader.workers)
    results: dict[str, SubmissionResult] = {s: r for s in skipped if (r := read_result(course, s, assignment))}

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("grading {task.description}", markup=False),  # names and scores are plain text
                BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, disable=not progress or not todo, transient=False) as bar:
        task = bar.add_task(assignment, total=len(todo))

        def on_done(result: SubmissionResult) -> None:
            record(course, master, result)
            journal.mark(result.student, digests[result.student], result.score)
            results[result.student] = result
            bar.update(task, advance=1, description=f"{assignment} [{result.student}: {result.score:g}]")
            if on_result:
                on_result(result)

        if backend == "dask":
            run_dask(course, assignment, todo, options, scheduler or "", on_done)
        else:
            run_local(course, assignment, todo, options, n_workers, on_done)
    return GradingRun([results[s] for s in wanted if s in results], todo, skipped, n_workers, backend,
                      time.monotonic() - start)
