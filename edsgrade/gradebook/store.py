"""Scores in nbgrader's gradebook: written after grading, read for reports and feedback.

Autograded scores go in nbgrader's ``Grade.auto_score`` of each test cell, so ``nbgrader export``
and formgrader see exactly what edsgrade computed; manual scores (formgrader) are never touched.
A submission after the due date gets nbgrader's late penalty from the configured plugin, as
``nbgrader autograde`` would give it (the final grade's penalty is :mod:`edsgrade.grades.final`').
One submission's grades are written in one transaction.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from nbgrader.api import MissingEntry
from nbgrader.utils import parse_utc

from edsgrade.course import Course
from edsgrade.gradebook.late import late_plugin, store_late_penalty
from edsgrade.authoring.master import Master


@dataclass
class StudentGrades:
    """One student's grades for one assignment, as the gradebook holds them."""

    student: str
    scores: dict[str, float]  # grade_id -> score (manual if entered, else automatic)
    total: float
    max_total: float
    needs_manual_grade: bool


def record(course: Course, master: Master, result: Any) -> None:
    """Write ``result`` (a :class:`~edsgrade.grading.autograde.SubmissionResult`) into the gradebook."""
    assignment, notebook = master.assignment, master.name
    with course.gradebook() as gb:
        gb.update_or_create_student(result.student)
        stamp = parse_utc(result.timestamp) if result.timestamp else None
        try:
            submission = gb.find_submission(assignment, result.student)
        except MissingEntry:
            with warnings.catch_warnings():  # nbgrader's add_submission trips a harmless SQLAlchemy warning
                warnings.simplefilter("ignore")
                submission = gb.add_submission(assignment, result.student)
        try:
            submission.timestamp = stamp
            scores = {q.grade_id: q.points for q in result.questions}
            for q in master.questions:
                grade = gb.find_grade(q.grade_id, notebook, assignment, result.student)
                grade.auto_score = float(scores.get(q.grade_id, 0.0))
                grade.needs_manual_grade = False
            for m in master.manual:
                grade = gb.find_grade(m.grade_id, notebook, assignment, result.student)
                grade.needs_manual_grade = grade.manual_score is None
            gb.db.flush()
            store_late_penalty(submission, late_plugin(course))
            gb.db.commit()
        except Exception:
            gb.db.rollback()
            raise


def read_grades(course: Course, assignment: str) -> list[StudentGrades]:
    """Every graded submission of ``assignment`` in the gradebook, sorted by student."""
    rows: list[StudentGrades] = []
    with course.gradebook() as gb:
        try:
            submissions = gb.assignment_submissions(assignment)
        except MissingEntry:
            return rows
        for sub in submissions:
            if sub.timestamp is None and not any(g.auto_score is not None or g.manual_score is not None
                                                 for nb in sub.notebooks for g in nb.grades):
                continue  # made for an extension (edsgrade exam extend): nothing handed in yet
            scores: dict[str, float] = {}
            needs_manual = False
            for nb in sub.notebooks:
                for grade in nb.grades:
                    scores[grade.name] = float(grade.score or 0.0)
                    needs_manual = needs_manual or bool(grade.needs_manual_grade)
            rows.append(StudentGrades(sub.student.id, scores, float(sub.score or 0.0), float(sub.max_score or 0.0),
                                      needs_manual))
    return sorted(rows, key=lambda r: r.student)
