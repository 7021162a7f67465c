"""Simulated students: notebooks a cohort would hand in, made from the release and the master.

Used by ``edsgrade demo`` and the tests. Each profile is a typical submission: the full solution,
a partial one, the untouched release, code that raises, a cell that never returns, an edited test
cell, deleted test cells, and a file that is not a notebook at all.

The answer-filling helpers, one meaning each (the tests use these, never their own):

- :func:`solution_text`: a whole master answer cell as a student who solved it writes it;
- :func:`solution_of`: only the code of a master cell's solution region;
- :func:`answer`: the release with the master's answers filled in (all questions, or some);
- :func:`with_answers`: a notebook whose solution regions of some cells hold other code (a student's
  own approach, or a typical mistake), the rest of each cell kept as released.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable, Iterable

import nbformat

from edsgrade.authoring.master import SOLUTION_BEGIN, SOLUTION_END, Master, cell_grade_id, is_solution_cell, is_test_cell


def answer_cells(master: Master) -> dict[str, list[str]]:
    """For each autograded question, the grade ids of the answer cells that come before its test cell."""
    owners: dict[str, list[str]] = {}
    pending: list[str] = []
    for cell in master.notebook.cells:
        if is_solution_cell(cell) and cell.cell_type == "code":
            pending.append(cell_grade_id(cell))
        elif is_test_cell(cell):
            owners[cell_grade_id(cell)] = pending
            pending = []
    return owners


def solution_text(cell: nbformat.NotebookNode) -> str:
    """A master solution cell as a student who solved it would write it (markers removed)."""
    return "\n".join(l for l in cell.source.splitlines() if l.strip() not in (SOLUTION_BEGIN, SOLUTION_END))


def _region(lines: list[str], grade_id: str | None) -> tuple[int, int]:
    """The line indices of the (first) ``### BEGIN SOLUTION`` and of the ``### END SOLUTION`` after it."""
    begin = next((i for i, line in enumerate(lines) if line.strip() == SOLUTION_BEGIN), None)
    end = next((i for i, line in enumerate(lines) if line.strip() == SOLUTION_END and begin is not None and i > begin),
               None)
    if begin is None or end is None:
        raise ValueError(f"answer cell {grade_id!r} of the master has no {SOLUTION_BEGIN} ... {SOLUTION_END} region")
    return begin, end


def master_cell(master: Master, grade_id: str) -> nbformat.NotebookNode:
    """The master's cell whose nbgrader ``grade_id`` is ``grade_id`` (a ``KeyError`` names the known ids)."""
    for cell in master.notebook.cells:
        if cell_grade_id(cell) == grade_id:
            return cell
    known = ", ".join(g for g in (cell_grade_id(c) for c in master.notebook.cells) if g)
    raise KeyError(f"{master.path.name} has no cell with grade_id {grade_id!r}; known: {known}")


def solution_of(master: Master, grade_id: str) -> str:
    """The code inside the solution region of the master's answer cell ``grade_id`` (markers excluded)."""
    lines = master_cell(master, grade_id).source.splitlines()
    begin, end = _region(lines, grade_id)
    return "\n".join(lines[begin + 1: end])


def with_answers(nb: nbformat.NotebookNode, master: Master, code: dict[str, str]) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose answer cells named in ``code`` (grade id -> code) hold that code.

    The code replaces the *solution region* of the master's cell (what nbgrader replaces by
    "YOUR CODE HERE" in the release); the lines before and after the region stay as released, as
    they would in a student's notebook. Leading/trailing blank lines of the code are dropped, its
    indentation is kept (a region inside a function body takes indented code).
    """
    out = copy.deepcopy(nb)
    missing = set(code) - {cell_grade_id(c) for c in out.cells}
    if missing:
        raise KeyError(f"no answer cell {', '.join(sorted(missing))} in the notebook")
    for cell in out.cells:
        gid = cell_grade_id(cell)
        if gid in code:
            lines = master_cell(master, gid).source.splitlines()
            begin, end = _region(lines, gid)
            cell.source = "\n".join(lines[:begin] + code[gid].strip("\n").splitlines() + lines[end + 1:])
    return out


def answer(release: nbformat.NotebookNode, master: Master, questions: Iterable[str] | None = None,
           manual: bool = True) -> nbformat.NotebookNode:
    """The release with the master's answers to ``questions`` (default: all) filled in."""
    owners = answer_cells(master)
    chosen = set(owners) if questions is None else set(questions)
    cells_to_fill = {gid for q in chosen for gid in owners.get(q, [])}
    if manual:
        cells_to_fill |= {m.grade_id for m in master.manual}
    by_id = {cell_grade_id(c): c for c in master.notebook.cells if cell_grade_id(c)}
    nb = copy.deepcopy(release)
    for cell in nb.cells:
        gid = cell_grade_id(cell)
        if gid in cells_to_fill and is_solution_cell(cell):
            cell.source = solution_text(by_id[gid])
    return nb


def _prepend_to_answer(nb: nbformat.NotebookNode, master: Master, question: str, code: str) -> None:
    target = answer_cells(master)[question][0]
    for cell in nb.cells:
        if cell_grade_id(cell) == target:
            cell.source = code + "\n" + cell.source


def _middle(master: Master) -> str:
    return master.questions[len(master.questions) // 2].grade_id


def full(release, master):  # noqa: D103 - profiles are described in PROFILES
    return answer(release, master)


def partial(release, master):  # noqa: D103
    return answer(release, master, [q.grade_id for q in master.questions[: len(master.questions) // 2]], manual=False)


def blank(release, master):  # noqa: D103
    return copy.deepcopy(release)


def raises(release, master):  # noqa: D103
    nb = answer(release, master)
    _prepend_to_answer(nb, master, _middle(master), 'raise ValueError("I do not know how to do this yet")')
    return nb


def never_finishes(release, master):  # noqa: D103
    nb = answer(release, master)
    _prepend_to_answer(nb, master, _middle(master), "while True:\n    pass")
    return nb


def edits_test_cell(release, master):  # noqa: D103
    nb = partial(release, master)
    unanswered = master.questions[-1]
    for cell in nb.cells:
        if cell_grade_id(cell) == unanswered.grade_id:
            fakes = "\n".join(f"{name} = None" for name in unanswered.names)
            cell.source = f'{fakes}\nprint("{unanswered.grade_id}: all tests passed!")'
    return nb


def deletes_test_cells(release, master):  # noqa: D103
    nb = answer(release, master)
    doomed = {q.grade_id for q in master.questions[::2]}
    nb.cells = [c for c in nb.cells if cell_grade_id(c) not in doomed]
    return nb


PROFILES: dict[str, tuple[str, Callable]] = {
    "full": ("the full solution", full),
    "partial": ("answers the first half of the questions", partial),
    "blank": ("hands in the release untouched", blank),
    "raises": ("a cell of the middle question raises", raises),
    "never-finishes": ("a cell of the middle question loops forever", never_finishes),
    "edits-test-cell": ("partial, and rewrote a test cell to print 'all tests passed'", edits_test_cell),
    "deletes-test-cells": ("the full solution with every other test cell deleted", deletes_test_cells),
    "corrupt": ("the notebook file is not valid JSON", None),
}


def write_submission(profile: str, release_nb: Path, master: Master, dest: Path) -> None:
    """Write the notebook of a student of ``profile`` to ``dest`` (the fetched notebook's path)."""
    if profile not in PROFILES:
        raise KeyError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    make = PROFILES[profile][1]
    if make is None:
        text = release_nb.read_text()
        dest.write_text(text[: len(text) // 2])  # cut in the middle: not JSON any more
        return
    nbformat.write(make(nbformat.read(release_nb, as_version=4), master), dest)
