"""Autograde collected submissions: working copy -> execute -> judge -> autograded/ + gradebook.

``submitted/`` is only read. Each submission runs in a throw-away copy made of the release's
files (data, public checks) with the student's files on top, never in ``submitted/``. Whatever a
submission does, it ends with a recorded :class:`SubmissionResult`: a score per question, or a
clear error (invalid notebook, timeout, crash), and the run goes on with the next student.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import nbformat

from ..build import executor_for, load_reference
from ..course import Course, CourseError
from ..master import Master, load_master
from .executor import Execution, NotebookExecutor
from .judge import QuestionResult, judge_all
from .prepare import prepare

log = logging.getLogger("edsgrade")
RESULT_FILE = "result.json"
INSTRUCTOR_ONLY = {"tests", "data", "timestamp.txt", "submission_secret.txt", ".OTTER_LOG"}


@dataclass
class SubmissionResult:
    """The outcome of grading one submission."""

    student: str
    assignment: str
    status: str  # graded | invalid (not a notebook) | missing (no notebook) | error (grader failure)
    message: str = ""
    questions: list[QuestionResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    execution: dict[str, Any] = field(default_factory=dict)
    timestamp: str = ""
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return sum(q.points for q in self.questions)

    @property
    def max_score(self) -> float:
        return sum(q.max_points for q in self.questions)

    def to_dict(self) -> dict[str, Any]:
        return {"student": self.student, "assignment": self.assignment, "status": self.status,
                "message": self.message, "score": self.score, "max_score": self.max_score,
                "questions": [q.to_dict() for q in self.questions], "notes": self.notes,
                "execution": self.execution, "timestamp": self.timestamp, "seconds": round(self.seconds, 2)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SubmissionResult":
        return cls(data["student"], data["assignment"], data["status"], data.get("message", ""),
                   [QuestionResult.from_dict(q) for q in data.get("questions", [])], data.get("notes", []),
                   data.get("execution", {}), data.get("timestamp", ""), data.get("seconds", 0.0))


def read_result(course: Course, student: str, assignment: str) -> SubmissionResult | None:
    """The recorded result of a graded submission, or ``None``."""
    path = course.autograded_dir(student, assignment) / RESULT_FILE
    if not path.is_file():
        return None
    return SubmissionResult.from_dict(json.loads(path.read_text()))


def _zero(master: Master) -> list[QuestionResult]:
    return judge_all(master.questions, {}, {})


def _describe_problems(execution: Execution) -> list[str]:
    """Each execution problem, naming cells as a student sees them (1-based number, answer id)."""
    described = []
    for p in execution.problems:
        text = p.describe()
        if 0 <= p.cell < len(execution.notebook.cells):
            gid = execution.notebook.cells[p.cell].get("metadata", {}).get("nbgrader", {}).get("grade_id")
            text = text.replace(f"cell {p.cell}", f"cell {p.cell + 1}" + (f" (answer {gid})" if gid else ""), 1)
        described.append(text)
    return described


def _summary(problems: list[str]) -> str:
    more = len(problems) - 2
    return "; ".join(problems[:2]) + (f"; and {more} more (all listed in the feedback)" if more > 0 else "")


def _working_copy(course: Course, assignment: str, submitted: Path, dest: Path) -> None:
    """Release files first (authoritative data and checks), then the student's own files."""
    shutil.copytree(course.release_dir(assignment), dest)

    def links(folder: str, names: list[str]) -> list[str]:  # never follow a link out of the submission
        return [n for n in names if os.path.islink(os.path.join(folder, n))]

    for item in submitted.iterdir():
        if item.name in INSTRUCTOR_ONLY or item.suffix == ".ipynb" or item.is_symlink():
            continue
        target = dest / item.name
        if item.is_dir():
            shutil.copytree(item, target, ignore=links, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target)


def _read_notebook(path: Path) -> tuple[nbformat.NotebookNode | None, str]:
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:
        reason = (str(exc).split("'")[0].strip().rstrip(":").splitlines() or [""])[0][:80]
        return None, (f"{path.name} is not a valid notebook ({type(exc).__name__}: {reason}); "
                      "it could not be graded. Check it opens in Jupyter and submit it again.")
    if not isinstance(nb.get("cells"), list):
        return None, f"{path.name} has no cells; it could not be graded."
    return nb, ""


def grade_submission(course: Course, master: Master, student: str, executor: NotebookExecutor,
                     refs: dict[str, dict[str, Any]]) -> SubmissionResult:
    """Grade one collected submission and write ``autograded/S/A/``; never raises for student input."""
    assignment = master.assignment
    start = time.monotonic()
    submitted = course.submitted_dir(student, assignment)
    stamp_file = submitted / "timestamp.txt"
    result = SubmissionResult(student, assignment, "graded",
                              timestamp=stamp_file.read_text().strip() if stamp_file.is_file() else "")
    nb_path = submitted / master.path.name
    if not nb_path.is_file():
        others = sorted(p.name for p in submitted.glob("*.ipynb"))
        if len(others) == 1:
            result.notes.append(f"the notebook was submitted as {others[0]} instead of {master.path.name}")
            nb_path = submitted / others[0]
        else:
            result.status, result.questions = "missing", _zero(master)
            result.message = (f"no {master.path.name} in the submission (found {others or 'no notebook'}); "
                              "submit the assignment's notebook without renaming it.")
    nb = None
    if result.status == "graded":
        nb, error = _read_notebook(nb_path)
        if nb is None:
            result.status, result.message, result.questions = "invalid", error, _zero(master)
    out_dir = course.autograded_dir(student, assignment)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    if nb is not None:
        prepared = prepare(nb, master)
        result.notes += prepared.notes
        with tempfile.TemporaryDirectory(prefix=f"edsgrade-{assignment}-{student}-") as tmp:
            work = Path(tmp) / assignment
            _working_copy(course, assignment, submitted, work)
            execution = executor.execute(prepared.notebook, work, prepared.captures)
        result.questions = judge_all(master.questions, execution.captures, refs)
        result.execution = {**execution.summary(), "described": _describe_problems(execution)}
        result.message = _summary(result.execution["described"])
        _annotate(execution.notebook, prepared.captures, result)
        nbformat.write(execution.notebook, out_dir / master.path.name)
    else:  # formgrader still gets a notebook to open: the release, with the reason on top
        placeholder = nbformat.read(course.release_dir(assignment) / master.path.name, as_version=4)
        placeholder.cells.insert(0, nbformat.v4.new_markdown_cell(f"**Not graded:** {result.message}"))
        nbformat.write(placeholder, out_dir / master.path.name)
    if stamp_file.is_file():
        shutil.copy2(stamp_file, out_dir / "timestamp.txt")
    result.seconds = time.monotonic() - start
    save_result(course, result)
    return result


def save_result(course: Course, result: SubmissionResult) -> None:
    """Write ``autograded/S/A/result.json``, which feedback and reports read."""
    folder = course.autograded_dir(result.student, result.assignment)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RESULT_FILE).write_text(json.dumps(result.to_dict(), indent=1))


def _annotate(nb: nbformat.NotebookNode, captures: dict[int, tuple[str, list[str]]],
              result: SubmissionResult) -> None:
    """Show each question's verdict as the output of its test cell (for formgrader and instructors)."""
    by_id = {q.grade_id: q for q in result.questions}
    for index, (grade_id, _) in captures.items():
        q = by_id[grade_id]
        lines = [f"{grade_id}: {q.points:g} / {q.max_points:g} points"]
        for case in q.cases:
            mark = "passed" if case.passed else "failed"
            kind = "hidden" if case.hidden else "public"
            lines.append(f"  [{mark}] {case.name} ({kind}, {case.points:g} pt)")
            if not case.passed and case.message:
                lines.extend("      " + line for line in case.message.splitlines())
        nb.cells[index].outputs = [nbformat.v4.new_output("stream", name="stdout", text="\n".join(lines) + "\n")]


def _check_built(course: Course, assignment: str) -> None:
    from nbgrader.api import MissingEntry

    if not course.release_dir(assignment).is_dir():
        raise CourseError(f"{course.release_dir(assignment)} is missing: run `edsgrade build {assignment}` first.")
    with course.gradebook() as gb:
        try:
            gb.find_assignment(assignment)
        except MissingEntry:
            raise CourseError(f"{assignment} is not in the gradebook {course.db_url}: "
                              f"run `edsgrade build {assignment}` to record it.") from None


def grade_assignment(course: Course, assignment: str, students: Iterable[str] | None = None, *,
                     on_result: Callable[[SubmissionResult], None] | None = None,
                     progress: bool = True, **limits: Any) -> list[SubmissionResult]:
    """Grade the collected submissions of ``assignment`` (all, or ``students``) and record them.

    ``limits`` (``cell_timeout``, ``timeout``) override the course's and the master's settings.
    Scores go to nbgrader's gradebook as each submission finishes.
    """
    from ..gradebook import record

    master = load_master(course.master_path(assignment))
    refs = load_reference(course, master)
    _check_built(course, assignment)
    available = course.submitted_students(assignment)
    wanted = list(students) if students else available
    unknown = [s for s in wanted if s not in available]
    if unknown:
        raise CourseError(f"no collected submission of {assignment} for {', '.join(unknown)} "
                          f"(collected: {', '.join(available) or 'none'}); run `edsgrade collect {assignment}` first.")
    executor = executor_for(course, master, **limits)
    results: list[SubmissionResult] = []
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("grading {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task(assignment, total=len(wanted))
        for student in wanted:
            bar.update(task, description=f"{assignment} [{student}]")
            try:
                result = grade_submission(course, master, student, executor, refs)
            except Exception as exc:  # a grader bug must not stop the class's grading: record it, go on
                log.exception("grading %s of %s failed", student, assignment)
                result = SubmissionResult(student, assignment, "error", questions=_zero(master),
                                          message=f"internal grading error ({type(exc).__name__}: {exc}); "
                                                  "tell the course's maintainers and grade this student again")
                save_result(course, result)
            record(course, master, result)
            results.append(result)
            if on_result:
                on_result(result)
            bar.advance(task)
    return results
