"""Build an assignment: master notebook -> dataset, reference values, student release, Otter export.

Steps (each one says what went wrong and where):

1. parse the master (:mod:`edsgrade.master`) and generate the lab's dataset into ``source/A/data``;
2. run the master top to bottom, capture the reference values every question's cases read, and
   check that the reference solution passes every case (public and hidden);
3. nbgrader's ``generate_assignment`` (its Python API) writes ``release/A``, with one extra
   preprocessor that turns each test cell into ``grader.check("qN")``;
4. write the public checks ``release/A/tests/qN.py`` (Otter's format, public cases only);
5. write the instructor-side products in ``build/A``: reference values and an Otter autograder
   zip (full tests, reference values embedded) for stock ``otter run``;
6. refuse the release if any solution or hidden-test line appears in any file under ``release/A``.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets.config import Config

from . import datasets
from .config import DEFAULTS
from .course import Course, CourseError
from .grading.prepare import prepare, release_test_source
from .leakcheck import find_leaks
from .master import Delimiters, Master, ref_attributes, is_test_cell, load_master, strip_authoring_imports
from .plaindata import Unavailable, decode_names, portable
from .errors import EdsgradeError

log = logging.getLogger("edsgrade")
#: edsgrade's plain-data codec, shipped in the Otter autograder under this module name (stock Otter
#: imports it from the submission's folder to rebuild ``ref``; no edsgrade install needed there)
OTTER_CODEC_MODULE = "edsgrade_plaindata"
OTTER_INIT = ('# Run this cell first: it loads the checks of this assignment (grader.check("q1") etc.).\n'
              'import otter\n'
              'grader = otter.Notebook(tests_dir="tests")')
REF_FILE = "reference.json"


class BuildError(EdsgradeError, RuntimeError):
    """The build cannot finish; the message names the file and what to fix."""


class ReleaseChecks(NbGraderPreprocessor):
    """nbgrader preprocessor: test cells become ``grader.check("qN")``; Otter is loaded first.

    Runs after nbgrader's ``ClearHiddenTests`` so that nbgrader's gradebook still records the
    master's test cells, and before the final checksums.
    """

    def preprocess(self, nb: nbformat.NotebookNode, resources: dict[str, Any]):
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            if is_test_cell(cell):
                cell.source = release_test_source(cell.metadata["nbgrader"]["grade_id"])
            else:
                cell.source = strip_authoring_imports(cell.source)
        settings = nb.metadata.get("edsgrade", {})  # hidden draws (variants) stay on the instructor's side
        nb.metadata["edsgrade"] = {k: settings[k] for k in ("dataset", "seed") if k in settings}
        init = nbformat.v4.new_code_cell(OTTER_INIT)
        init.metadata.update({"editable": False, "deletable": False, "tags": ["otter-init"]})
        nb.cells.insert(0, init)
        return nb, resources


def _generate_assignment_config() -> Config:
    """nbgrader's own generate_assignment pipeline, with :class:`ReleaseChecks` after ClearHiddenTests."""
    from nbgrader.converters import GenerateAssignment
    from nbgrader.preprocessors import ClearHiddenTests

    steps = list(GenerateAssignment.class_traits()["preprocessors"].default())
    steps.insert(steps.index(ClearHiddenTests) + 1, ReleaseChecks)
    cfg = Config()
    cfg.GenerateAssignment.preprocessors = steps
    return cfg


@dataclass
class BuildReport:
    """What a build produced."""

    assignment: str
    release: Path
    autograder_zip: Path
    questions: int
    auto_points: float
    manual_points: float
    seconds: float
    master_seconds: float  # time the master notebook took to run top to bottom


def master_digest(master: Master) -> str:
    """A digest of the master notebook's cells, to detect a master edited after its build."""
    payload = json.dumps([(c.cell_type, c.source, c.get("metadata", {}).get("nbgrader", {}))
                          for c in master.notebook.cells], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


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
    from .grading.engine import GradingOptions, start_executor
    from .grading.executor import SessionGone
    from .grading.context import session_context
    from .grading.judge import QuestionResult, judge_question, proxy_values

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


def test_file_source(master: Master, grade_id: str, public: bool, ref: dict[str, Any] | None = None) -> str:
    """An Otter exception-based test file for one question.

    ``public`` keeps the public cases only (for the release). With ``ref`` (encoded reference
    values), the file binds them to the cases' ``ref`` parameter itself, so that stock Otter,
    which knows nothing of ``ref``, grades with the same values as edsgrade.
    """
    q = master.question(grade_id)
    body = q.public_source if public else q.source
    head = (f'"""{"Public checks" if public else "Tests"} of question {grade_id} '
            f'({master.assignment}), generated by edsgrade build from the master notebook."""\n'
            "OK_FORMAT = False\n\nfrom otter.test_files import test_case\n\n"
            f"name = {grade_id!r}\n\n")
    text = head + body.strip() + "\n"
    text += ("\n\ndef _edsgrade_name_cases(namespace):\n"
             "    # show each case under its function's name, as edsgrade's feedback does\n"
             "    for case in [v for v in namespace.values() if isinstance(v, test_case)]:\n"
             "        case.name = case.name or case.test_func.__name__\n\n\n"
             "_edsgrade_name_cases(globals())\n")
    if ref is not None and any("ref" in c.params for c in q.cases):
        blob = base64.b64encode(zlib.compress(json.dumps(ref).encode())).decode()
        text += (
            "\n\n# Reference values of the master solution, bound to the `ref` parameter of the cases\n"
            f"_EDSGRADE_REF = {blob!r}\n\n\n"
            "def _edsgrade_bind_ref(namespace):\n"
            "    import inspect, json, zlib, base64\n"
            "    from types import SimpleNamespace\n"
            f"    from {OTTER_CODEC_MODULE} import decode_names  # shipped in the autograder zip\n"
            "    values = decode_names(json.loads(zlib.decompress(base64.b64decode(_EDSGRADE_REF))))\n"
            "    ref = SimpleNamespace(**values)\n"
            "    for case in [v for v in namespace.values() if isinstance(v, test_case)]:\n"
            "        signature = inspect.signature(case.test_func)\n"
            "        if 'ref' not in signature.parameters:\n"
            "            continue\n"
            "        def bound(*args, _func=case.test_func, **kwargs):\n"
            "            return _func(*args, ref=ref, **kwargs)\n"
            "        bound.__signature__ = signature.replace(\n"
            "            parameters=[p for n, p in signature.parameters.items() if n != 'ref'])\n"
            "        case.test_func = bound\n\n\n"
            "_edsgrade_bind_ref(globals())\n"
        )
    return text


def export_otter(master: Master, release: Path, out_dir: Path, refs: dict[str, dict[str, Any]]) -> Path:
    """Write ``out_dir/autograder.zip`` with ``otter generate`` (full tests, data files, the codec module)."""
    tests = out_dir / "otter-tests"
    if tests.exists():
        shutil.rmtree(tests)
    tests.mkdir(parents=True)
    for q in master.questions:
        (tests / f"{q.grade_id}.py").write_text(test_file_source(master, q.grade_id, public=False,
                                                                 ref=refs.get(q.grade_id, {})))
    zip_path = out_dir / "autograder.zip"
    # the support files: the release's (data...) and the codec module, gathered in one folder
    support = out_dir / "otter-files"
    if support.exists():
        shutil.rmtree(support)
    support.mkdir()
    for item in sorted(release.iterdir()):
        if item.name != "tests" and item.suffix != ".ipynb":
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, support / item.name)
    shutil.copy2(Path(__file__).resolve().parent / "plaindata.py", support / f"{OTTER_CODEC_MODULE}.py")
    files = sorted(p.name for p in support.iterdir())
    cmd = [sys.executable, "-m", "otter", "generate", "--tests-dir", str(tests), "--output-path",
           str(zip_path), "--no-config", "--no-requirements", "--no-environment", *files]
    done = subprocess.run(cmd, cwd=support, capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError(f"otter generate failed for {master.assignment}: {done.stderr.strip()[-2000:]}")
    return zip_path


def build(course: Course, assignment: str, *, echo: Any = log.info) -> BuildReport:
    """Build ``assignment`` of ``course`` (see the module docstring for the steps)."""
    start = time.monotonic()
    # the course's own region markers, as nbgrader's generate_assignment will read them
    master = load_master(course.master_path(assignment), Delimiters.from_config(course.config))
    source = course.source_dir(assignment)
    release = course.release_dir(assignment)
    out = course.build_dir(assignment)
    out.mkdir(parents=True, exist_ok=True)

    echo(f"[{assignment}] generating the dataset")
    generate_data(master, source)

    from .grading.variants import HIDDEN_DIR

    hidden = generate_hidden_data(master, out / HIDDEN_DIR)  # instructor-only: never in source/ or release/

    echo(f"[{assignment}] running the master notebook for the reference values")
    with tempfile.TemporaryDirectory(prefix=f"edsgrade-build-{assignment}-") as tmp:
        work = Path(tmp) / assignment
        shutil.copytree(source, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        refs, master_seconds = reference_values(course, master, work, hidden)
    (out / REF_FILE).write_text(json.dumps({"assignment": assignment, "master": master_digest(master),
                                            "seed": master.settings.get("seed", DEFAULTS["seed"]), "values": refs}))

    from .grading.variants import build_variants

    build_variants(course, master, echo)

    echo(f"[{assignment}] nbgrader generate_assignment -> {release}")
    from nbgrader.apps import NbGraderAPI

    course.ensure_exchange()  # nbgrader's API checks the exchange when it starts
    config = Config(course.config)
    config.merge(_generate_assignment_config())
    api = NbGraderAPI(coursedir=course.coursedir(), config=config)
    outcome = api.generate_assignment(assignment, force=True, create=True)
    if not outcome["success"]:
        raise BuildError(f"nbgrader generate_assignment failed for {assignment}:\n{outcome.get('log', '')}"
                         f"\n{outcome.get('error', '')}")

    tests = release / "tests"
    tests.mkdir(exist_ok=True)
    for q in master.questions:
        (tests / f"{q.grade_id}.py").write_text(test_file_source(master, q.grade_id, public=True))

    echo(f"[{assignment}] exporting the Otter autograder")
    zip_path = export_otter(master, release, out, refs)

    echo(f"[{assignment}] checking the release for solution and hidden-test lines")
    leaks = find_leaks(release, master.secret_lines())
    if leaks:
        shutil.rmtree(release)
        listing = "\n  ".join(str(leak) for leak in leaks[:20])
        raise BuildError(f"refusing to release {assignment}: secret lines of {master.path.name} appear in the "
                         f"release (removed):\n  {listing}\nMove these lines into a visible cell of the master "
                         "if students may see them, or reword the released cells.")
    return BuildReport(assignment, release, zip_path, len(master.questions), master.max_auto,
                       sum(m.points for m in master.manual), time.monotonic() - start, master_seconds)


def load_reference(course: Course, master: Master) -> dict[str, dict[str, Any]]:
    """The reference values written by the last build; errors if the master changed since."""
    path = course.build_dir(master.assignment) / REF_FILE
    if not path.is_file():
        raise CourseError(f"{path} is missing: run `edsgrade build {master.assignment}` first.")
    data = json.loads(path.read_text())
    if data.get("master") != master_digest(master):
        raise CourseError(f"{master.path} changed since it was built: run `edsgrade build {master.assignment}` "
                          "again (and release it if students must see the change).")
    return data["values"]
