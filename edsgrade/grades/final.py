"""Final grades: the automatic and manual parts combined, the late penalty, and the course total.

For an **exam** (see :mod:`edsgrade.exam`), with ``s`` its ``auto_share`` (0.4 by default)::

    grade = scale × [ s × auto earned / auto possible  +  (1 − s) × manual earned / manual possible ]

(a part with no possible points gives its share to the other). For any other assignment the
grade is proportional to the points: ``scale × (auto + manual earned) / (auto + manual possible)``.
**Bonus** questions (a master's ``"edsgrade": {"bonus": ["q11", "q12"]}``, e.g. a lab's optional
"go further" part) are not in the possible points: what they earn is added to the automatic part's
earned points, and the grade is capped at the scale.
The late penalty of nbgrader's configured plugin (:func:`edsgrade.gradebook.late.late_plugin`) is then taken
off the grade. A grade with rubric criteria still to mark is *pending*: no number is shown for it,
never a silent 0.

The **course total** averages the assignments' grades by weight; an assignment of weight 0 (the
self-evaluation lab) is shown but does not count. Settings (``nbgrader_config.py``)::

    c.Grades.scale = 20                                  # grades out of 20
    c.Grades.assignments = {"lab0-python": {"weight": 0}}  # per assignment (default weight 1)

and a master's metadata ``"edsgrade": {"weight": 0}`` overrides the course's for that assignment.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from nbgrader.api import MissingEntry

from edsgrade.config import configurable
from edsgrade.course import Course, CourseError
from edsgrade.gradebook.late import describe_policy, late_penalty, late_plugin, minutes_text
from edsgrade.authoring.master import Master


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


Grades = configurable("Grades", __name__, """How grades are reported (``c.Grades.*``); traits from the one schema
    (:data:`edsgrade.config.SCHEMA`).""")


@dataclass(frozen=True)
class Policy:
    """How one assignment's grade is computed and counted."""

    assignment: str
    weight: float
    scale: float
    exam: bool
    auto_share: float | None  # exams only: the automatic part's share
    bonus: frozenset[str] = frozenset()  # grade ids of the bonus questions

    def describe(self) -> str:
        if self.auto_share is not None:
            return (f"automatic part {self.auto_share:.0%}, rubric {1 - self.auto_share:.0%}, "
                    f"out of {self.scale:g}")
        return f"proportional to the points, out of {self.scale:g}"


def policy(course: Course, master: Master, scale: float | None = None) -> Policy:
    """``master``'s grading policy: ``c.Grades``, then ``c.Grades.assignments[A]``, then its metadata."""
    resolved = course.settings(master)  # the one rule; SettingsError on a bad weight or scale
    weight = resolved["weight"]
    out_of = float(resolved["scale"] if scale is None else scale)
    if not out_of > 0:
        raise CourseError(f"the grade scale must be positive, not {out_of:g}")
    settings = exam_settings(course, master)
    return Policy(master.assignment, float(weight), out_of, settings.is_exam,
                  settings.auto_share if settings.is_exam else None, bonus_questions(master))


def bonus_questions(master: Master) -> frozenset[str]:
    """The grade ids of ``master``'s bonus questions (its metadata ``edsgrade.bonus``), checked."""
    bonus = master.settings.get("bonus", [])
    known = [q.grade_id for q in master.questions]
    if not isinstance(bonus, list) or not all(isinstance(b, str) for b in bonus):
        raise CourseError(f"{master.path.name}: metadata edsgrade.bonus must be a list of question grade ids, "
                          f"such as {known[-1:]}, not {bonus!r}")
    unknown = sorted(set(bonus) - set(known))
    if unknown:
        raise CourseError(f"{master.path.name}: metadata edsgrade.bonus names {', '.join(unknown)}, which are not "
                          f"autograded questions; known: {', '.join(known)}")
    if known and set(known) <= set(bonus):
        raise CourseError(f"{master.path.name}: every autograded question is a bonus; leave at least one out")
    return frozenset(bonus)


@dataclass
class Criterion:
    """A manually graded cell's state for one student."""

    name: str
    max_points: float
    points: float | None
    comment: str


class GradeStatus(StrEnum):
    """Where one student's grade of one assignment stands (a ``str`` enum: compares equal to its text)."""

    FINAL = "final"
    PENDING = "pending"  # rubric criteria still to mark: no number is shown, never a silent 0
    NOT_GRADED = "not graded"  # collected, not autograded


@dataclass
class FinalGrade:
    """One student's grade for one assignment, with how it was made."""

    student: str
    assignment: str
    status: GradeStatus
    scale: float
    auto: float = 0.0
    auto_max: float = 0.0
    bonus: float = 0.0  # points earned on bonus questions (not in auto_max)
    bonus_max: float = 0.0
    manual: float = 0.0  # points of the criteria marked so far
    manual_max: float = 0.0
    criteria: list[Criterion] = field(default_factory=list)
    seconds_late: float = 0.0
    penalty: float = 0.0  # on the scale, taken off ``before_penalty``
    before_penalty: float | None = None
    grade: float | None = None  # on the scale, None unless final
    policy_text: str = ""
    late_policy: str = ""
    auto_share: float | None = None  # exams: the automatic part's share of the grade

    def __post_init__(self) -> None:
        self.status = GradeStatus(self.status)

    @property
    def pending(self) -> list[str]:
        """Criteria with no points yet."""
        return [c.name for c in self.criteria if c.points is None]

    @property
    def late(self) -> bool:
        return self.seconds_late > 0

    def late_text(self) -> str:
        """``late by 25 min, penalty 6 / 20`` (empty when on time)."""
        if not self.late:
            return ""
        text = f"late by {minutes_text(self.seconds_late)}"
        if self.status is not GradeStatus.FINAL:
            return text + ", penalty computed once graded"
        return text + (f", penalty {self.penalty:.4g} / {self.scale:g}" if self.penalty else ", no penalty")

    def status_text(self) -> str:
        if self.status is GradeStatus.NOT_GRADED:
            return f"collected, not graded yet: run `edsgrade grade {self.assignment}`"
        if self.status is GradeStatus.PENDING:
            return f"rubric pending: {', '.join(self.pending)} to mark"
        return "final"


def combine(auto: float, auto_max: float, manual: float, manual_max: float, auto_share: float | None) -> float:
    """The grade as a fraction of 1 (see the module docstring)."""
    if auto_share is None or auto_max <= 0 or manual_max <= 0:
        total = auto_max + manual_max
        return (auto + manual) / total if total > 0 else 0.0
    return auto_share * auto / auto_max + (1 - auto_share) * manual / manual_max


def _from_submission(sub: Any, master: Master, pol: Policy, plugin: Any, plugin_text: str) -> FinalGrade:
    grades = {g.name: g for nb in sub.notebooks for g in nb.grades}
    comments = {c.name: c for nb in sub.notebooks for c in nb.comments}
    out = FinalGrade(sub.student.id, master.assignment, GradeStatus.FINAL, pol.scale, policy_text=pol.describe(),
                     late_policy=plugin_text, auto_share=pol.auto_share)
    autograded = True
    for q in master.questions:
        g = grades.get(q.grade_id)
        bonus = q.grade_id in pol.bonus
        if bonus:
            out.bonus_max += q.points
        else:
            out.auto_max += q.points
        if g is None or (g.auto_score is None and g.manual_score is None):
            autograded = False
            continue
        if bonus:
            out.bonus += float(g.score or 0.0)
        else:
            out.auto += float(g.score or 0.0)
    for m in master.manual:
        g = grades.get(m.grade_id)
        c = comments.get(m.grade_id)
        points = None if g is None or g.manual_score is None else float(g.score)
        out.criteria.append(Criterion(m.grade_id, m.points, points, (c.manual_comment or "") if c else ""))
        out.manual_max += m.points
        out.manual += points or 0.0
    out.seconds_late = float(sub.total_seconds_late or 0.0)
    if not autograded:
        out.status = GradeStatus.NOT_GRADED
    elif out.pending:
        out.status = GradeStatus.PENDING
    else:
        raw = pol.scale * min(1.0, combine(out.auto + out.bonus, out.auto_max, out.manual, out.manual_max,
                                           pol.auto_share))
        out.before_penalty = raw
        out.penalty = late_penalty(plugin, out.student, raw, out.seconds_late)
        out.grade = raw - out.penalty
    return out


def final_grades(course: Course, assignment: str, scale: float | None = None) -> list[FinalGrade]:
    """The grade of every collected or graded submission of ``assignment``, sorted by student.

    A collected submission not yet autograded, or with rubric criteria still to mark, gets no
    grade (``grade`` is None) and a status saying what is left to do.
    """
    master = course.assignment(assignment).master
    pol = policy(course, master, scale)
    plugin = late_plugin(course)
    text = describe_policy(plugin)
    rows: dict[str, FinalGrade] = {}
    with course.gradebook() as gb:
        try:
            submissions = gb.assignment_submissions(assignment)
        except MissingEntry:
            submissions = []
        collected = set(course.submitted_students(assignment))
        for sub in submissions:
            row = _from_submission(sub, master, pol, plugin, text)
            if row.status is GradeStatus.NOT_GRADED and sub.student.id not in collected:
                continue  # a gradebook entry made for an extension: nothing handed in (yet)
            rows[sub.student.id] = row
    for student in course.submitted_students(assignment):
        if student not in rows:
            rows[student] = FinalGrade(student, assignment, GradeStatus.NOT_GRADED, pol.scale, policy_text=pol.describe(),
                                       late_policy=text, auto_share=pol.auto_share)
    return [rows[s] for s in sorted(rows)]


# ---- the course total ----------------------------------------------------------------------------

@dataclass
class CourseRow:
    """One student's grades in every assignment and the weighted total."""

    student: str
    grades: dict[str, FinalGrade | None]  # None: no submission
    total: float | None
    missing: list[str]  # weighted assignments with no submission (counted as 0)
    pending: list[str]  # weighted assignments whose grade is not final yet

    def status_text(self) -> str:
        parts = []
        if self.pending:
            parts.append("waiting for " + ", ".join(self.pending))
        if self.missing:
            parts.append("no submission of " + ", ".join(self.missing) + " (counted 0)")
        return "; ".join(parts) or "final"


@dataclass
class CourseGrades:
    """The course summary: the assignments counted, their policies, one row per student."""

    policies: list[Policy]
    rows: list[CourseRow]
    scale: float


def course_grades(course: Course, scale: float | None = None) -> CourseGrades:
    """Every assignment with at least one submission, and each student's weighted total.

    total = Σ weight × grade / Σ weight over the assignments of positive weight; a missing
    submission counts 0 (and is said so); a pending grade makes the total pending (None).
    """
    policies: list[Policy] = []
    by_assignment: dict[str, dict[str, FinalGrade]] = {}
    students: set[str] = set()
    with course.gradebook() as gb:
        roster = {s.id for s in gb.students}
    for name in course.assignments():
        rows = final_grades(course, name, scale)
        if not rows:
            continue
        policies.append(policy(course, course.assignment(name).master, scale))
        by_assignment[name] = {r.student: r for r in rows}
        students.update(by_assignment[name])
    out_of = policies[0].scale if policies else float(Grades(config=course.config).scale if scale is None else scale)
    if not policies:
        raise CourseError("no assignment has a graded or collected submission yet: nothing to total "
                          "(collect and grade an assignment first).")
    result: list[CourseRow] = []
    for student in sorted(students | roster):
        grades = {p.assignment: by_assignment[p.assignment].get(student) for p in policies}
        counted = [p for p in policies if p.weight > 0]
        missing = [p.assignment for p in counted if grades[p.assignment] is None]
        pending = [p.assignment for p in counted
                   if grades[p.assignment] is not None and grades[p.assignment].grade is None]
        total = None
        if counted and not pending:
            weights = sum(p.weight for p in counted)
            total = sum(p.weight * (grades[p.assignment].grade if grades[p.assignment] else 0.0)
                        for p in counted) / weights
        result.append(CourseRow(student, grades, total, missing, pending))
    return CourseGrades(policies, result, out_of)
