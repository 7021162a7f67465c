"""The sandboxed executor: cells, errors, time limits, dead processes; values and calls at checkpoints."""
import os

import nbformat
import pytest

from edsgrade.grading.sandbox import confinement as sandbox
from edsgrade.grading.sandbox.executor import SandboxExecutor
from edsgrade.grading.judge import Proxy, StudentCodeError, proxy_values
from edsgrade.grading.sandbox.pool import WarmPool


@pytest.fixture(scope="module")
def pool():
    with WarmPool(["numpy", "pandas"]) as p:
        yield p


def notebook(*sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources] + [nbformat.v4.new_code_cell("")]
    return nb


def run(pool, tmp_path, *sources, names=("x", "y"), confine=None, **limits):
    """Run the cells, then capture ``names`` at a checkpoint; returns (execution, values)."""
    nb = notebook(*sources)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    seen = {}

    def checkpoint(grade_id, session):
        seen.update(proxy_values(session.capture(list(names)), session))
        seen["_f"] = seen["f"](2) if isinstance(seen.get("f"), Proxy) else None
        return grade_id

    ex = SandboxExecutor(pool, **{"cell_timeout": 3, **limits}, confine=confine)
    execution = ex.execute(nb, work, {len(nb.cells) - 1: "q"}, checkpoint)
    return execution, seen


def test_values_are_captured_as_plain_data(pool, tmp_path):
    ex, values = run(pool, tmp_path, "import numpy as np\nx = np.arange(3)", "y = {'a': 1.5}")
    assert ex.status == "completed" and not ex.problems and ex.checkpoints == {"q": "q"}
    assert values["x"].tolist() == [0, 1, 2] and values["y"] == {"a": 1.5}


def test_functions_are_called_through_a_proxy_and_return_plain_data(pool, tmp_path):
    ex, values = run(pool, tmp_path, "def f(a):\n    return [a, a * 2]", "x = 1", names=("f", "x"))
    assert isinstance(values["f"], Proxy) and values["_f"] == [2, 4]
    with pytest.raises(TypeError, match="not plain data"):
        values["f"] == 3  # noqa: B015 - a proxy never pretends to be a value


def test_a_students_exception_in_a_called_function_is_reported(pool, tmp_path):
    nb = notebook("def f(a):\n    raise ValueError('bad input')")
    messages = []

    def checkpoint(grade_id, session):
        f = proxy_values(session.capture(["f"]), session)["f"]
        with pytest.raises(StudentCodeError) as info:
            f(1)
        messages.append(str(info.value))

    (tmp_path / "w").mkdir()
    SandboxExecutor(pool, cell_timeout=3).execute(nb, tmp_path / "w", {1: "q"}, checkpoint)
    assert messages and "ValueError (the notebook's process said: «bad input»)" in messages[0]


def test_an_error_is_recorded_and_execution_goes_on(pool, tmp_path):
    ex, values = run(pool, tmp_path, "x = 1", "1/0", "y = 2")
    assert [(p.cell, p.kind, p.ename) for p in ex.problems] == [(1, "error", "ZeroDivisionError")]
    assert values == {"x": 1, "y": 2, "_f": None}
    assert ex.notebook.cells[1].outputs[0].output_type == "error"


@pytest.mark.parametrize("loop", ["while True:\n    pass",
                                  "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
                                  "import time\ntime.sleep(1000)"])
def test_a_cell_that_never_returns_is_stopped(pool, tmp_path, loop):
    ex, values = run(pool, tmp_path, "x = 1", loop, "y = 2")
    assert ex.seconds < 20
    assert ex.problems[0].kind == "timeout" and ex.problems[0].cell == 1 and "cell-time" in ex.limits_hit
    if "SIG_IGN" in loop:  # it ignored the interrupt: stopped, nothing after it ran
        assert ex.status == "timeout" and "y" not in values
    else:  # interrupted: the next cells ran
        assert ex.status == "completed" and values["y"] == 2


def test_a_dying_process_is_recorded(pool, tmp_path):
    ex, values = run(pool, tmp_path, "x = 1", "import os\nos._exit(3)", "y = 2")
    assert ex.status == "died" and "q" not in ex.checkpoints
    assert "exited with code 3" in ex.problems[0].describe()


def test_a_segfault_is_recorded(pool, tmp_path):
    ex, _ = run(pool, tmp_path, "import ctypes\nctypes.string_at(0)")
    assert ex.status == "died" and "segmentation fault" in ex.problems[0].describe()


def test_the_notebook_time_limit_applies(pool, tmp_path):
    ex, _ = run(pool, tmp_path, "import time\ntime.sleep(2)", "time.sleep(2)", "time.sleep(2)", cell_timeout=10, timeout=3)
    assert ex.status == "timeout" and "notebook-time" in ex.limits_hit and ex.seconds < 15


def test_long_outputs_are_truncated(pool, tmp_path):
    ex, _ = run(pool, tmp_path, "print('x' * 100000)", output_limit=1000)
    text = "".join(o.get("text", "") for o in ex.notebook.cells[0].outputs)
    assert len(text) < 1200 and "truncated" in text and "output" in ex.limits_hit


def test_figures_become_outputs(pool, tmp_path):
    ex, _ = run(pool, tmp_path, "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()", "x = 1")
    assert any("image/png" in o.get("data", {}) for o in ex.notebook.cells[0].outputs)


def test_the_notebook_runs_in_its_working_copy(pool, tmp_path):
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "data.txt").write_text("hello")
    ex, values = run(pool, tmp_path, "x = open('data.txt').read()", "y = 0")
    assert values["x"] == "hello"


@pytest.mark.skipif(not sandbox.can_confine(), reason="the full sandbox needs root; CI runs as root")
def test_confined_notebooks_run_as_a_slot_user_without_network(pool, tmp_path):
    ex, values = run(pool, tmp_path, "import os, socket\nx = os.getuid()",
                     "try:\n    socket.create_connection(('127.0.0.1', 22), timeout=1)\n    y = 'connected'\n"
                     "except OSError as e:\n    y = str(e)", confine=True)
    assert values["x"] != 0 and values["x"] == sandbox.sandbox_user(0)[0] or values["x"] >= 100
    assert "unreachable" in values["y"]


def test_unconfined_mode_still_limits_and_cleans_up(pool, tmp_path):
    ex, values = run(pool, tmp_path, "import os\nx = os.getpid()", "y = 1", confine=False)
    assert not ex.sandboxed and values["y"] == 1
    with pytest.raises(ProcessLookupError):
        os.kill(values["x"], 0)
