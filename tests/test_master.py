"""The authoring format: what a master notebook may say, and the errors that teach it."""
import copy
from pathlib import Path

import pytest

from conftest import toy_master
from edsgrade.master import AuthoringError, parse_master


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
    from edsgrade.master import load_master

    path = tmp_path / "broken.ipynb"
    path.write_text('{"cells": [')
    with pytest.raises(AuthoringError, match="broken.ipynb: not a readable notebook"):
        load_master(path)
    with pytest.raises(AuthoringError, match="not found"):
        load_master(tmp_path / "missing.ipynb")
