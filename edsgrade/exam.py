"""Exam day: open an assignment for a timed session, extend it for a student, close it.

``open_exam`` builds the assignment if needed, stores the deadline (start + duration) in nbgrader's
gradebook (``Assignment.duedate``) and releases it; ``extend`` gives a student extra time (nbgrader's
``SubmittedAssignment.extension``); ``close_exam`` collects the submissions and
reports, for each one, its time and how late it came. Lateness is nbgrader's own: the gradebook's
``SubmittedAssignment.total_seconds_late`` (submission timestamp minus due date, extension
included), and the penalty comes from nbgrader's configured late-submission plugin
(``c.AssignLatePenalties.plugin_class``, :class:`~edsgrade.gradebook.late.LatePenalty` in this course,
configured as ``edsgrade.exam.LatePenalty``); it is applied to
the final grade (:mod:`edsgrade.grades.final`).

Settings (``nbgrader_config.py``), overridden per assignment by ``c.Exam.assignments`` and by the
master notebook's metadata ``"edsgrade": {"exam": {"auto_share": 0.4, "duration_minutes": 240}}``::

    c.Exam.auto_share = 0.4          # share of the automatic part in the final grade
    c.Exam.duration_minutes = 240    # length of the exam
"""
from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from dateutil import parser as dateparser
from dateutil import tz as datetz

from edsgrade.config import configurable
from edsgrade.course import Assignment, Course, CourseError
from edsgrade.authoring.master import Master
# the late-submission policy lives with the gradebook it writes to; nbgrader configs name it
# ``edsgrade.exam.LatePenalty`` (c.AssignLatePenalties.plugin_class), so that dotted name is kept here
from edsgrade.gradebook.late import LatePenalty, describe_policy, late_plugin, minutes_text  # noqa: F401
from edsgrade.grades.final import exam_settings

log = logging.getLogger("edsgrade")


class ExamError(CourseError):
    """An exam-day step cannot be done; the message says why and what to do."""


Exam = configurable("Exam", __name__, """Exam settings (``c.Exam.*``); ``c.Exam.assignments[A]`` and a master's
    ``edsgrade.exam`` metadata override them. Traits from the one schema (:data:`edsgrade.config.SCHEMA`).""")


# ---- opening and closing -------------------------------------------------------------------------

def _timezone(course: Course) -> dt.tzinfo:
    name = str(course.config.Exchange.get("timezone", "UTC"))
    zone = datetz.gettz(name)
    if zone is None:
        raise ExamError(f"c.Exchange.timezone = {name!r} is not a known time zone")
    return zone


def parse_time(course: Course, text: str | dt.datetime) -> dt.datetime:
    """A naive UTC datetime (the gradebook's convention) from ``text`` ("2026-06-12 09:00", ISO 8601).

    A time without a zone is read in the course's time zone (``c.Exchange.timezone``, UTC by default).
    """
    if isinstance(text, dt.datetime):
        value = text
    else:
        try:
            value = dateparser.parse(text)
        except (ValueError, OverflowError) as exc:
            raise ExamError(f"cannot read the time {text!r}: write it as 2026-06-12 09:00 "
                            "(or ISO 8601, e.g. 2026-06-12T09:00+02:00)") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=_timezone(course))
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def show_time(course: Course, value: dt.datetime) -> str:
    """A gradebook time (naive UTC) in the course's time zone, to the second."""
    local = value.replace(tzinfo=dt.timezone.utc).astimezone(_timezone(course))
    return local.strftime("%Y-%m-%d %H:%M:%S %Z")


@dataclass
class ExamSession:
    """An opened exam: when it started, its deadline, and what was released."""

    assignment: str
    start: dt.datetime  # naive UTC
    deadline: dt.datetime  # naive UTC
    duration_minutes: float
    built: bool  # built by this command
    release: Path


def _needs_build(course: Course, master: Master) -> bool:
    if not course.release_dir(master.assignment).is_dir():
        return True
    try:
        Assignment(course, master.assignment, master).reference()
    except CourseError:
        return True  # never built, or the master changed since
    return False


def deadline(course: Course, assignment: str) -> dt.datetime | None:
    """The due date stored in the gradebook for ``assignment`` (naive UTC), or None."""
    from nbgrader.api import MissingEntry

    with course.gradebook() as gb:
        try:
            return gb.find_assignment(assignment).duedate
        except MissingEntry:
            return None


def open_exam(course: Course, assignment: str, *, start: str | dt.datetime | None = None,
              duration_minutes: float | None = None, echo: Callable[[str], Any] = log.info) -> ExamSession:
    """Open ``assignment`` as a timed exam: build it if needed, store the deadline, release it.

    ``start`` (default: now) and ``duration_minutes`` (default: the exam's settings) give the
    deadline, stored as nbgrader's ``Assignment.duedate``; students can fetch at once.
    """
    from edsgrade.exchange import release

    master = course.assignment(assignment).master
    settings = exam_settings(course, master)
    minutes = settings.duration_minutes if duration_minutes is None else float(duration_minutes)
    if not minutes > 0:
        raise ExamError(f"the duration must be a positive number of minutes, not {duration_minutes!r}")
    begin = utcnow() if start is None else parse_time(course, start)
    built = _needs_build(course, master)
    if built:
        from edsgrade.build.release import build

        echo(f"[{assignment}] not built (or changed since its build): building it")
        build(course, assignment, echo=echo)
    due = begin + dt.timedelta(minutes=minutes)
    with course.gradebook() as gb:
        gb.update_or_create_assignment(assignment, duedate=due)
    path = release(course, assignment)
    return ExamSession(assignment, begin, due, minutes, built, path)


def extend(course: Course, assignment: str, student: str, minutes: float) -> dt.datetime:
    """Give ``student`` ``minutes`` more for ``assignment`` (e.g. a third more time for a student
    entitled to it); return the student's own deadline.

    Stored as nbgrader's ``SubmittedAssignment.extension``, which nbgrader's lateness (and so the
    late penalty) takes into account; 0 removes the extension. Can be given before the student
    hands anything in.
    """
    import warnings

    from nbgrader.api import MissingEntry

    if not math.isfinite(minutes) or minutes < 0:
        raise ExamError(f"an extension is a number of minutes >= 0, not {minutes:g}")
    due = deadline(course, assignment)
    if due is None:
        raise ExamError(f"{assignment} has no deadline to extend: open it first with `edsgrade exam open {assignment}`.")
    with course.gradebook() as gb:
        gb.update_or_create_student(student)
        try:
            submission = gb.find_submission(assignment, student)
        except MissingEntry:
            with warnings.catch_warnings():  # nbgrader's add_submission trips a harmless SQLAlchemy warning
                warnings.simplefilter("ignore")
                submission = gb.add_submission(assignment, student)
        submission.extension = dt.timedelta(minutes=minutes) if minutes else None
        gb.db.commit()
    return due + dt.timedelta(minutes=minutes)


def extensions(course: Course, assignment: str) -> dict[str, dt.timedelta]:
    """The extensions given for ``assignment``, by student."""
    from nbgrader.api import MissingEntry

    with course.gradebook() as gb:
        try:
            subs = gb.assignment_submissions(assignment)
        except MissingEntry:
            return {}
        return {s.student.id: s.extension for s in subs if s.extension}


@dataclass
class Arrival:
    """One collected submission: when it arrived and how late."""

    student: str
    timestamp: dt.datetime | None  # naive UTC
    seconds_late: float
    extension: dt.timedelta | None = None
    problem: str = ""  # why the submission is undated, when it is (its own result: the others go on)

    @property
    def late(self) -> bool:
        return self.seconds_late > 0


@dataclass
class CloseReport:
    """What ``close_exam`` collected."""

    assignment: str
    deadline: dt.datetime
    arrivals: list[Arrival] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # students of the gradebook's roster with no submission
    policy: str = ""

    @property
    def late(self) -> list[Arrival]:
        return [a for a in self.arrivals if a.late]


def submission_time(course: Course, student: str, assignment: str) -> dt.datetime | None:
    """The collected submission's time (``submitted/S/A/timestamp.txt``), naive UTC; ``None`` if undated.

    The collect writes that file with the exchange's own time of the submission (the latest inode
    change time of its folder and files, see :mod:`edsgrade.exchange.safe`), never the time the
    student wrote. The file is read without following a link, and a time that cannot be read
    (a submission collected another way) makes that submission undated, never the class's failure.
    """
    from edsgrade.exchange.safe import read_small, read_time

    text = read_small(course.submitted_dir(student, assignment) / "timestamp.txt")
    return read_time(text) if text and text.strip() else None


def close_exam(course: Course, assignment: str, *, force: bool = False,
               now: dt.datetime | None = None) -> CloseReport:
    """Collect ``assignment`` after its deadline and say who handed in, when, and how late.

    Refuses before the deadline unless ``force`` (students may still be working). It can be run
    again: a submission that arrives later is collected and flagged late.
    """
    from edsgrade.exchange import collect

    course.master_path(assignment)  # errors (listing the assignments) if there is no such assignment
    due = deadline(course, assignment)
    if due is None:
        raise ExamError(f"{assignment} has no deadline in the gradebook: open it with "
                        f"`edsgrade exam open {assignment}` (it stores start + duration).")
    current = now or utcnow()
    if current < due and not force:
        raise ExamError(f"the deadline of {assignment} is {show_time(course, due)}, in "
                        f"{minutes_text((due - current).total_seconds())}: students may still be working. "
                        "Wait, or use --force to collect now.")
    collect(course, assignment)
    report = CloseReport(assignment, due, policy=describe_policy(late_plugin(course)))
    students = course.submitted_students(assignment)
    extra = extensions(course, assignment)
    for student in students:
        stamp = submission_time(course, student, assignment)
        own = due + extra.get(student, dt.timedelta(0))
        late = max(0.0, (stamp - own).total_seconds()) if stamp is not None else 0.0
        problem = "" if stamp is not None else ("its time could not be read: check submitted/"
                                                f"{student}/{assignment}/collect.json and collect again")
        report.arrivals.append(Arrival(student, stamp, late, extra.get(student), problem))
    with course.gradebook() as gb:
        report.missing = sorted(s.id for s in gb.students if s.id not in set(students))
    return report
