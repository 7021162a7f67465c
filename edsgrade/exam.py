"""Exam day: open an assignment for a timed session, close it, and the late-submission policy.

``open_exam`` builds the assignment if needed, stores the deadline (start + duration) in nbgrader's
gradebook (``Assignment.duedate``) and releases it; ``extend`` gives a student extra time (nbgrader's
``SubmittedAssignment.extension``); ``close_exam`` collects the submissions and
reports, for each one, its time and how late it came. Lateness is nbgrader's own: the gradebook's
``SubmittedAssignment.total_seconds_late`` (submission timestamp minus due date, extension
included), and the penalty comes from nbgrader's configured late-submission plugin
(``c.AssignLatePenalties.plugin_class``, :class:`LatePenalty` in this course); it is applied to
the final grade (:mod:`edsgrade.marks`).

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
from typing import Any, Callable, Optional

from dateutil import parser as dateparser
from dateutil import tz as datetz
from nbgrader.plugins import LateSubmissionPlugin
from traitlets import Enum, Float

from .config import configurable
from .course import Course, CourseError
from .master import Master, load_master

log = logging.getLogger("edsgrade")


class ExamError(CourseError):
    """An exam-day step cannot be done; the message says why and what to do."""


Exam = configurable("Exam", __name__, """Exam settings (``c.Exam.*``); ``c.Exam.assignments[A]`` and a master's
    ``edsgrade.exam`` metadata override them. Traits from the one schema (:data:`edsgrade.config.SCHEMA`).""")


@dataclass(frozen=True)
class ExamSettings:
    """An assignment's exam settings, resolved (course, course per assignment, master)."""

    is_exam: bool
    auto_share: float
    duration_minutes: float


def exam_settings(course: Course, master: Master) -> ExamSettings:
    """Resolve ``master``'s exam settings by the one rule (:meth:`Course.settings`): ``c.Exam``, then
    ``c.Exam.assignments[A]``, then the master's ``edsgrade.exam`` metadata. An assignment is an exam if either
    of the last two mentions it. A bad value raises :class:`~edsgrade.config.SettingsError`."""
    settings = course.settings(master)
    return ExamSettings(settings.is_exam, float(settings["auto_share"]), float(settings["duration_minutes"]))


# ---- the late-submission policy -----------------------------------------------------------------

class LatePenalty(LateSubmissionPlugin):
    """nbgrader's late-submission plugin with a grace period and a graduated penalty.

    Set it with ``c.AssignLatePenalties.plugin_class = "edsgrade.exam.LatePenalty"`` (nbgrader's own
    setting) and choose the method:

    - ``none``: late submissions are flagged, not penalised (nbgrader's default);
    - ``zero``: a late submission gets 0;
    - ``per_period``: ``fraction_per_period`` of the grade is lost per started ``period_minutes``
      of lateness (10 % per started 10 minutes by default), down to 0.

    Lateness up to ``grace_minutes`` is not penalised (whatever the method). The penalty is a
    fraction of ``score``, so it means the same on nbgrader's points and on the final grade.
    """

    penalty_method = Enum(("none", "zero", "per_period"), default_value="none",
                          help="'none', 'zero' or 'per_period' (see the class docstring)").tag(config=True)
    grace_minutes = Float(0.0, help="Minutes of lateness forgiven.").tag(config=True)
    period_minutes = Float(10.0, help="Length of one penalty period, in minutes (per_period).").tag(config=True)
    fraction_per_period = Float(0.1, help="Fraction of the grade lost per started period (per_period).").tag(config=True)

    def late_submission_penalty(self, student_id: str, score: float, total_seconds_late: float) -> Optional[float]:
        minutes = total_seconds_late / 60.0 - self.grace_minutes
        if minutes <= 0 or self.penalty_method == "none":
            return None
        if self.penalty_method == "zero":
            return score
        if self.period_minutes <= 0:
            raise ExamError("LatePenalty.period_minutes must be positive")
        periods = math.ceil(minutes / self.period_minutes - 1e-9)
        return min(score, max(0.0, score * self.fraction_per_period * periods))

    def describe(self) -> str:
        grace = f" after {self.grace_minutes:g} min of grace" if self.grace_minutes else ""
        if self.penalty_method == "zero":
            return f"a late submission gets 0{grace}"
        if self.penalty_method == "per_period":
            return (f"{self.fraction_per_period:.0%} of the grade lost per started {self.period_minutes:g} min "
                    f"of lateness{grace}")
        return "late submissions are flagged, not penalised"


def late_plugin(course: Course) -> LateSubmissionPlugin:
    """The late-submission plugin nbgrader's configuration names (``c.AssignLatePenalties.plugin_class``)."""
    from nbgrader.preprocessors import AssignLatePenalties

    step = AssignLatePenalties(config=course.config)
    step.init_plugin()
    return step.plugin_inst


def describe_policy(plugin: LateSubmissionPlugin) -> str:
    """One sentence describing the late policy, for reports and feedback."""
    if hasattr(plugin, "describe"):
        return plugin.describe()
    method = getattr(plugin, "penalty_method", None)
    if method == "zero":
        return "a late submission gets 0"
    if method == "none":
        return "late submissions are flagged, not penalised"
    return f"late penalty computed by {type(plugin).__name__}"


def late_penalty(plugin: LateSubmissionPlugin, student: str, grade: float, seconds_late: float) -> float:
    """The penalty ``plugin`` gives a ``grade`` (any scale) submitted ``seconds_late`` late, kept within
    [0, grade] as nbgrader's ``AssignLatePenalties`` does."""
    if seconds_late <= 0:
        return 0.0
    penalty = plugin.late_submission_penalty(student, grade, seconds_late)
    if penalty is None:
        return 0.0
    return float(min(max(penalty, 0.0), grade))


def store_late_penalty(submission: Any, plugin: LateSubmissionPlugin) -> None:
    """Set nbgrader's ``late_submission_penalty`` of each notebook of a gradebook ``submission``, as
    nbgrader's ``AssignLatePenalties`` does when it autogrades (in notebook points), so that the
    formgrader and ``nbgrader export`` show it too. The caller commits."""
    from sqlalchemy.orm import object_session

    seconds = float(submission.total_seconds_late or 0.0)
    for notebook in submission.notebooks:
        object_session(notebook).expire(notebook, ["score"])  # re-read: grades may have just changed
        notebook.late_submission_penalty = None
        if seconds > 0:
            score = float(notebook.score or 0.0)
            penalty = plugin.late_submission_penalty(submission.student.id, score, seconds)
            if penalty is not None:
                notebook.late_submission_penalty = min(max(float(penalty), 0.0), score)


def minutes_text(seconds: float) -> str:
    """``25 min``, ``1 h 05 min`` or ``40 s`` for a duration in seconds."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = math.ceil(seconds / 60 - 1e-9)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


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
    from .build import load_reference

    if not course.release_dir(master.assignment).is_dir():
        return True
    try:
        load_reference(course, master)
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
    from .exchange import release

    master = load_master(course.master_path(assignment))
    settings = exam_settings(course, master)
    minutes = settings.duration_minutes if duration_minutes is None else float(duration_minutes)
    if not minutes > 0:
        raise ExamError(f"the duration must be a positive number of minutes, not {duration_minutes!r}")
    begin = utcnow() if start is None else parse_time(course, start)
    built = _needs_build(course, master)
    if built:
        from .build import build

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
    change time of its folder and files, see :mod:`edsgrade.safeexchange`), never the time the
    student wrote. The file is read without following a link, and a time that cannot be read
    (a submission collected another way) makes that submission undated, never the class's failure.
    """
    from .safeexchange import read_small, read_time

    text = read_small(course.submitted_dir(student, assignment) / "timestamp.txt")
    return read_time(text) if text and text.strip() else None


def close_exam(course: Course, assignment: str, *, force: bool = False,
               now: dt.datetime | None = None) -> CloseReport:
    """Collect ``assignment`` after its deadline and say who handed in, when, and how late.

    Refuses before the deadline unless ``force`` (students may still be working). It can be run
    again: a submission that arrives later is collected and flagged late.
    """
    from .exchange import collect

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
