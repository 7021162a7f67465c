"""Grading on the course hub: the grading engine runs as root on the course directory, then the
course goes back to the grader account and the feedback is made releasable.

The instructor releases and collects in the formgrader (or its REST API); an administrator runs
``sudo edsgrade hub-grade A`` (grade + feedback pages); the instructor then clicks "release feedback"
in the formgrader (nbgrader's ``release_feedback``), and students click "Fetch feedback" in their
assignment list.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edsgrade.course import Course
from edsgrade.feedback import write_feedback
from edsgrade.grading.autograde import SubmissionResult, grade_run
from edsgrade.exchange.safecopy import UnsafeFile, read_regular
from edsgrade.hub import system
from edsgrade.hub.settings import HubSettings

#: files of a collected submission that nbgrader's ``release_feedback`` reads beside the feedback page
SUBMISSION_KEYS = ("timestamp.txt", "submission_secret.txt")
#: the largest of those files copied (a timestamp, a 128-character secret)
MAX_KEY_BYTES = 4096


@dataclass
class HubGradingReport:
    results: list[SubmissionResult]
    feedback: list[Path]


def make_releasable(course: Course, assignment: str, students: list[str]) -> None:
    """Copy each submission's timestamp and secret beside its feedback page: nbgrader's
    ``release_feedback`` names the released page after them, so only that student finds it.

    Run as root on files that came from a student: each is read as a regular file of a few bytes,
    never through a link (a link there would otherwise copy what it points at into the feedback)."""
    for student in students:
        for name in SUBMISSION_KEYS:
            src = course.submitted_dir(student, assignment) / name
            try:
                data = read_regular(src, MAX_KEY_BYTES, verb="released")
            except FileNotFoundError:
                continue
            except UnsafeFile:
                continue  # no key: nbgrader releases no page for it, and the collect log says why
            dest = course.feedback_dir(student, assignment) / name
            dest.unlink(missing_ok=True)
            dest.write_bytes(data)


def grade_on_hub(settings: HubSettings, assignment: str, students: list[str] | None = None,
                 **limits) -> HubGradingReport:
    """Grade the collected submissions of ``assignment`` on the hub's course directory, write the
    feedback pages, and give the course directory back to the grader account (run as root)."""
    system.require_root()
    course = Course(settings.course_dir)
    try:
        results = grade_run(course, assignment, students, progress=False, **limits).results
        graded = [r.student for r in results]
        pages = write_feedback(course, assignment, graded) if graded else []
        make_releasable(course, assignment, graded)
    finally:
        system.own_course(settings)
    return HubGradingReport(results, pages)
