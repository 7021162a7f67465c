"""A small assignment for the grading-engine tests: a value read from data, and a function.

``q1`` (3 pt): ``total``, the sum of ``data/values.txt`` (public: a number; hidden: equals ``ref``).
``q2`` (3 pt): ``double(x)``, graded by calling the student's function on hidden inputs.
Its data come from a tiny seeded generator, registered as dataset ``tiny`` by :func:`register`.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import numpy as np

from conftest import grade_meta, new_course

HONEST_TOTAL = "total = float(np.loadtxt('data/values.txt').sum())"
HONEST_DOUBLE = "def double(x):\n    return 2 * np.asarray(x, dtype=float)"


def generate(dest: Path, seed: int) -> list[Path]:
    """Twenty uniform numbers (a stand-in for a lab's generator: another seed, another draw)."""
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "values.txt"
    np.savetxt(path, np.random.default_rng(seed).uniform(0, 100, 20), fmt="%.6f")
    return [path]


def register() -> None:
    """Make ``tiny`` a known dataset in this process (builds run the generator in-process)."""
    from edsgrade import datasets

    sys.modules.setdefault("arena_dataset", sys.modules[__name__])
    datasets.REGISTRY["tiny"] = "arena_dataset"


def master(variants: list[int] | None = None) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["edsgrade"] = {"dataset": "tiny", "seed": 1, **({"variants": variants} if variants else {})}

    def code(source, meta=None):
        c = nbformat.v4.new_code_cell(source)
        c.metadata.update(meta or {})
        return c

    nb.cells = [
        code("import numpy as np\nfrom edsgrade.authoring import test_case"),
        code(f"### BEGIN SOLUTION\n{HONEST_TOTAL}\n### END SOLUTION", grade_meta("a1", grade=False, solution=True)),
        code("import numpy as np\n\n@test_case(points=1)\ndef total_is_a_number(total):\n"
             "    assert np.ndim(total) == 0 and np.isfinite(total)\n"
             "### BEGIN HIDDEN TESTS\n@test_case(points=2, hidden=True)\ndef total_is_right(total, ref):\n"
             "    assert np.isclose(total, ref.total), 'wrong total'\n### END HIDDEN TESTS",
             grade_meta("q1", grade=True, solution=False, points=3)),
        code(f"### BEGIN SOLUTION\n{HONEST_DOUBLE}\n### END SOLUTION", grade_meta("a2", grade=False, solution=True)),
        code("import numpy as np\n\n@test_case(points=1)\ndef double_of_one(double):\n"
             "    assert np.isclose(double(1), 2)\n"
             "### BEGIN HIDDEN TESTS\n@test_case(points=2, hidden=True)\ndef double_on_hidden_inputs(double):\n"
             "    assert np.allclose(double([1.5, -2.25, 1e6]), [3.0, -4.5, 2e6])\n### END HIDDEN TESTS",
             grade_meta("q2", grade=True, solution=False, points=3)),
    ]
    return nb


def course(root: Path, variants: list[int] | None = None) -> Path:
    """A course with the ``arena`` master, built and released (API calls, in this process)."""
    from edsgrade import exchange
    from edsgrade.build.release import build
    from edsgrade.course import Course

    register()
    new_course(root)
    (root / "source" / "arena").mkdir(parents=True)
    nbformat.write(master(variants), root / "source" / "arena" / "arena.ipynb")
    c = Course(root)
    build(c, "arena", echo=lambda *_: None)
    exchange.release(c, "arena")
    return root


def submission(root: Path, student: str, answers: dict[str, str], *, before: str = "",
               edit=None) -> None:
    """Fetch, fill answer cells (grade id -> source, ``before`` prepended to a1), optionally edit, submit."""
    from edsgrade import exchange
    from edsgrade.course import Course

    c = Course(root)
    folder = exchange.fetch(c, "arena", student, replace=True)
    path = folder / "arena.ipynb"
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
        if gid == "a1" and before:
            cell.source = before + "\n" + cell.source
    if edit:
        edit(nb)
    nbformat.write(nb, path)
    exchange.submit(c, "arena", student)
