"""The build captures the reference values the cases read through ``ref``, and only those must be plain data.

A question may mix a case that calls the student's function on hidden inputs with a case that
compares a variable with ``ref``: the function needs no reference value, so the build accepts it;
a case that reads a function *through* ``ref`` cannot be graded, and the build says so.
"""
from __future__ import annotations

import nbformat
import pytest

from conftest import grade_meta, new_course
from edsgrade.build.reference import BuildError
from edsgrade.build.release import build
from edsgrade.course import Course

FUNCTION_AND_REF = """import numpy as np

@test_case(points=1)
def doubled_is_a_list(doubled):
    assert len(doubled) == 3, "three values"
### BEGIN HIDDEN TESTS
@test_case(points=1, hidden=True)
def doubled_matches_reference(doubled, ref):
    assert np.allclose(doubled, ref.doubled)

@test_case(points=1, hidden=True)
def twice_on_new_inputs(twice):
    assert np.allclose(twice(np.array([1.5, -2.0])), [3.0, -4.0])
### END HIDDEN TESTS"""


def _course(tmp_path, test_source: str) -> Course:
    root = new_course(tmp_path / "course")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    answer = nbformat.v4.new_code_cell("### BEGIN SOLUTION\ndef twice(x):\n    return 2 * x\n\n\n"
                                       "doubled = list(twice(np.arange(3.0)))\n### END SOLUTION")
    answer.metadata.update(grade_meta("a1", grade=False, solution=True))
    test = nbformat.v4.new_code_cell(test_source)
    test.metadata.update(grade_meta("q1", grade=True, solution=False, points=3))
    nb.cells = [nbformat.v4.new_code_cell("import numpy as np\nfrom edsgrade.authoring import test_case"), answer, test]
    (root / "source" / "fn").mkdir(parents=True)
    nbformat.write(nb, root / "source" / "fn" / "fn.ipynb")
    return Course(root)


def test_a_function_called_by_a_case_needs_no_reference_value(tmp_path):
    report = build(_course(tmp_path, FUNCTION_AND_REF), "fn")
    assert report.questions == 1 and report.auto_points == 3


def test_a_function_read_through_ref_is_refused_with_a_clear_message(tmp_path):
    source = FUNCTION_AND_REF.replace("assert np.allclose(twice(np.array([1.5, -2.0])), [3.0, -4.0])",
                                      "assert ref.twice is not None")
    source = source.replace("def twice_on_new_inputs(twice):", "def twice_on_new_inputs(twice, ref):")
    with pytest.raises(BuildError, match=r"ref\.twice must be plain data"):
        build(_course(tmp_path, source), "fn")
