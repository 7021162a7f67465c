"""Build an assignment: master notebook -> dataset, reference values, student release, Otter export.

Steps (each one says what went wrong and where):

1. parse the master (:mod:`edsgrade.authoring.master`) and generate the lab's dataset into ``source/A/data``
   (:mod:`edsgrade.build.reference`);
2. run the master top to bottom, capture the reference values every question's cases read, and
   check that the reference solution passes every case (public and hidden); the same for each hidden
   draw (:mod:`edsgrade.build.variants`);
3. nbgrader's ``generate_assignment`` (its Python API) writes ``release/A``, with one extra
   preprocessor that turns each test cell into ``grader.check("qN")``;
4. write the public checks ``release/A/tests/qN.py`` (Otter's format, public cases only);
5. write the instructor-side products in ``build/A``: reference values and an Otter autograder
   zip (full tests, reference values embedded) for stock ``otter run`` (:mod:`edsgrade.build.otter`);
6. refuse the release if any solution or hidden-test line appears in any file under ``release/A``.
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets.config import Config

from edsgrade.authoring.leakcheck import find_leaks
from edsgrade.authoring.master import is_test_cell, master_digest, strip_authoring_imports
from edsgrade.build.otter import OTTER_INIT, export_otter, test_file_source
from edsgrade.build.reference import BuildError, generate_data, generate_hidden_data, reference_values
from edsgrade.build.variants import build_variants
from edsgrade.config import DEFAULTS
from edsgrade.course import HIDDEN_DIR, REF_FILE, Course
from edsgrade.grading.prepare import release_test_source

log = logging.getLogger("edsgrade")
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


def build(course: Course, assignment: str, *, echo: Any = log.info) -> BuildReport:
    """Build ``assignment`` of ``course`` (see the module docstring for the steps)."""
    start = time.monotonic()
    # the course's own region markers, as nbgrader's generate_assignment will read them
    master = course.assignment(assignment).master
    source = course.source_dir(assignment)
    release = course.release_dir(assignment)
    out = course.build_dir(assignment)
    out.mkdir(parents=True, exist_ok=True)

    echo(f"[{assignment}] generating the dataset")
    generate_data(master, source)

    hidden = generate_hidden_data(master, out / HIDDEN_DIR)  # instructor-only: never in source/ or release/

    echo(f"[{assignment}] running the master notebook for the reference values")
    with tempfile.TemporaryDirectory(prefix=f"edsgrade-build-{assignment}-") as tmp:
        work = Path(tmp) / assignment
        shutil.copytree(source, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        refs, master_seconds = reference_values(course, master, work, hidden)
    (out / REF_FILE).write_text(json.dumps({"assignment": assignment, "master": master_digest(master),
                                            "seed": master.settings.get("seed", DEFAULTS["seed"]), "values": refs}))

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
