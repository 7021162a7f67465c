"""The reference run: the lab's data, and the master run top to bottom for its reference values.

The master runs in the grading engine, the same sandbox and judge as every submission
(:mod:`edsgrade.grading`), which is why the build sits above grading in the layout: the build uses
the engine, the engine only reads what the build wrote (:mod:`edsgrade.grading.variants`).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from edsgrade import datasets
from edsgrade.authoring.master import Master, ref_attributes
from edsgrade.config import DEFAULTS
from edsgrade.course import Course
from edsgrade.errors import EdsgradeError
from edsgrade.grading.context import session_context
from edsgrade.grading.engine import GradingOptions, start_executor
from edsgrade.grading.judge import QuestionResult, judge_question, proxy_values
from edsgrade.grading.prepare import prepare
from edsgrade.grading.sandbox.executor import SessionGone
from edsgrade.grading.sandbox.plaindata import Unavailable, decode_names, portable


class BuildError(EdsgradeError, RuntimeError):
    """The build cannot finish; the message names the file and what to fix."""


def generate_data(master: Master, dest: Path, seed: int | None = None) -> list[Path]:
    """Generate the master's dataset (metadata ``edsgrade.dataset``) into ``dest/data``."""
    name = master.settings.get("dataset")
    if not name:
        return []
    seed = int(master.settings.get("seed", DEFAULTS["seed"]) if seed is None else seed)
    target = dest / "data"
    if target.exists():
        shutil.rmtree(target)
    try:
        return datasets.generate(name, target, seed)
    except KeyError as exc:
        raise BuildError(f"{master.path}: {exc.args[0]}") from exc


def generate_hidden_data(master: Master, dest: Path, seed: int | None = None) -> Path | None:
    """Write the dataset's instructor-only files (test labels...) into ``dest``; ``None`` if it has none.

    ``dest`` is outside ``source/`` and ``release/`` (``build/A/hidden``): neither students, the
    sandbox nor the master's own run ever see it; only the judge reads it (``hidden`` parameter).
    """
    name = master.settings.get("dataset")
    if dest.exists():
        shutil.rmtree(dest)
    if not name:
        return None
    seed = int(master.settings.get("seed", DEFAULTS["seed"]) if seed is None else seed)
    try:
        written = datasets.generate_hidden(name, dest, seed)
    except KeyError as exc:
        raise BuildError(f"{master.path}: {exc.args[0]}") from exc
    if not written:
        shutil.rmtree(dest, ignore_errors=True)
        return None
    return dest


def reference_values(course: Course, master: Master, workdir: Path,
                     hidden: Path | None = None) -> tuple[dict[str, dict[str, Any]], float]:
    """Run the master in ``workdir``; return, per question, the encoded reference values, and the run time.

    The master runs in the same engine as the submissions; at each test cell its variables are
    captured, and every case (public and hidden) is judged on them, with the master's own values
    as ``ref``. Raises :class:`BuildError` if a cell fails or a case fails on the solution.
    """
    prepared = prepare(master.notebook, master, is_master=True)
    checkpoints = {i: gid for i, (gid, _) in prepared.captures.items()}
    names = {gid: n for gid, n in prepared.captures.values()}
    captured: dict[str, dict[str, Any]] = {}

    def on_checkpoint(grade_id: str, session: Any) -> QuestionResult:
        question = master.question(grade_id)
        context = session_context(session, hidden)
        try:
            encoded = session.capture(names[grade_id])
        except SessionGone:
            return judge_question(question, None, None, context)
        captured[grade_id] = {n: portable(encoded[n], n) for n in question.ref_names if n in encoded}
        own = {n: v for n, v in decode_names(captured[grade_id]).items() if not isinstance(v, Unavailable)}
        return judge_question(question, proxy_values(encoded, session), own, context)

    executor = start_executor(master, GradingOptions.resolve(course, master))
    try:
        execution = executor.execute(prepared.notebook, workdir, checkpoints, on_checkpoint)
    finally:
        executor.pool.close()
    if execution.problems:
        details = "; ".join(p.describe() for p in execution.problems)
        raise BuildError(f"{master.path}: the master notebook does not run top to bottom: {details}. "
                         "Fix it (run it in Jupyter) and build again.")
    problems = []
    for q in master.questions:
        read_through_ref = ref_attributes(q.source)  # a function the cases only call needs no reference value
        for name, value in decode_names(captured.get(q.grade_id, {})).items():
            if isinstance(value, Unavailable) and name in read_through_ref:
                problems.append(f"{q.grade_id}: ref.{name} must be plain data (numbers, strings, arrays, "
                                f"data frames...): {value.message()}")
        qr = execution.checkpoints.get(q.grade_id)
        if qr is None:
            problems.append(f"{q.grade_id}: the master never reached this test cell")
            continue
        problems += [f"{qr.grade_id}: case {c.name} fails on the reference solution: {c.message}"
                     for c in qr.cases if not c.passed]
    if problems:
        hint = ("\nA test cell runs on its own, like an Otter test file: it must import what it uses "
                "(e.g. `import numpy as np`)." if any("NameError" in p for p in problems) else "")
        raise BuildError(f"{master.path}: " + "\n  ".join(["the reference solution does not pass its own tests:",
                                                         *problems]) + hint)
    return captured, execution.seconds
