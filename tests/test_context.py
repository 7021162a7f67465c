"""The grader's context for hidden cases: `files` (what the notebook wrote), `hidden` (instructor data), `run`."""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from conftest import grade_meta
from edsgrade.grading.context import HiddenData, SubmissionFileError, SubmissionFiles
from edsgrade.grading.engine import judge_checkpoint
from edsgrade.grading.sandbox.executor import SandboxExecutor
from edsgrade.grading.sandbox.pool import WarmPool
from edsgrade.authoring.master import AuthoringError, parse_master

CONTEXT_CELL = '''
@test_case(points=1)
def x_is_set(x):
    assert x == 1

### BEGIN HIDDEN TESTS
@test_case(points=2, hidden=True)
def wrote_the_file(files, hidden):
    assert files.text("out.csv") == hidden.text("expected.csv")

@test_case(points=1, hidden=True)
def ran_within_the_limit(run):
    assert run.completed, "; ".join(run.problems)

@test_case(points=1, hidden=True)
def showed_a_figure(run):
    assert run.figures >= 1
### END HIDDEN TESTS
'''


def master_with(test_source: str):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(test_source)
    cell.metadata.update(grade_meta("q1", grade=True, solution=False, points=5))
    nb.cells = [cell]
    return parse_master(nb, Path("m.ipynb"))


def test_files_are_read_safely_from_the_working_copy(tmp_path):
    (tmp_path / "predictions.csv").write_text("id,facies\n0,shale\n")
    (tmp_path / "big.csv").write_text("x" * 200)
    os.symlink("/etc/passwd", tmp_path / "link.csv")
    os.mkfifo(tmp_path / "pipe.csv")
    (tmp_path / "elsewhere.csv").write_text("secret")
    os.link(tmp_path / "elsewhere.csv", tmp_path / "hard.csv")
    files = SubmissionFiles(tmp_path, limit=100)
    assert files.read_csv("predictions.csv")["facies"].tolist() == ["shale"]
    with pytest.raises(SubmissionFileError, match="did not write missing.csv"):
        files.text("missing.csv")
    with pytest.raises(SubmissionFileError, match="not a regular file"):
        files.text("link.csv")
    with pytest.raises(SubmissionFileError, match="not a regular file"):
        files.text("pipe.csv")
    with pytest.raises(SubmissionFileError, match="not a regular file"):
        files.text("hard.csv")
    with pytest.raises(SubmissionFileError, match="more than the 100 bytes"):
        files.text("big.csv")
    with pytest.raises(ValueError, match="plain file name"):
        files.text("../predictions.csv")
    assert not files.exists("link.csv") and files.exists("predictions.csv")


def test_hidden_data_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="generate_hidden"):
        HiddenData(tmp_path).text("labels.csv")


def test_context_parameters_are_not_students_variables_and_stay_hidden():
    master = master_with(CONTEXT_CELL)
    assert master.question("q1").names == ["x"]
    public = "@test_case(points=1)\ndef peek(files):\n    assert files.exists('a')\n"
    with pytest.raises(AuthoringError, match="only the grader provides"):
        master_with(public.replace("points=1", "points=5"))


@pytest.fixture(scope="module")
def pool():
    with WarmPool(["numpy"]) as p:
        yield p


def run_to_checkpoint(pool, tmp_path, sources, hidden, **limits):
    master = master_with(CONTEXT_CELL)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources] + [nbformat.v4.new_code_cell('grader.check("q1")')]
    work = tmp_path / "work"
    work.mkdir()

    def checkpoint(grade_id, session):
        return judge_checkpoint(master.question(grade_id), session, ["x"], None, hidden)[1]

    execution = SandboxExecutor(pool, **limits).execute(nb, work, {len(sources): "q1"}, checkpoint)
    return execution, execution.checkpoints["q1"]


FIGURE = {"output_type": "display_data", "data": {"image/png": "iVBORw0KGgo="}, "metadata": {}}
SHOW = ("from IPython.display import display\n"
        f"display({{'image/png': 'iVBORw0KGgo=', 'text/plain': 'fig'}}, raw=True)")


def test_a_complete_run_gets_every_context_point(pool, tmp_path):
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "expected.csv").write_text("a,b\n")
    execution, result = run_to_checkpoint(pool, tmp_path, ["open('out.csv', 'w').write('a,b\\n')", SHOW, "x = 1"],
                                          hidden, cell_timeout=10)
    assert execution.status == "completed", execution.problems
    assert result.points == 5, [(c.name, c.message) for c in result.cases]


def test_a_run_over_its_time_limit_keeps_the_points_of_what_it_produced(pool, tmp_path):
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "expected.csv").write_text("a,b\n")
    sources = ["open('out.csv', 'w').write('a,b\\n')", SHOW, "import time\ntime.sleep(3)", "x = 1"]
    execution, result = run_to_checkpoint(pool, tmp_path, sources, hidden, cell_timeout=10, timeout=2)
    assert "notebook-time" in execution.limits_hit
    got = {c.name: c.passed for c in result.cases}
    assert got == {"x_is_set": False, "wrote_the_file": True, "ran_within_the_limit": False, "showed_a_figure": True}
    message = next(c.message for c in result.cases if c.name == "ran_within_the_limit")
    assert "limit" in message


def test_a_run_whose_process_died_is_judged_on_its_files(pool, tmp_path):
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "expected.csv").write_text("a,b\n")
    sources = ["open('out.csv', 'w').write('a,b\\n')", "import os\nos._exit(3)", "x = 1"]
    execution, result = run_to_checkpoint(pool, tmp_path, sources, hidden, cell_timeout=10)
    got = {c.name: c.passed for c in result.cases}
    assert got == {"x_is_set": False, "wrote_the_file": True, "ran_within_the_limit": False, "showed_a_figure": False}


def test_a_file_handed_in_but_not_written_by_the_run_is_refused(tmp_path):
    (tmp_path / "predictions.csv").write_text("id,facies\n")
    os.utime(tmp_path / "predictions.csv", (1_000_000, 1_000_000))
    with pytest.raises(SubmissionFileError, match="not written when the notebook ran"):
        SubmissionFiles(tmp_path, since=2_000_000).text("predictions.csv")
    assert SubmissionFiles(tmp_path, since=500_000).text("predictions.csv") == "id,facies\n"
