"""The authoring format: read a master notebook into questions, test cases and secret regions.

A master notebook is an nbgrader source notebook (see ``docs/authoring.md``). This module is the
single place that knows how to read one; the build, the grader and the feedback all use it.
"""
from __future__ import annotations

import ast
import hashlib
import inspect
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from edsgrade.authoring import CONTEXT_PARAMS
from edsgrade.config import check_master, master_place
from edsgrade.errors import EdsgradeError

SOLUTION_BEGIN, SOLUTION_END = "### BEGIN SOLUTION", "### END SOLUTION"
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
MARK_BEGIN, MARK_END = "=== BEGIN MARK SCHEME ===", "=== END MARK SCHEME ==="
AUTHORING_IMPORT = re.compile(r"^\s*(from\s+edsgrade\.authoring\s+import\s+.*|import\s+edsgrade\.authoring.*)$")
METADATA_KEY = "edsgrade"
#: case parameters that are not the student's variables: ``ref`` and the grader's context
#: (``edsgrade.grading.context``: ``hidden``, ``files``, ``run``)
CONTEXT_NAMES = ("ref", *CONTEXT_PARAMS)


class AuthoringError(EdsgradeError, ValueError):
    """A master notebook does not follow the authoring format; the message says where and how to fix it."""


@dataclass(frozen=True)
class Delimiters:
    """The region markers nbgrader recognises, as its preprocessors' traits define them.

    nbgrader starts a region at any line that *contains* the delimiter (``x = 1  # BEGIN HIDDEN
    TESTS`` starts one) and drops that line; these are the same values (its defaults, or the
    course's ``c.ClearSolutions.begin_solution_delimeter``... when :meth:`from_config` is given the
    course configuration), so the release nbgrader writes and what edsgrade calls secret agree.
    """

    solution: tuple[str, str] = ("BEGIN SOLUTION", "END SOLUTION")
    hidden: tuple[str, str] = ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
    mark_scheme: tuple[str, str] = ("BEGIN MARK SCHEME", "END MARK SCHEME")

    @classmethod
    def from_config(cls, config: Any = None) -> "Delimiters":
        """The delimiters of nbgrader's preprocessors configured by ``config`` (a traitlets Config)."""
        from nbgrader.preprocessors import ClearHiddenTests, ClearMarkScheme, ClearSolutions

        sol = ClearSolutions(config=config) if config is not None else ClearSolutions()
        hid = ClearHiddenTests(config=config) if config is not None else ClearHiddenTests()
        ms = ClearMarkScheme(config=config) if config is not None else ClearMarkScheme()
        return cls((sol.begin_solution_delimeter, sol.end_solution_delimeter),
                   (hid.begin_test_delimeter, hid.end_test_delimeter),
                   (ms.begin_mark_scheme_delimeter, ms.end_mark_scheme_delimeter))


DELIMITERS = Delimiters()

@dataclass(frozen=True)
class CaseInfo:
    """One Otter test case of a question, as declared in the master."""

    name: str
    points: float
    hidden: bool
    params: tuple[str, ...]


@dataclass
class Question:
    """An autograded question: one nbgrader test cell holding Otter test cases."""

    grade_id: str
    points: float
    cell_index: int
    source: str          # the whole test cell, hidden cases included, markers and authoring imports removed
    public_source: str   # the same without the hidden region
    cases: list[CaseInfo]
    names: list[str]     # the student's variables the cases read
    ref_names: list[str]  # the reference solution's variables the cases read through ``ref``

    @property
    def public_cases(self) -> list[CaseInfo]:
        return [c for c in self.cases if not c.hidden]


@dataclass
class ManualQuestion:
    """A manually graded answer cell (interpretation questions, rubric criteria)."""

    grade_id: str
    points: float
    cell_index: int
    cell_type: str


@dataclass
class Master:
    """A parsed master notebook."""

    path: Path
    notebook: nbformat.NotebookNode
    questions: list[Question]
    manual: list[ManualQuestion]
    settings: dict[str, Any] = field(default_factory=dict)
    delimiters: Delimiters = DELIMITERS

    @property
    def assignment(self) -> str:
        return self.path.parent.name

    @property
    def name(self) -> str:
        return self.path.stem

    def question(self, grade_id: str) -> Question:
        for q in self.questions:
            if q.grade_id == grade_id:
                return q
        raise KeyError(grade_id)

    @property
    def max_auto(self) -> float:
        return sum(q.points for q in self.questions)

    def secret_lines(self) -> set[str]:
        """Lines that exist only in solution regions, mark schemes or hidden tests of the master.

        A line also written outside those regions (an import the student is given, say) is not
        secret. Blank lines and lines of punctuation only carry nothing and are ignored.
        """
        secret: set[str] = set()
        visible: set[str] = set()
        for index, cell in enumerate(self.notebook.cells):
            hidden_part, shown_part = split_secret(cell, self.delimiters, index)
            secret.update(hidden_part)
            visible.update(shown_part)
        return {line for line in secret - visible if re.search(r"[A-Za-z0-9]", line)}


def _meta(cell: Any) -> dict[str, Any]:
    return cell.get("metadata", {}).get("nbgrader", {})


def cell_grade_id(cell: Any) -> str | None:
    """The ``grade_id`` of a cell's nbgrader metadata, or ``None`` for a cell nbgrader does not grade."""
    return _meta(cell).get("grade_id")


def is_test_cell(cell: Any) -> bool:
    """An nbgrader autograder-test cell: a graded code cell that is not a solution."""
    m = _meta(cell)
    return cell.cell_type == "code" and bool(m.get("grade")) and not m.get("solution")


def is_solution_cell(cell: Any) -> bool:
    return bool(_meta(cell).get("solution"))


#: a line that looks like a region marker (any case, spacing or plural) without being one nbgrader
#: recognises: "# begin hidden test", "### BEGIN  SOLUTION" would be released as they are
_MARKER_LIKE = re.compile(r"\b(BEGIN|END)\s*(HIDDEN\s*TESTS?|SOLUTIONS?|MARK(ING)?\s*SCHEMES?)\b", re.IGNORECASE)


def _regions(lines: list[str], delimiters: tuple[str, str], where: str = "") -> tuple[list[str], list[str]]:
    """Split ``lines`` into (inside the regions, outside), dropping the marker lines, the nbgrader way.

    A line containing the begin delimiter opens a region and one containing the end delimiter
    closes it (nbgrader's ``ClearSolutions``/``ClearHiddenTests``/``ClearMarkScheme`` rule); a
    nested or unclosed region is refused, as nbgrader refuses it.
    """
    begin, end = delimiters
    inside: list[str] = []
    outside: list[str] = []
    open_ = False
    for number, line in enumerate(lines, 1):
        if begin in line:
            if open_:
                raise AuthoringError(f"{where}line {number}: {begin!r} inside an open region (nbgrader refuses "
                                     f"nested regions); close the first one with {end!r}.")
            open_ = True
        elif end in line:
            open_ = False
        elif open_:
            inside.append(line)
        else:
            outside.append(line)
    if open_:
        raise AuthoringError(f"{where}{begin!r} is never closed: add a line {end!r} after the region.")
    return inside, outside


def _check_markers(lines: list[str], delimiters: Delimiters, where: str) -> None:
    """Refuse a line that looks like a marker but is not one nbgrader recognises (it would be released)."""
    exact = [d for pair in (delimiters.solution, delimiters.hidden, delimiters.mark_scheme) for d in pair]
    for number, line in enumerate(lines, 1):
        if _MARKER_LIKE.search(line) and not any(d in line for d in exact):
            raise AuthoringError(f"{where}line {number} ({line.strip()!r}) looks like a region marker but nbgrader "
                                 f"does not read it as one, so it and what follows would be released as they are. "
                                 f"Write the marker exactly, e.g. '### {delimiters.hidden[0]}'.")


def _cell_where(cell: Any, index: int | None) -> str:
    gid = _meta(cell).get("grade_id")
    return f"cell {index}{f' ({gid!r})' if gid else ''}, " if index is not None else ""


def split_secret(cell: Any, delimiters: Delimiters = DELIMITERS, index: int | None = None) -> tuple[list[str], list[str]]:
    """Return (secret lines, visible lines) of one master cell, stripped of whitespace.

    Secret: what nbgrader removes from the release (solution regions, or a whole solution cell
    without markers; hidden-test regions of test cells; mark-scheme regions). A region marker in a
    cell of the wrong kind (nbgrader would refuse it, or release it) and marker-like lines that are
    not markers are refused with an :class:`AuthoringError` naming the cell.
    """
    where = _cell_where(cell, index)
    lines = cell.source.splitlines()
    _check_markers(lines, delimiters, where)
    has = {kind: any(pair[0] in l for l in lines)
           for kind, pair in (("solution", delimiters.solution), ("hidden", delimiters.hidden),
                              ("mark", delimiters.mark_scheme))}
    if has["hidden"] and not is_test_cell(cell):
        raise AuthoringError(f"{where}a hidden-tests region in a cell that is not an autograder test cell: nbgrader "
                             "refuses it; mark the cell 'Autograder tests' or remove the markers.")
    if has["solution"] and not is_solution_cell(cell):
        raise AuthoringError(f"{where}a solution region in a cell that is not a solution cell: nbgrader refuses it; "
                             "mark the cell as a solution ('Autograded answer' or 'Manually graded answer').")
    inside: list[str] = []
    outside = lines
    if is_solution_cell(cell):
        if has["solution"]:
            inside, outside = _regions(lines, delimiters.solution, where)
        else:
            inside, outside = lines, []  # nbgrader replaces a whole solution cell without markers
    elif is_test_cell(cell):
        inside, outside = _regions(lines, delimiters.hidden, where)
    if has["mark"]:
        scheme, outside = _regions(outside, delimiters.mark_scheme, where)
        inside = inside + scheme
    return [l.strip() for l in inside], [l.strip() for l in outside]


def mark_scheme(source: str, delimiters: Delimiters = DELIMITERS) -> str:
    """The mark-scheme region(s) of a manually graded cell, or the whole cell when it has none."""
    lines = source.splitlines()
    if not any(delimiters.mark_scheme[0] in l for l in lines):
        return source.strip()
    return "\n".join(_regions(lines, delimiters.mark_scheme)[0]).strip()


def strip_authoring_imports(source: str) -> str:
    """Remove ``from edsgrade.authoring import ...`` lines (instructor-only helpers)."""
    return "\n".join(l for l in source.splitlines() if not AUTHORING_IMPORT.match(l))


def load_test_cases(source: str, where: str = "<test cell>") -> list[Any]:
    """Execute a test cell's source with Otter's ``test_case`` and return its cases, in order.

    ``where`` names the cell in errors and tracebacks.
    """
    from otter.test_files import test_case

    namespace: dict[str, Any] = {"test_case": test_case}
    try:
        exec(compile(source, where, "exec"), namespace)
    except Exception as exc:
        raise AuthoringError(f"{where}: the test cell does not run on its own ({type(exc).__name__}: {exc}). "
                             "A test cell may only import modules and define @test_case functions.") from exc
    return [v for v in namespace.values() if isinstance(v, test_case)]


def ref_attributes(source: str) -> set[str]:
    """Names read from ``ref`` in a test cell: ``ref.x`` and ``ref["x"]``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "ref":
            names.add(node.attr)
        if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "ref"
                and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
            names.add(node.slice.value)
    return names


def _parse_question(cell: Any, index: int, path: Path, delimiters: Delimiters = DELIMITERS) -> Question:
    meta = _meta(cell)
    grade_id = meta.get("grade_id")
    where = f"{path.name}, test cell {grade_id!r} (cell {index})"
    if not grade_id:
        raise AuthoringError(f"{path.name}, cell {index}: a test cell has no grade_id; set one in the nbgrader metadata.")
    points = float(meta.get("points") or 0)
    lines = strip_authoring_imports(cell.source).splitlines()
    _check_markers(lines, delimiters, where + ": ")
    hidden, public = _regions(lines, delimiters.hidden, where + ": ")
    full = "\n".join(l for l in lines if not any(d in l for d in delimiters.hidden))
    public_src = "\n".join(public)
    all_cases = load_test_cases(full, where)
    public_names = {c.test_func.__name__ for c in load_test_cases(public_src, where + " (public part)")}
    if not all_cases:
        raise AuthoringError(f"{where}: no @test_case function found. Each autograded question needs at least one case.")
    cases: list[CaseInfo] = []
    names: list[str] = []
    for case in all_cases:
        func = case.test_func.__name__
        is_public = func in public_names
        if is_public and case.hidden:
            raise AuthoringError(f"{where}: case {func} says hidden=True but is outside {HIDDEN_BEGIN!r} ... "
                                 f"{HIDDEN_END!r}; move it inside so that it is not released.")
        if case.points is None:
            raise AuthoringError(f"{where}: case {func} has no points; write @test_case(points=...).")
        params = tuple(inspect.signature(case.test_func).parameters)
        if "env" in params:
            raise AuthoringError(f"{where}: case {func} asks for `env`; name the student's variables it needs instead.")
        if is_public and set(params) & set(CONTEXT_PARAMS):
            raise AuthoringError(f"{where}: public case {func} asks for `hidden`, `files` or `run`, which only the "
                                 "grader provides; make it hidden (inside the hidden-tests region, hidden=True).")
        if is_public and "ref" in params:
            raise AuthoringError(f"{where}: public case {func} uses `ref`, which would reveal the reference solution; "
                                 "make it hidden or compare with a documented property instead.")
        cases.append(CaseInfo(case.name or func, float(case.points), not is_public, params))
        names.extend(p for p in params if p not in CONTEXT_NAMES and p not in names)
    total = sum(c.points for c in cases)
    if abs(total - points) > 1e-9:
        raise AuthoringError(f"{where}: the cases add up to {total:g} points but the cell is worth {points:g}; "
                             "make the nbgrader points equal the sum of the cases' points.")
    ref_names = sorted(ref_attributes(full) | ({*names} if any("ref" in c.params for c in cases) else set()))
    return Question(grade_id, points, index, full, public_src, cases, names, ref_names)


def parse_master(nb: nbformat.NotebookNode, path: Path, delimiters: Delimiters = DELIMITERS) -> Master:
    """Parse an already-loaded master notebook (see :func:`load_master`)."""
    questions: list[Question] = []
    manual: list[ManualQuestion] = []
    seen: set[str] = set()
    for index, cell in enumerate(nb.cells):
        meta = _meta(cell)
        grade_id = meta.get("grade_id")
        if grade_id:
            if grade_id in seen:
                raise AuthoringError(f"{path.name}, cell {index}: grade_id {grade_id!r} is used twice; make it unique.")
            seen.add(grade_id)
        if is_test_cell(cell):
            questions.append(_parse_question(cell, index, path, delimiters))
        elif meta.get("grade") and meta.get("solution"):
            manual.append(ManualQuestion(grade_id, float(meta.get("points") or 0), index, cell.cell_type))
    settings = check_master(nb.metadata.get(METADATA_KEY, {}), master_place(path))  # SettingsError if wrong
    master = Master(path, nb, questions, manual, settings, delimiters)
    for index, cell in enumerate(nb.cells):  # every cell's markers read as nbgrader reads them, or refused
        try:
            split_secret(cell, delimiters, index)
        except AuthoringError as exc:
            raise AuthoringError(f"{path.name}, {exc}") from None
    return master


def master_digest(master: Master) -> str:
    """A digest of the master notebook's cells, to detect a master edited after its build."""
    payload = json.dumps([(c.cell_type, c.source, c.get("metadata", {}).get("nbgrader", {}))
                          for c in master.notebook.cells], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def load_master(path: Path | str, delimiters: Delimiters = DELIMITERS) -> Master:
    """Read and parse a master notebook.

    Raises :class:`AuthoringError` with the file and cell to fix when the notebook does not follow
    the authoring format.
    """
    path = Path(path)
    if not path.is_file():
        raise AuthoringError(f"{path}: master notebook not found.")
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:
        raise AuthoringError(f"{path}: not a readable notebook ({exc}). Open it in Jupyter and save it again.") from exc
    return parse_master(nb, path, delimiters)
