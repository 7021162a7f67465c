"""Rubric grading: points and comments of the manually graded cells, in nbgrader's gradebook.

Each rubric criterion is a manually graded cell of the master (markdown, ``grade: true``,
``solution: true``, with points) whose ``grade_id`` is the criterion's name, e.g. ``reasoning``;
its text in the master is the mark scheme (nbgrader releases "YOUR ANSWER HERE" in its place).
Points go to the cell's ``Grade.manual_score`` and comments to its ``Comment.manual_comment``,
exactly where nbgrader's formgrader puts them: a grader can use either, and both see the same.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from nbgrader.api import MissingEntry

from edsgrade.course import Course, CourseError
from edsgrade.gradebook.late import late_plugin, store_late_penalty
from edsgrade.authoring.master import Master, mark_scheme


class RubricError(CourseError):
    """A rubric entry is refused; the message lists what is valid."""


@dataclass
class Criterion:
    """A rubric criterion of an assignment: its name, maximum points and mark scheme."""

    name: str
    max_points: float
    scheme: str


@dataclass
class RubricEntry:
    """A criterion's state for one student."""

    criterion: str
    max_points: float
    points: float | None  # None: not marked yet
    comment: str


def criteria(master: Master) -> list[Criterion]:
    """The manually graded cells of ``master``, in notebook order, with their mark schemes."""
    return [Criterion(m.grade_id, m.points, mark_scheme(master.notebook.cells[m.cell_index].source, master.delimiters))
            for m in master.manual]


def _listing(items: list[Criterion]) -> str:
    return ", ".join(f"{c.name} (0-{c.max_points:g} pt)" for c in items) or "none"


def _criterion(master: Master, name: str) -> Criterion:
    items = criteria(master)
    for c in items:
        if c.name == name:
            return c
    auto = [q.grade_id for q in master.questions]
    why = f"{name!r} is graded automatically" if name in auto else f"no criterion {name!r}"
    raise RubricError(f"{why} in {master.assignment}; its criteria graded by hand are: {_listing(items)}")


def _check_student(course: Course, gb, assignment: str, student: str) -> None:
    try:
        if gb.find_submission(assignment, student).timestamp is not None:
            return
    except MissingEntry:
        pass
    graded = sorted(s.student.id for s in _submissions(gb, assignment))
    if student in course.submitted_students(assignment):
        raise RubricError(f"{student}'s submission of {assignment} is collected but not graded yet: run "
                          f"`edsgrade grade {assignment} --student {student}` first.")
    raise RubricError(f"no graded submission of {assignment} by {student!r}; students: "
                      f"{', '.join(graded) or 'none (grade the submissions first)'}")


def _submissions(gb, assignment: str) -> list:
    """Graded submissions (an entry made for an extension has no timestamp until graded)."""
    try:
        return [s for s in gb.assignment_submissions(assignment) if s.timestamp is not None]
    except MissingEntry:
        return []


def _entry(gb, master: Master, c: Criterion, student: str) -> RubricEntry:
    grade = gb.find_grade(c.name, master.name, master.assignment, student)
    try:
        comment = gb.find_comment(c.name, master.name, master.assignment, student).manual_comment or ""
    except MissingEntry:
        comment = ""
    points = None if grade.manual_score is None else float(grade.manual_score)
    return RubricEntry(c.name, c.max_points, points, comment)


def rubric_state(course: Course, assignment: str, student: str) -> list[RubricEntry]:
    """Every criterion of ``assignment`` for ``student``: points (None if not marked) and comment."""
    master = course.assignment(assignment).master
    with course.gradebook() as gb:
        _check_student(course, gb, assignment, student)
        return [_entry(gb, master, c, student) for c in criteria(master)]


def rubric_overview(course: Course, assignment: str) -> dict[str, list[RubricEntry]]:
    """Every graded student's rubric of ``assignment``, by student."""
    master = course.assignment(assignment).master
    with course.gradebook() as gb:
        students = sorted(s.student.id for s in _submissions(gb, assignment))
        return {s: [_entry(gb, master, c, s) for c in criteria(master)] for s in students}


def set_criterion(course: Course, assignment: str, student: str, criterion: str, *,
                  points: float | None = None, comment: str | None = None) -> RubricEntry:
    """Give ``student`` ``points`` and/or a ``comment`` on ``criterion`` of ``assignment``.

    Refuses an unknown student or criterion, and points outside [0, the criterion's maximum],
    with an error listing the valid ones. Returns the criterion's new state.
    """
    master = course.assignment(assignment).master
    c = _criterion(master, criterion)
    if points is None and comment is None:
        raise RubricError(f"nothing to record for {criterion}: give --points (0-{c.max_points:g}) and/or --comment")
    if points is not None and (not math.isfinite(points) or not 0 <= points <= c.max_points):
        raise RubricError(f"{criterion} is marked from 0 to {c.max_points:g} points, not {points:g}")
    with course.gradebook() as gb:
        _check_student(course, gb, assignment, student)
        try:
            if points is not None:
                grade = gb.find_grade(c.name, master.name, assignment, student)
                grade.manual_score = float(points)
                grade.needs_manual_grade = False
            if comment is not None:
                gb.find_comment(c.name, master.name, assignment, student).manual_comment = comment
            gb.db.flush()
            store_late_penalty(gb.find_submission(assignment, student), late_plugin(course))
            gb.db.commit()
        except Exception:
            gb.db.rollback()
            raise
        return _entry(gb, master, c, student)
