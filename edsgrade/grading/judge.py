"""Evaluate a question's Otter test cases on values captured from a student's notebook.

The judge runs in the grader's process, never in the student's: it receives the student's values
as plain data (decoded by :mod:`edsgrade.plaindata`) and ``ref``, the reference solution's values on
the same data. A value the student did not define, or that is not plain data, fails the cases that
need it with a message saying so, without calling the case.
"""
from __future__ import annotations

import copy
import inspect
import traceback
from dataclasses import asdict, dataclass, field
from types import SimpleNamespace
from typing import Any

from ..master import Question, load_test_cases
from ..plaindata import Unavailable, decode_names


@dataclass
class CaseResult:
    name: str
    points: float
    hidden: bool
    passed: bool
    message: str = ""  # for the instructor; feedback never shows it for hidden cases

    @property
    def earned(self) -> float:
        return self.points if self.passed else 0.0


@dataclass
class QuestionResult:
    grade_id: str
    max_points: float
    cases: list[CaseResult] = field(default_factory=list)

    @property
    def points(self) -> float:
        return sum(c.earned for c in self.cases)

    def to_dict(self) -> dict[str, Any]:
        return {"grade_id": self.grade_id, "max_points": self.max_points, "points": self.points,
                "cases": [asdict(c) for c in self.cases]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "QuestionResult":
        return cls(data["grade_id"], data["max_points"], [CaseResult(**c) for c in data["cases"]])


class Reference(SimpleNamespace):
    """The reference solution's values: ``ref.name`` or ``ref["name"]``."""

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"the reference solution has no captured value {name!r}; "
                             "read it in this question's test cell as ref.NAME so that the build captures it")


def _failure_message(exc: BaseException, source: str) -> str:
    """The failing test line and the exception, as Otter shows them."""
    lines = source.splitlines()
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<test cell>"]
    where = ""
    if frames and 0 < (frames[-1].lineno or 0) <= len(lines):
        where = f"  {lines[frames[-1].lineno - 1].strip()}\n"
    text = str(exc).strip() or "(no message)"
    return f"{where}{type(exc).__name__}: {text}"


def judge_question(question: Question, values: dict[str, Any] | None,
                   ref: dict[str, Any] | None) -> QuestionResult:
    """Run every case of ``question`` on decoded ``values``; ``ref`` gives the reference values.

    ``values`` is ``None`` when nothing could be captured (the notebook stopped before the
    question), and every case then fails with that reason.
    """
    result = QuestionResult(question.grade_id, question.points)
    reference = Reference(**(ref or {}))
    public = {c.name for c in question.public_cases}
    for case in load_test_cases(question.source):
        name = case.name or case.test_func.__name__
        params = list(inspect.signature(case.test_func).parameters)
        hidden = bool(case.hidden) or name not in public
        record = CaseResult(name, float(case.points or 0), hidden, False)
        if values is None:
            record.message = "the notebook stopped before this question could be checked"
            result.cases.append(record)
            continue
        absent = [v for v in (values.get(p, Unavailable(p, "missing")) for p in params if p != "ref")
                  if isinstance(v, Unavailable)]
        if absent:
            record.message = absent[0].message()
            result.cases.append(record)
            continue
        kwargs = {p: (reference if p == "ref" else copy.deepcopy(values[p])) for p in params}
        try:
            case.test_func(**kwargs)
            record.passed = True
        except Exception as exc:  # an assertion or any error in the case: the case fails
            record.message = _failure_message(exc, question.source)
        result.cases.append(record)
    return result


def judge_all(questions: list[Question], captures: dict[str, dict[str, Any]],
              refs: dict[str, dict[str, Any]]) -> list[QuestionResult]:
    """Judge every question from the executor's encoded captures and the encoded references."""
    results = []
    for q in questions:
        encoded = captures.get(q.grade_id)
        values = decode_names(encoded) if encoded is not None else None
        ref = decode_names(refs[q.grade_id]) if q.grade_id in refs else None
        results.append(judge_question(q, values, ref))
    return results
