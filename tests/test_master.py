"""The authoring format: what a master notebook may say, and the errors that teach it."""
import copy
from pathlib import Path

import pytest

from conftest import toy_master
from edsgrade.authoring.master import AuthoringError, parse_master


def parse(nb):
    return parse_master(nb, Path("source/toy/toy.ipynb"))


def test_questions_cases_and_manual_cells_are_read():
    m = parse(toy_master())
    assert [q.grade_id for q in m.questions] == ["q1", "q2"]
    q1 = m.question("q1")
    assert q1.points == 3 and q1.names == ["mean_value"] and q1.ref_names == ["mean_value"]
    assert [(c.name, c.points, c.hidden) for c in q1.cases] == [("mean_is_a_number", 1, False),
                                                               ("mean_matches_reference", 2, True)]
    assert "mean_matches_reference" not in q1.public_source
    assert [(x.grade_id, x.points) for x in m.manual] == [("why", 1)]
    assert m.max_auto == 5


def test_secret_lines_are_solutions_hidden_tests_and_model_answers_only():
    secret = parse(toy_master()).secret_lines()
    assert "mean_value = float(np.mean(values))" in secret
    assert "def mean_matches_reference(mean_value, ref):" in secret
    assert "The mean is pulled up by the largest value." in secret
    assert "values = [1.0, 2.0, 4.0, 9.0]" not in secret  # given to students
    assert "def mean_is_a_number(mean_value):" not in secret  # public case


def mutate(index, old, new):
    nb = toy_master()
    nb.cells[index].source = nb.cells[index].source.replace(old, new)
    return nb


@pytest.mark.parametrize("nb, message", [
    (mutate(3, "points=2, hidden=True", "points=1, hidden=True"), "add up to 2 points but the cell is worth 3"),
    (mutate(3, "def mean_is_a_number(mean_value):", "def mean_is_a_number(mean_value, ref):"), "reveal the reference"),
    (mutate(3, "def mean_is_a_number(mean_value):", "def mean_is_a_number(env):"), "asks for `env`"),
    (mutate(3, "@test_case(points=1)", "@test_case(points=1, hidden=True)"), "outside"),
    (mutate(3, "import numpy as np\n", "import numpy as np\n1/0\n"), "does not run on its own"),
])
def test_authoring_mistakes_are_reported_with_the_cell(nb, message):
    with pytest.raises(AuthoringError) as err:
        parse(nb)
    assert message in str(err.value) and "q1" in str(err.value)


def test_duplicate_grade_ids_are_refused():
    nb = toy_master()
    nb.cells.append(copy.deepcopy(nb.cells[3]))
    with pytest.raises(AuthoringError, match="used twice"):
        parse(nb)


def test_an_unreadable_master_says_which_file(tmp_path):
    from edsgrade.authoring.master import load_master

    path = tmp_path / "broken.ipynb"
    path.write_text('{"cells": [')
    with pytest.raises(AuthoringError, match="broken.ipynb: not a readable notebook"):
        load_master(path)
    with pytest.raises(AuthoringError, match="not found"):
        load_master(tmp_path / "missing.ipynb")


# ---- region markers read the nbgrader way ----------------------------------------------------------

@pytest.mark.parametrize("begin, end", [
    ("# BEGIN HIDDEN TESTS", "# END HIDDEN TESTS"),          # nbgrader's own docs write one '#'
    ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS"),
    ("    ### BEGIN HIDDEN TESTS  (instructors only)", "### END HIDDEN TESTS ###"),
    ("x = 1  # BEGIN HIDDEN TESTS", "y = 2  # END HIDDEN TESTS"),  # nbgrader drops these marker lines too
])
def test_hidden_regions_are_what_nbgrader_removes(begin, end):
    from nbgrader.preprocessors import ClearHiddenTests

    nb = mutate(3, "### BEGIN HIDDEN TESTS", begin)
    nb.cells[3].source = nb.cells[3].source.replace("### END HIDDEN TESTS", end)
    m = parse(nb)
    q1 = m.question("q1")
    released = copy.deepcopy(nb.cells[3])
    ClearHiddenTests()._remove_hidden_test_region(released)
    assert "mean_matches_reference" not in q1.public_source and "mean_matches_reference" not in released.source
    assert [l.strip() for l in q1.public_source.splitlines() if l.strip()] == \
           [l.strip() for l in released.source.splitlines() if l.strip()]
    assert "def mean_matches_reference(mean_value, ref):" in m.secret_lines()
    assert [c.name for c in q1.cases if c.hidden] == ["mean_matches_reference"]


@pytest.mark.parametrize("old, new, message", [
    ("### BEGIN HIDDEN TESTS", "### BEGIN HIDDEN TEST", "looks like a region marker"),
    ("### BEGIN HIDDEN TESTS", "### begin hidden tests", "looks like a region marker"),
    ("### BEGIN HIDDEN TESTS", "### BEGIN  HIDDEN TESTS", "looks like a region marker"),
    ("### END HIDDEN TESTS", "", "never closed"),
    ("### END HIDDEN TESTS", "### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS", "nested"),
])
def test_markers_nbgrader_would_read_differently_are_refused(old, new, message):
    with pytest.raises(AuthoringError, match=message) as err:
        parse(mutate(3, old, new))
    assert "q1" in str(err.value)


def test_regions_in_the_wrong_kind_of_cell_are_refused():
    nb = toy_master()
    nb.cells[0].source += "\n### BEGIN HIDDEN TESTS\nsecret = 1\n### END HIDDEN TESTS"
    with pytest.raises(AuthoringError, match="not an autograder test cell"):
        parse(nb)
    nb = toy_master()
    nb.cells[1].source += "\n### BEGIN SOLUTION\nanswer\n### END SOLUTION"
    with pytest.raises(AuthoringError, match="not a solution cell"):
        parse(nb)


def test_a_course_may_configure_other_delimiters():
    from traitlets.config import Config

    from edsgrade.authoring.master import Delimiters

    config = Config()
    config.ClearHiddenTests.begin_test_delimeter = "HIDE FROM HERE"
    config.ClearHiddenTests.end_test_delimeter = "HIDE TO HERE"
    delimiters = Delimiters.from_config(config)
    assert delimiters.hidden == ("HIDE FROM HERE", "HIDE TO HERE")
    nb = toy_master()
    with pytest.raises(AuthoringError, match="looks like a region marker"):  # the default markers are not markers here
        parse_master(nb, Path("source/toy/toy.ipynb"), delimiters)
    for cell in nb.cells:
        cell.source = cell.source.replace("### BEGIN HIDDEN TESTS", "# HIDE FROM HERE").replace(
            "### END HIDDEN TESTS", "# HIDE TO HERE")
    q1 = parse_master(nb, Path("source/toy/toy.ipynb"), delimiters).question("q1")
    assert "mean_matches_reference" not in q1.public_source


def test_a_master_with_nbgraders_single_hash_markers_releases_no_hidden_case(toy_course):
    """Built for real: nbgrader's ``# BEGIN HIDDEN TESTS`` (one '#') keeps the hidden case out of the release."""
    import nbformat

    from edsgrade.build.release import build
    from edsgrade.course import Course
    from edsgrade.grading.sandbox import confinement as sandbox

    if not sandbox.can_confine():
        pytest.skip("the build runs the master in the sandbox, which needs root (CI runs as root)")
    path = toy_course / "source" / "toy" / "toy.ipynb"
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        cell.source = cell.source.replace("### BEGIN HIDDEN TESTS", "# BEGIN HIDDEN TESTS").replace(
            "### END HIDDEN TESTS", "# END HIDDEN TESTS")
    nbformat.write(nb, path)
    build(Course(toy_course), "toy", echo=lambda *_: None)
    released = "".join(p.read_text() for p in (toy_course / "release" / "toy").rglob("*") if p.is_file()
                       and p.suffix in (".py", ".ipynb"))
    assert "mean_is_a_number" in released
    assert "mean_matches_reference" not in released and "hidden mean check failed" not in released
