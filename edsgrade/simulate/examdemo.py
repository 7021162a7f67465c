"""``edsgrade exam-demo`` (``make exam-demo``): a whole exam day on ``exam-hackathon`` with a simulated class.

open (build, deadline = start + duration in the gradebook, release) -> eleven students fetch, work
and hand in (see :mod:`edsgrade.simulate.examcohort`; one late, one within the grace period) -> close
(collect, flag the late ones) -> grade (automatic part, hidden labels on the instructor's side) ->
rubric (the simulated grader's points and comments, as ``edsgrade rubric`` enters them) ->
feedback -> final grades (automatic and rubric parts combined, late penalty applied).

The exam is simulated as if it had started ``duration + 30 min`` ago, so that it can be closed at
once; each submission is dated inside (or, for the late ones, after) the exam's window.
"""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import nbformat

from edsgrade import exchange
from edsgrade.course import Course
from edsgrade.exam import CloseReport, close_exam, exam_settings, open_exam, utcnow
from edsgrade.simulate.examcohort import CLASS, EXAM, PROFILES, RUBRIC, Candidate, make_notebook, redate_submission, rubric_comment
from edsgrade.feedback import write_feedback
from edsgrade.grading.autograde import SubmissionResult, grade_run
from edsgrade.grades.final import FinalGrade, final_grades
from edsgrade.grades.rubric import set_criterion


@dataclass
class ExamDemoReport:
    """What the simulated exam day produced."""

    assignment: str
    closed: CloseReport
    results: list[SubmissionResult]
    grades: list[FinalGrade]
    feedback: list[Path]
    seconds: float


def run_exam_demo(course: Course, classroom: dict[str, Candidate] | None = None, *, assignment: str = EXAM,
                  cell_timeout: int = 60, echo: Callable[[str], Any] = print,
                  progress: bool = True) -> ExamDemoReport:
    """Run an exam day on ``assignment`` for ``classroom`` (student -> candidate; default: the whole
    simulated class) and return what it produced. Running it again starts the exam afresh."""
    begin = time.monotonic()
    classroom = classroom or CLASS
    master = course.assignment(assignment).master
    minutes = exam_settings(course, master).duration_minutes
    start = (utcnow() - dt.timedelta(minutes=minutes + 30)).replace(microsecond=0)
    session = open_exam(course, assignment, start=start, echo=echo)
    echo(f"opened {assignment} at {session.start:%H:%M} UTC (simulated), deadline {session.deadline:%H:%M} UTC")
    release_nb = course.release_dir(assignment) / f"{assignment}.ipynb"
    released = nbformat.read(release_nb, as_version=4)
    for student, who in classroom.items():
        folder = exchange.fetch(course, assignment, student, replace=True)
        nbformat.write(make_notebook(who.profile, released, master), folder / f"{assignment}.ipynb")
        exchange.submit(course, assignment, student)
        redate_submission(course, assignment, student, session.deadline + dt.timedelta(minutes=who.minutes_after_deadline))
        when = "on time" if who.minutes_after_deadline <= 0 else f"{who.minutes_after_deadline:g} min after the deadline"
        echo(f"  {student:6s} {PROFILES[who.profile]} ({when})")
    closed = close_exam(course, assignment)
    late = ", ".join(f"{a.student} ({a.seconds_late / 60:.0f} min)" for a in closed.late) or "nobody"
    echo(f"closed: collected {len(closed.arrivals)} submissions; late: {late}; policy: {closed.policy}")
    results = grade_run(course, assignment, list(classroom), cell_timeout=cell_timeout, progress=progress).results
    for student, who in classroom.items():
        for criterion, points in zip(RUBRIC, who.marks):
            set_criterion(course, assignment, student, criterion, points=points, comment=rubric_comment(who, criterion))
    echo(f"rubric: {len(RUBRIC)} criteria marked for {len(classroom)} students")
    paths = write_feedback(course, assignment, list(classroom))
    grades = final_grades(course, assignment)
    return ExamDemoReport(assignment, closed, results, grades, paths, time.monotonic() - begin)
