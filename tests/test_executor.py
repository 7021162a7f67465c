"""The executor: per-cell timeouts, errors, dead kernels; values captured as plain data."""
import nbformat
import pytest

from edsgrade.grading.executor import NotebookExecutor
from edsgrade.plaindata import decode_names


def notebook(*sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources] + [nbformat.v4.new_code_cell("")]
    return nb


def run(tmp_path, *sources, names=("x", "y"), **limits):
    nb = notebook(*sources)
    return NotebookExecutor(**{"cell_timeout": 3, **limits}).execute(nb, tmp_path, {len(nb.cells) - 1: ("q", list(names))})


def test_values_are_captured_after_the_cells(tmp_path):
    ex = run(tmp_path, "import numpy as np\nx = np.arange(3)", "y = {'a': 1.5}")
    values = decode_names(ex.captures["q"])
    assert ex.status == "completed" and not ex.problems
    assert values["x"].tolist() == [0, 1, 2] and values["y"] == {"a": 1.5}


def test_an_error_is_recorded_and_execution_goes_on(tmp_path):
    ex = run(tmp_path, "x = 1", "1/0", "y = 2")
    assert [(p.cell, p.kind, p.ename) for p in ex.problems] == [(1, "error", "ZeroDivisionError")]
    assert decode_names(ex.captures["q"]) == {"x": 1, "y": 2}


@pytest.mark.parametrize("loop", ["while True:\n    pass",
                                  "while True:\n    try:\n        while True: pass\n    except KeyboardInterrupt:\n        pass",
                                  "import time\ntime.sleep(1000)"])
def test_a_cell_that_never_returns_is_stopped(tmp_path, loop):
    ex = run(tmp_path, "x = 1", loop, "y = 2")
    assert ex.seconds < 30
    assert ex.problems[0].kind == "timeout" and ex.problems[0].cell == 1
    # either the kernel came back (the next cells ran) or it was given up: never a hang
    assert ex.status in ("completed", "timeout")


def test_a_dying_kernel_is_recorded(tmp_path):
    ex = run(tmp_path, "x = 1", "import os\nos._exit(3)", "y = 2")
    assert ex.status == "kernel-died"
    assert "q" not in ex.captures


def test_the_notebook_time_limit_applies(tmp_path):
    ex = run(tmp_path, "import time\ntime.sleep(2)", "time.sleep(2)", "time.sleep(2)", cell_timeout=10, timeout=3)
    assert ex.status == "timeout" and ex.seconds < 15


def test_long_outputs_are_truncated(tmp_path):
    ex = run(tmp_path, "print('x' * 100000)", output_limit=1000)
    text = ex.notebook.cells[0].outputs[0]["text"]
    assert len(text) < 1200 and "truncated" in text


def test_the_notebook_runs_in_the_given_folder(tmp_path):
    (tmp_path / "data.txt").write_text("hello")
    ex = run(tmp_path, "x = open('data.txt').read()", "y = 0")
    assert decode_names(ex.captures["q"])["x"] == "hello"
