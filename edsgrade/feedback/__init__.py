"""Feedback for students: one HTML page per student and assignment in ``feedback/S/A/``.

Each autograded question shows points earned / possible and its cases; public cases show their
failure messages, hidden cases show their name and points only (never their code or message).
Questions graded by hand (rubric criteria) show the grader's points and comment once entered in
the gradebook, and the page ends with the final grade: both parts combined as
:mod:`edsgrade.grades.final` says, with the late penalty if any.
Everything on the page that a submission controls (messages, notes, case messages) is escaped by
Jinja's autoescape, and the page shows no student output. It needs no script, so it carries a
Content-Security-Policy (:data:`CSP`) that forbids scripts, frames, forms, plug-ins and any request
out of the page: should an escaping bug ever let markup through, a browser still runs nothing.
The page is named after the notebook (``feedback/S/A/A.html``) as nbgrader's
``release_feedback`` expects.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from nbgrader.api import MissingEntry

from edsgrade.course import Course, CourseError
from edsgrade.grading.autograde import SubmissionResult, read_result
from edsgrade.grades.final import FinalGrade, final_grades
from edsgrade.authoring.master import Master

#: The feedback page's Content-Security-Policy: its own inline style sheet and data: images, nothing else.
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'none'; object-src 'none'; "
       "frame-src 'none'; base-uri 'none'; form-action 'none'")

_ENV = Environment(loader=PackageLoader("edsgrade.feedback", "templates"), autoescape=select_autoescape(["html", "j2"]))


@dataclass
class ManualGrade:
    grade_id: str
    max_points: float
    score: float | None
    comment: str


def manual_grades(course: Course, master: Master, student: str) -> list[ManualGrade]:
    """Points and comments entered by hand (formgrader or the gradebook API) for ``student``."""
    out: list[ManualGrade] = []
    with course.gradebook() as gb:
        for m in master.manual:
            try:
                grade = gb.find_grade(m.grade_id, master.name, master.assignment, student)
                score = grade.manual_score
            except MissingEntry:
                score = None
            try:
                comment = gb.find_comment(m.grade_id, master.name, master.assignment, student).manual_comment or ""
            except MissingEntry:
                comment = ""
            out.append(ManualGrade(m.grade_id, m.points, score, comment))
    return out


def render(result: SubmissionResult, manual: list[ManualGrade], final: FinalGrade | None = None) -> str:
    """The feedback page of one graded submission (with its final grade when ``final`` is given)."""
    graded = [m for m in manual if m.score is not None]
    summary = (f"{sum(m.score or 0 for m in graded):g} / {sum(m.max_points for m in manual):g} points"
               if len(graded) == len(manual) else f"{len(graded)} of {len(manual)} graded so far")
    return _ENV.get_template("feedback.html.j2").render(
        assignment=result.assignment, student=result.student, timestamp=result.timestamp,
        score=result.score, max_score=result.max_score, message=result.message, notes=result.notes,
        questions=result.questions, manual=manual, manual_summary=summary,
        problems=result.execution.get("described", []), final=final, csp=CSP)


def write_feedback(course: Course, assignment: str, students: list[str] | None = None) -> list[Path]:
    """Write the feedback of every graded submission of ``assignment`` (or of ``students``)."""
    master = course.assignment(assignment).master
    written: list[Path] = []
    finals = {f.student: f for f in final_grades(course, assignment)}
    for student in students or course.submitted_students(assignment):
        result = read_result(course, student, assignment)
        if result is None:
            if students:
                raise CourseError(f"{student}'s submission of {assignment} is not graded: run `edsgrade grade {assignment}`.")
            continue
        folder = course.feedback_dir(student, assignment)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{master.name}.html"
        path.write_text(render(result, manual_grades(course, master, student), finals.get(student)), encoding="utf-8")
        written.append(path)
    return written
