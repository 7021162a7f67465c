"""Evaluate a question's Otter test cases on values captured from a student's notebook.

The judge runs in the grader's process, never in the student's: it receives the student's values
as plain data (decoded by :mod:`edsgrade.grading.sandbox.plaindata`) and ``ref``, the reference solution's values on
the same data. A function or fitted model arrives as a :class:`Proxy`: calling it (or a method of
it, ``model.predict(X)``) runs the student's code in the student's sandboxed process with plain
arguments, and only plain data comes back. A value the student did not define fails the cases that
need it with a message saying so, without calling the case; using a non-plain value as if it were
data (comparing it, converting it) fails the case with a message naming its type.
"""
from __future__ import annotations

import copy
import inspect
import traceback
from dataclasses import asdict, dataclass, field
from types import SimpleNamespace
from typing import Any

from edsgrade.authoring.master import Question, load_test_cases
from edsgrade.grading.sandbox.plaindata import MalformedValue, Unavailable, decode, decode_names, encode
from edsgrade.authoring import CONTEXT_PARAMS
from edsgrade.grading.sandbox.untrusted import identifier, said
from edsgrade.errors import EdsgradeError


class StudentCodeError(EdsgradeError):
    """The student's function raised, or returned something that is not plain data, when the judge called it."""


class Proxy:
    """A student's object that is not plain data, reachable only by calling into the sandbox.

    ``proxy(*args)``, ``proxy.method(*args)``, ``proxy["key"].method(*args)``: arguments must be
    plain data (they are encoded), and the result comes back as plain data. Anything else (comparing
    it, converting it to a number or an array, iterating it) raises ``TypeError`` with a message.
    """

    def __init__(self, session: Any, name: str, type_info: str = "", path: tuple = ()) -> None:
        object.__setattr__(self, "_session", session)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_type", type_info)
        object.__setattr__(self, "_path", path)

    def _label(self) -> str:
        label = self._name
        for kind, key in self._path:
            label += f".{key}" if kind == "attr" else f"[{decode(key)!r}]"
        return label

    def __getattr__(self, attr: str) -> "Proxy":
        if attr.startswith("__"):
            raise AttributeError(attr)
        return Proxy(self._session, self._name, self._type, self._path + (("attr", attr),))

    def __getitem__(self, key: Any) -> "Proxy":
        return Proxy(self._session, self._name, self._type, self._path + (("item", encode(key)),))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._ask(True, args, kwargs)

    def _ask(self, call: bool, args: tuple = (), kwargs: dict | None = None) -> Any:
        from edsgrade.grading.sandbox.executor import SessionGone

        label = self._label()
        arrays: list[Any] = []  # the arguments' arrays travel as binary attachments
        try:
            reply = self._session.call(self._name, [list(p) for p in self._path], encode(tuple(args), arrays=arrays),
                                       encode(dict(kwargs or {}), arrays=arrays), call, arrays=arrays)
        except SessionGone as exc:
            raise StudentCodeError(f"{label} could not be called: {exc}") from None
        if "value" in reply:
            try:
                return decode(reply["value"])
            except MalformedValue as exc:
                raise StudentCodeError(f"{label} returned a malformed value ({exc})") from None
        error = reply.get("error") if isinstance(reply.get("error"), dict) else {}
        words = said(error.get("evalue"))
        raise StudentCodeError(f"{label}{'(...)' if call else ''} raised {identifier(error.get('ename'))}"
                               + (f" ({words})" if words else ""))

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        kind = f" ({self._type})" if self._type else ""
        raise TypeError(f"`{self._label()}` is not plain data{kind}: it can only be called "
                        "(a function, or a method such as .predict(X)); expected numbers, strings, lists, "
                        "dicts, numpy arrays or pandas objects")

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse
    __bool__ = __float__ = __int__ = __index__ = __len__ = __iter__ = __array__ = __contains__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _refuse
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<student object {self._label()}>"

    def __deepcopy__(self, memo: dict) -> "Proxy":
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError("a student's object cannot be modified by a test")


def proxy_values(encoded: dict[str, Any], session: Any) -> dict[str, Any]:
    """Decode captured values; non-plain ones become :class:`Proxy` objects bound to ``session``."""
    values: dict[str, Any] = {}
    for name, obj in encoded.items():
        try:
            value = decode(obj, name)
        except MalformedValue as exc:
            value = Unavailable(name, "unsupported", f"the notebook's process sent a malformed value ({exc})")
        if isinstance(value, Unavailable) and value.reason == "unsupported" and session is not None:
            value = Proxy(session, name, value.detail)
        values[name] = value
    return values


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
                   ref: dict[str, Any] | None, context: dict[str, Any] | None = None) -> QuestionResult:
    """Run every case of ``question`` on decoded ``values``; ``ref`` gives the reference values.

    ``values`` is ``None`` when nothing could be captured (the notebook stopped before the
    question), and every case then fails with that reason, except the cases that only read
    ``context`` (``hidden``, ``files``, ``run``: see :mod:`edsgrade.grading.context`), which are
    judged on what the run left.
    """
    result = QuestionResult(question.grade_id, question.points)
    reference = Reference(**(ref or {}))
    context = context or {}
    public = {c.name for c in question.public_cases}
    for case in load_test_cases(question.source):
        name = case.name or case.test_func.__name__
        params = list(inspect.signature(case.test_func).parameters)
        hidden = bool(case.hidden) or name not in public
        record = CaseResult(name, float(case.points or 0), hidden, False)
        student = [p for p in params if p != "ref" and p not in CONTEXT_PARAMS]
        if values is None and student:
            record.message = "the notebook stopped before this question could be checked"
            result.cases.append(record)
            continue
        lacking = [p for p in params if p in CONTEXT_PARAMS and p not in context]
        if lacking:
            record.message = f"this case needs `{lacking[0]}`, which only the grader provides"
            result.cases.append(record)
            continue
        absent = [v for v in ((values or {}).get(p, Unavailable(p, "missing")) for p in student)
                  if isinstance(v, Unavailable)]
        if absent:
            record.message = absent[0].message()
            result.cases.append(record)
            continue
        kwargs = {p: (reference if p == "ref" else context[p] if p in CONTEXT_PARAMS
                      else copy.deepcopy(values[p])) for p in params}  # type: ignore[index]
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
