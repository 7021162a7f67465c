"""The grading engine of one assignment: settings, the warm pool, and grading one submission.

:class:`Engine` holds what every submission of a grading run shares (the master, the reference
values, the warm pool, the executor); :meth:`Engine.grade` grades one submission and writes its
``autograded/`` folder atomically. It is used the same way by local worker threads and by Dask
workers (:mod:`edsgrade.grading.backends`).
"""
from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

import nbformat

from edsgrade.config import DEFAULTS
from edsgrade.course import Course
from edsgrade.authoring.master import Master, Question, cell_grade_id
from edsgrade.grading.sandbox.plaindata import decode_names
from edsgrade.exchange.safecopy import CopyLimits, Refusal, UnsafeFile, copy_tree, read_regular
from edsgrade.exchange.safe import COLLECT_FILE, read_collect_record, read_small, read_time
from edsgrade.grading.sanitize import sanitize_notebook
from edsgrade.grading.sandbox.executor import Execution, SandboxExecutor, Session, SessionGone
from edsgrade.grading.context import session_context
from edsgrade.grading.judge import QuestionResult, judge_all, judge_question, proxy_values
from edsgrade.grading.sandbox.pool import WarmPool, preload_for
from edsgrade.grading.prepare import prepare
from edsgrade.grading.sandbox.confinement import Limits, SandboxError, can_confine

log = logging.getLogger("edsgrade")
RESULT_FILE = "result.json"
INSTRUCTOR_ONLY = {"tests", "data", "timestamp.txt", "submission_secret.txt", ".OTTER_LOG", COLLECT_FILE}
MiB = 1 << 20
MAX_NOTEBOOK = 100 * MiB  # bytes of a submitted notebook read at most (nbgrader's max_file_size)


@dataclass
class GradingOptions:
    """Everything that decides how submissions are run (plain values: sent to Dask workers as is).

    The fields are the ``c.Grader`` settings of the one schema (:data:`edsgrade.config.SCHEMA`), with its
    defaults (``workers`` aside: it is the run's, not a submission's).
    """

    cell_timeout: float = DEFAULTS["cell_timeout"]
    timeout: float = DEFAULTS["timeout"]
    memory: int = DEFAULTS["memory"]  # MiB
    cpu_time: int = DEFAULTS["cpu_time"]
    processes: int = DEFAULTS["processes"]
    file_size: int = DEFAULTS["file_size"]  # MiB
    disk: int = DEFAULTS["disk"]  # MiB the notebook may write in its working copy (confined: a tmpfs of that much more)
    open_files: int = DEFAULTS["open_files"]
    output_limit: int = DEFAULTS["output_limit"]
    notebook_output_limit: int = DEFAULTS["notebook_output_limit"]  # bytes of outputs kept for a whole notebook
    value_limit: int = DEFAULTS["value_limit"]  # MiB, one captured value
    sandbox: str = DEFAULTS["sandbox"]  # auto | on | off
    threads: int = DEFAULTS["threads"]  # numerical-library threads per submission

    @classmethod
    def resolve(cls, course: Course, master: Master, **overrides: Any) -> "GradingOptions":
        """The course's settings, then the course's per-assignment ones, the master's, and ``overrides``
        (:meth:`Course.settings`: every layer checked, a mistake refused with a ``SettingsError``)."""
        settings = course.settings(master, **overrides)
        return cls(**{f.name: settings[f.name] for f in fields(cls)})

    def limits(self) -> Limits:
        return Limits(memory=self.memory * MiB, cpu_time=int(self.cpu_time), processes=self.processes,
                      file_size=self.file_size * MiB, open_files=self.open_files, disk=self.disk * MiB)

    def confine(self) -> bool:
        if self.sandbox == "on" and not can_confine():
            raise SandboxError("Grader.sandbox is 'on' but this process cannot build sandboxes: run the grader as "
                               "root on Linux (it needs namespaces, chroot and one system user per grading slot)")
        return self.sandbox == "on" or (self.sandbox == "auto" and can_confine())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def start_executor(master: Master, options: GradingOptions) -> SandboxExecutor:
    """A warm pool loaded with what ``master``'s notebook imports, and an executor on it."""
    confine = options.confine()  # a SandboxError before any process is started
    pool = WarmPool(preload_for(c.source for c in master.notebook.cells if c.cell_type == "code"),
                    threads=options.threads)
    return SandboxExecutor(pool, cell_timeout=options.cell_timeout, timeout=options.timeout,
                           limits=options.limits(), output_limit=options.output_limit,
                           notebook_output_limit=options.notebook_output_limit,
                           value_limit=options.value_limit * MiB, max_message=max(2 * options.value_limit, 256) * MiB,
                           confine=confine)


class Status(StrEnum):
    """How grading one submission ended. A ``str`` enum: ``result.json`` holds the same strings as before
    (``"graded"``...), old result files read back, and ``status == "graded"`` still holds."""

    GRADED = "graded"  # it ran (errors, time-outs and limits included: see ``execution``) and was judged
    INVALID = "invalid"  # the submitted file is not a readable notebook
    MISSING = "missing"  # no notebook in the submission
    ERROR = "error"  # the grader failed (a bug, or a Dask worker lost): grade this student again


@dataclass
class SubmissionResult:
    """The outcome of grading one submission."""

    student: str
    assignment: str
    status: Status
    message: str = ""
    questions: list[QuestionResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    execution: dict[str, Any] = field(default_factory=dict)
    timestamp: str = ""
    seconds: float = 0.0
    variant: int | None = None  # the hidden draw of the dataset it was graded on, if any

    def __post_init__(self) -> None:
        self.status = Status(self.status)  # a ValueError names an unknown status

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
                "execution": self.execution, "timestamp": self.timestamp, "seconds": round(self.seconds, 3),
                "variant": self.variant}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SubmissionResult":
        return cls(data["student"], data["assignment"], data["status"], data.get("message", ""),
                   [QuestionResult.from_dict(q) for q in data.get("questions", [])], data.get("notes", []),
                   data.get("execution", {}), data.get("timestamp", ""), data.get("seconds", 0.0),
                   data.get("variant"))


def read_result(course: Course, student: str, assignment: str) -> SubmissionResult | None:
    """The recorded result of a graded submission, or ``None``."""
    path = course.autograded_dir(student, assignment) / RESULT_FILE
    if not path.is_file():
        return None
    return SubmissionResult.from_dict(json.loads(path.read_text()))


def zero(master: Master) -> list[QuestionResult]:
    """Every question failed, for a submission that could not run at all."""
    return judge_all(master.questions, {}, {})


def judge_checkpoint(question: Question, session: Session, names: list[str],
                     ref: dict[str, Any] | None, hidden: Path | None = None) -> tuple[dict[str, Any] | None, QuestionResult]:
    """At ``question``'s test cell: capture ``names``, judge the cases; return (encoded values, result).

    ``hidden`` is the folder of the dataset's instructor-only files (the ``hidden`` case parameter).
    """
    context = session_context(session, hidden)
    try:
        encoded = session.capture(names)
    except SessionGone:
        return None, judge_question(question, None, ref, context)
    return encoded, judge_question(question, proxy_values(encoded, session), ref, context)


def _describe_problems(execution: Execution) -> list[str]:
    """Each execution problem, naming cells as a student sees them (1-based number, answer id)."""
    described = []
    for p in execution.problems:
        text = p.describe()
        if 0 <= p.cell < len(execution.notebook.cells):
            gid = cell_grade_id(execution.notebook.cells[p.cell])
            text = text.replace(f"cell {p.cell}", f"cell {p.cell + 1}" + (f" (answer {gid})" if gid else ""), 1)
        elif p.cell < 0:
            text = text.replace("cell -1", "a test")
        described.append(text)
    return described


def _summary(problems: list[str]) -> str:
    more = len(problems) - 2
    return "; ".join(problems[:2]) + (f"; and {more} more (all listed in the feedback)" if more > 0 else "")


def working_copy(release: Path, submitted: Path, dest: Path, data: Path | None = None,
                 limits: CopyLimits = CopyLimits()) -> list[Refusal]:
    """Release files first (authoritative data and checks), then the student's own files; return
    the student's entries that were not copied.

    ``data`` replaces the release's ``data/`` (a hidden draw of the dataset). The student's files
    are copied with :func:`edsgrade.exchange.safecopy.copy_tree`: regular files only, no link followed, no
    FIFO opened, count, size and depth bounded; her notebooks at the top and the instructor's
    names (``INSTRUCTOR_ONLY``) are left out.
    """
    shutil.copytree(release, dest, ignore=shutil.ignore_patterns("tests", "*.ipynb"))
    if data is not None:
        shutil.rmtree(dest / "data", ignore_errors=True)
        shutil.copytree(data, dest / "data")

    def instructors(rel: str) -> bool:
        top = rel.split("/", 1)[0]
        return top in INSTRUCTOR_ONLY or ("/" not in rel and rel.endswith(".ipynb"))

    return copy_tree(submitted, dest, limits=limits, ignore=instructors, verb="copied for grading")


def _read_notebook(path: Path) -> tuple[nbformat.NotebookNode | None, str]:
    """The notebook at ``path``, read only if it is a regular file of its own (never a link to
    another file, a FIFO or a hard link), or ``None`` and why."""
    try:
        raw = read_regular(path, MAX_NOTEBOOK, verb="graded as the student's notebook")
    except UnsafeFile as exc:
        return None, (f"{exc.refusal} (the notebook handed in must be the file itself); "
                      "submit the notebook again.")
    except OSError as exc:
        return None, f"{path.name} could not be read ({exc.strerror}); it could not be graded."
    try:
        nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
    except Exception as exc:
        reason = (str(exc).split("'")[0].strip().rstrip(":").splitlines() or [""])[0][:80]
        return None, (f"{path.name} is not a valid notebook ({type(exc).__name__}: {reason}); "
                      "it could not be graded. Check it opens in Jupyter and submit it again.")
    if not isinstance(nb.get("cells"), list):
        return None, f"{path.name} has no cells; it could not be graded."
    return nb, ""


def submission_timestamp(submitted: Path) -> tuple[str, str]:
    """The collected submission's time as nbgrader writes it, and a note when it is unreadable.

    ``timestamp.txt`` is written by the collect with the exchange's time; a folder collected some
    other way may hold anything there (a link, a FIFO, "whenever"): that submission is then graded
    undated, with a note saying so, and the class's grading goes on.
    """
    text = read_small(submitted / "timestamp.txt")
    if text is None:
        if (submitted / "timestamp.txt").is_symlink() or (submitted / "timestamp.txt").exists():
            return "", ("the submission's timestamp.txt is not a regular file: it was not read and the submission "
                        "is undated; collect it again to date it from the exchange")
        return "", ""
    when = read_time(text)
    if when is None:
        return "", ("the submission's timestamp.txt holds no readable time: the submission is undated; "
                    "collect it again to date it from the exchange")
    return when.strftime("%Y-%m-%d %H:%M:%S.%f UTC"), ""


def _regular_notebooks(submitted: Path) -> list[str]:
    import stat

    names = []
    for p in submitted.glob("*.ipynb"):
        try:
            if stat.S_ISREG(os.lstat(p).st_mode):
                names.append(p.name)
        except OSError:
            continue
    return sorted(names)


def _annotate(nb: nbformat.NotebookNode, checkpoints: dict[int, str], result: SubmissionResult) -> None:
    """Show each question's verdict as the output of its test cell (for formgrader and instructors)."""
    by_id = {q.grade_id: q for q in result.questions}
    for index, grade_id in checkpoints.items():
        q = by_id[grade_id]
        lines = [f"{grade_id}: {q.points:g} / {q.max_points:g} points"]
        for case in q.cases:
            mark = "passed" if case.passed else "failed"
            kind = "hidden" if case.hidden else "public"
            lines.append(f"  [{mark}] {case.name} ({kind}, {case.points:g} pt)")
            if not case.passed and case.message:
                lines.extend("      " + line for line in case.message.splitlines())
        nb.cells[index].outputs = [nbformat.v4.new_output("stream", name="stdout", text="\n".join(lines) + "\n")]


def write_outputs(course: Course, result: SubmissionResult, notebook: nbformat.NotebookNode, name: str,
                  timestamp_file: Path | None) -> None:
    """Replace ``autograded/S/A/`` in one step: build it beside, then swap it in.

    The notebook is sanitized first (:func:`edsgrade.grading.sanitize.sanitize_notebook`): instructors'
    browsers render it (formgrader, nbconvert, JupyterLab), and its outputs are the student's.
    """
    report = sanitize_notebook(notebook)
    if report.changes:
        result.notes.append(report.summary())
    final = course.autograded_dir(result.student, result.assignment)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{result.assignment}.", dir=final.parent))
    nbformat.write(notebook, staging / name)
    if timestamp_file is not None and result.timestamp:  # the checked time, never the file itself
        (staging / "timestamp.txt").write_text(result.timestamp)
    (staging / RESULT_FILE).write_text(json.dumps(result.to_dict(), indent=1))
    os.chmod(staging, 0o755)
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}-{time.monotonic_ns()}")
        final.rename(old)
        staging.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(final)


class Engine:
    """What the submissions of one assignment share during a grading run.

    Parameters
    ----------
    course, assignment:
        What to grade.
    options:
        How to run submissions (see :class:`GradingOptions`).
    """

    def __init__(self, course: Course, assignment: str, options: GradingOptions) -> None:
        from edsgrade.grading.variants import Variants

        self.course, self.options = course, options
        self.master = course.assignment(assignment).master
        self.variants = Variants(course, self.master)
        self.executor = start_executor(self.master, options)
        self._refs: dict[tuple[int | None, str], dict[str, Any]] = {}

    def _reference(self, seed: int | None, grade_id: str, refs: dict[str, Any]) -> dict[str, Any] | None:
        """``ref`` of one question on one draw: decoded once per run, a fresh copy for every submission
        (a case that changed its ``ref`` in place must not change the next student's)."""
        if grade_id not in refs:
            return None
        key = (seed, grade_id)
        if key not in self._refs:
            self._refs[key] = decode_names(refs[grade_id])
        return copy.deepcopy(self._refs[key])

    def close(self) -> None:
        self.executor.pool.close()

    def grade(self, student: str) -> SubmissionResult:
        """Grade ``student``'s collected submission and write ``autograded/S/A/``; never raises."""
        start = time.monotonic()
        try:
            result = self._grade(student, start)
        except Exception as exc:  # a grader bug must not stop the class's grading: record it
            log.exception("grading %s of %s failed", student, self.master.assignment)
            result = SubmissionResult(student, self.master.assignment, Status.ERROR, questions=zero(self.master),
                                      message=f"internal grading error ({type(exc).__name__}: {exc}); "
                                              "tell the course's maintainers and grade this student again")
            placeholder = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"**Not graded:** {result.message}")])
            result.seconds = time.monotonic() - start
            write_outputs(self.course, result, placeholder, self.master.path.name, None)
        return result

    def _grade(self, student: str, start: float) -> SubmissionResult:
        master, course = self.master, self.course
        assignment = master.assignment
        submitted = course.submitted_dir(student, assignment)
        stamp_file = submitted / "timestamp.txt"
        stamp, stamp_note = submission_timestamp(submitted)
        result = SubmissionResult(student, assignment, Status.GRADED, timestamp=stamp)
        refusals = read_collect_record(submitted).get("refusals")  # what the collect left out, as sentences
        result.notes += [n for n in refusals if isinstance(n, str)][:101] if isinstance(refusals, list) else []
        if stamp_note:
            result.notes.append(stamp_note)
        nb_path = submitted / master.path.name
        if not (nb_path.is_file() or nb_path.is_symlink()):
            others = _regular_notebooks(submitted)
            if len(others) == 1:
                result.notes.append(f"the notebook was submitted as {others[0]} instead of {master.path.name}")
                nb_path = submitted / others[0]
            else:
                result.status, result.questions = Status.MISSING, zero(master)
                result.message = (f"no {master.path.name} in the submission (found {others or 'no notebook'}); "
                                  "submit the assignment's notebook without renaming it.")
        nb = None
        if result.status is Status.GRADED:
            nb, error = _read_notebook(nb_path)
            if nb is None:
                result.status, result.message, result.questions = Status.INVALID, error, zero(master)
        if nb is None:  # formgrader still gets a notebook to open: the release, with the reason on top
            placeholder = nbformat.read(course.release_dir(assignment) / master.path.name, as_version=4)
            placeholder.cells.insert(0, nbformat.v4.new_markdown_cell(f"**Not graded:** {result.message}"))
            result.seconds = time.monotonic() - start
            write_outputs(course, result, placeholder, master.path.name, stamp_file)
            return result
        kernel = nb.get("metadata", {}).get("kernelspec", {}).get("name")
        if kernel and kernel != "python3":
            result.notes.append(f"the notebook asked for kernel {kernel!r}; it was run with Python 3, "
                                "like every submission")
        prepared = prepare(nb, master)
        result.notes += prepared.notes
        variant = self.variants.for_student(student)
        result.variant = variant.seed if variant.hidden else None
        refs = variant.refs
        checkpoints = {i: gid for i, (gid, _) in prepared.captures.items()}
        names = {gid: names for gid, names in prepared.captures.values()}

        def on_checkpoint(grade_id: str, session: Session) -> QuestionResult:
            question = master.question(grade_id)
            ref = self._reference(variant.seed, grade_id, refs)
            return judge_checkpoint(question, session, names[grade_id], ref, variant.hidden_data)[1]

        with tempfile.TemporaryDirectory(prefix=f"edsgrade-{assignment}-") as tmp:
            work = Path(tmp) / assignment
            refused = working_copy(course.release_dir(assignment), submitted, work, variant.data)
            result.notes += [str(r) for r in refused if str(r) not in result.notes]
            execution = self.executor.execute(prepared.notebook, work, checkpoints, on_checkpoint)
        if execution.status == "failed":
            raise SandboxError("; ".join(p.evalue for p in execution.problems))
        result.questions = [execution.checkpoints.get(q.grade_id) or judge_question(q, None, None)
                            for q in master.questions]
        described = _describe_problems(execution)
        result.execution = {**execution.summary(), "described": described}
        result.message = _summary(described)
        _annotate(execution.notebook, checkpoints, result)
        result.seconds = time.monotonic() - start
        write_outputs(course, result, execution.notebook, master.path.name, stamp_file)
        return result
