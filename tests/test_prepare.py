"""Test cells are the grader's: edited, deleted, copied or retyped ones are put right."""
import copy
from pathlib import Path

import nbformat

from conftest import toy_master
from edsgrade.grading.prepare import prepare, release_test_source
from edsgrade.authoring.master import parse_master

MASTER = parse_master(toy_master(), Path("toy.ipynb"))


def release_like():
    nb = copy.deepcopy(MASTER.notebook)
    for q in MASTER.questions:
        nb.cells[q.cell_index].source = release_test_source(q.grade_id)
    return nb


def gids(nb):
    return [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]


def test_untouched_notebook_captures_at_each_test_cell():
    p = prepare(release_like(), MASTER)
    assert p.notes == []
    assert p.captures == {3: ("q1", ["mean_value"]), 5: ("q2", ["squares"])}


def test_edited_test_cell_is_restored_and_noted():
    nb = release_like()
    nb.cells[3].source = "mean_value = 999\nprint('q1 passed')"
    nb.cells[3].outputs = [nbformat.v4.new_output("stream", text="q1 passed")]
    p = prepare(nb, MASTER)
    assert p.notebook.cells[3].source == 'grader.check("q1")' and p.notebook.cells[3].outputs == []
    assert p.notes == ["test cell q1 had been edited; the original tests were used"]


def test_deleted_test_cell_is_put_back_after_the_cell_before_it():
    nb = release_like()
    del nb.cells[3]
    p = prepare(nb, MASTER)
    assert gids(p.notebook)[:5] == [None, None, "a1", "q1", "a2"]
    assert 3 in p.captures and p.notes == ["test cell q1 had been deleted; it was restored"]


def test_copies_and_retyped_test_cells_do_not_count():
    nb = release_like()
    nb.cells.append(copy.deepcopy(nb.cells[5]))          # a copy of q2 at the end
    nb.cells[3] = nbformat.v4.new_markdown_cell("gone", metadata=copy.deepcopy(nb.cells[3].metadata))  # q1 retyped
    p = prepare(nb, MASTER)
    assert gids(p.notebook).count("q1") == 1 and gids(p.notebook).count("q2") == 1
    assert sorted(gid for gid, _ in p.captures.values()) == ["q1", "q2"]
    assert any("copy of test cell q2" in n for n in p.notes) and any("q1 had been deleted" in n for n in p.notes)


def test_master_captures_reference_names_too():
    p = prepare(MASTER.notebook, MASTER, is_master=True)
    assert p.captures[3] == ("q1", ["mean_value"])
