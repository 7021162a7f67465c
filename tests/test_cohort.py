"""The simulated class's answer-filling helpers (edsgrade.simulate.cohort), one meaning each, on the toy master."""
from __future__ import annotations

import nbformat
import pytest

from conftest import grade_meta, new_course, toy_master
from edsgrade.simulate.cohort import answer, solution_of, solution_text, with_answers
from edsgrade.authoring.master import load_master


@pytest.fixture
def master(tmp_path):
    nb = toy_master()
    nb.cells.append(nbformat.v4.new_code_cell(
        "def scaled(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n\n\nsix = scaled(3)",
        metadata=grade_meta("a3", grade=False, solution=True)))
    nbformat.write(nb, tmp_path / "toy.ipynb")
    return load_master(tmp_path / "toy.ipynb")


def cell(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def test_solution_of_is_the_region_and_solution_text_the_whole_cell(master):
    assert solution_of(master, "a1") == "mean_value = float(np.mean(values))\nsecret_helper_line = 42"
    assert solution_text(cell(master.notebook, "a1")).startswith("values = [1.0, 2.0, 4.0, 9.0]\nmean_value")
    assert solution_of(master, "a3") == "    return 2 * x"


def test_with_answers_replaces_the_region_only_and_keeps_the_rest_of_the_cell(master):
    release = answer(master.notebook, master)
    out = with_answers(release, master, {"a1": "\nmean_value = 4.0\n", "a3": "    return x + x"})
    assert cell(out, "a1").source == "values = [1.0, 2.0, 4.0, 9.0]\nmean_value = 4.0"
    assert cell(out, "a3").source == "def scaled(x):\n    return x + x\n\n\nsix = scaled(3)"
    assert cell(out, "a2").source == cell(release, "a2").source  # cells not named are left as they were
    assert cell(release, "a1").source != cell(out, "a1").source  # a copy: the notebook given is not changed


def test_with_answers_names_what_is_wrong(master):
    with pytest.raises(KeyError, match="a9"):
        with_answers(master.notebook, master, {"a9": "x = 1"})
    with pytest.raises(KeyError, match="no cell with grade_id 'q9'"):
        solution_of(master, "q9")
    with pytest.raises(ValueError, match="no ### BEGIN SOLUTION"):
        solution_of(master, "q1")  # a test cell has no solution region


def test_the_demo_reuses_a_build_only_while_the_master_is_unchanged(tmp_path):
    from edsgrade.build.release import build
    from edsgrade.course import Course
    from edsgrade.simulate.demo import is_built

    root = new_course(tmp_path / "course")
    (root / "source" / "toy").mkdir(parents=True)
    nbformat.write(toy_master(), root / "source" / "toy" / "toy.ipynb")
    course = Course(root)
    assert not is_built(course, "toy")
    build(course, "toy")
    assert is_built(course, "toy")
    changed = toy_master()
    changed.cells[1].source += " (edited)"
    nbformat.write(changed, root / "source" / "toy" / "toy.ipynb")
    assert not is_built(course, "toy")
