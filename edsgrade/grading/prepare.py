"""Turn a student's notebook into the notebook the grader executes.

Test cells are never trusted: whatever a student left in them (edited, emptied, deleted, copied)
is replaced by the grader's capture point, and a deleted test cell is put back where the master
had it. Every such repair is reported as a note, shown to the instructor and in the feedback.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import nbformat

from edsgrade.authoring.master import Master, cell_grade_id

GRADED_SOURCE = 'grader.check("{grade_id}")'
OTTER_INIT_TAG = "otter-init"
# What the release's Otter cell becomes when grading: the judge checks the questions from outside,
# so the student's process needs no test framework (importing Otter would cost seconds per submission).
GRADING_INIT = ("class _GradingChecks:\n"
                "    def check(self, *args, **kwargs):\n"
                "        return None\n"
                "    check_all = export = check\n"
                "grader = _GradingChecks()\n"
                "del _GradingChecks")


def release_test_source(grade_id: str) -> str:
    """What a test cell holds in the student release."""
    return GRADED_SOURCE.format(grade_id=grade_id)


@dataclass
class Prepared:
    """A notebook ready for execution, and where to capture each question's values."""

    notebook: nbformat.NotebookNode
    captures: dict[int, tuple[str, list[str]]]
    notes: list[str] = field(default_factory=list)


def prepare(submission: nbformat.NotebookNode, master: Master, *, is_master: bool = False) -> Prepared:
    """Return the notebook to execute for ``submission`` of ``master``'s assignment.

    Each question's test cell gets back its released source, ``grader.check("qN")``; the
    executor does not run it but captures there the question's variables. With ``is_master`` the
    notebook is the reference solution itself, and the variables read through ``ref`` are captured
    too. Outputs the student brought are cleared.
    """
    nb = copy.deepcopy(submission)
    wanted = {q.grade_id: q for q in master.questions}
    notes: list[str] = []
    cells: list[nbformat.NotebookNode] = []
    placed: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type == "code":  # outputs are the grader's to produce, not the student's to bring
            cell.outputs, cell.execution_count = [], None
            if OTTER_INIT_TAG in cell.get("metadata", {}).get("tags", []):
                cell.source = GRADING_INIT
        gid = cell_grade_id(cell)
        if gid in wanted:
            if gid in placed or cell.cell_type != "code":
                notes.append(f"a copy of test cell {gid} was found and ignored")
                cell.metadata.pop("nbgrader", None)
                cells.append(cell)
                continue
            placed.add(gid)
            if not is_master and cell.source.strip() != release_test_source(gid):
                notes.append(f"test cell {gid} had been edited; the original tests were used")
            cell.source = release_test_source(gid)
        cells.append(cell)
    # Put back deleted test cells after the nearest cell that precedes them in the master.
    master_order = [cell_grade_id(c) for c in master.notebook.cells]
    for q in master.questions:
        if q.grade_id in placed:
            continue
        notes.append(f"test cell {q.grade_id} had been deleted; it was restored")
        restored = copy.deepcopy(master.notebook.cells[q.cell_index])
        restored.source, restored.outputs, restored.execution_count = release_test_source(q.grade_id), [], None
        position = len(cells)
        earlier = [g for g in master_order[: q.cell_index] if g]
        for prior in reversed(earlier):
            hits = [i for i, c in enumerate(cells) if cell_grade_id(c) == prior]
            if hits:
                position = hits[0] + 1
                break
        cells.insert(position, restored)
        placed.add(q.grade_id)
    nb.cells = cells
    captures: dict[int, tuple[str, list[str]]] = {}
    for index, cell in enumerate(nb.cells):
        gid = cell_grade_id(cell)
        if gid in wanted and cell.cell_type == "code":
            q = wanted[gid]
            captures[index] = (gid, sorted(set(q.names) | (set(q.ref_names) if is_master else set())))
    return Prepared(nb, captures, notes)
