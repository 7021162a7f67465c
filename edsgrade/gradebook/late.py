"""The late-submission policy: nbgrader's late-submission plugin, and the penalties it gives.

nbgrader loads :class:`LatePenalty` from ``c.AssignLatePenalties.plugin_class``; course configs name it
``edsgrade.exam.LatePenalty`` (re-exported there), this module is where it lives, beside the gradebook
writes that store its penalties (:func:`store_late_penalty`), so that the gradebook and the grades
depend on it without depending on the exam-day workflow.
"""
from __future__ import annotations

import math
from typing import Any, Optional

from nbgrader.plugins import LateSubmissionPlugin
from traitlets import Enum, Float

from edsgrade.course import Course, CourseError


class LatePolicyError(CourseError):
    """The late-submission policy is misconfigured; the message names the setting to fix."""


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
            raise LatePolicyError("LatePenalty.period_minutes must be positive")
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
