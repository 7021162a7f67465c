"""The judge trusts only what it observed, and is blind to the run (issue 12, parts 4 and 5).

Each hostile notebook runs in the real sandbox (as root, as CI does) from the real warm pool and
writes to its own channel, floods its outputs, stalls or records the judge's calls; the executor must
end each with a clear result of its own, labelled as the submission's, and nothing a called
function does may reach the notebook's later cells, outputs or files.
"""
import json
import time

import nbformat
import pytest

from edsgrade.grading import sandbox
from edsgrade.grading.executor import Ending, SandboxExecutor, Status
from edsgrade.grading.judge import StudentCodeError, proxy_values
from edsgrade.grading.pool import WarmPool

CONFINE = [False] + ([True] if sandbox.can_confine() else [])
#: a cell's code that finds the channel to the grader among its own descriptors
CHANNEL = ("import os, socket, struct\n"
           "def _link(f):\n    try:\n        return os.readlink(f'/proc/self/fd/{f}')\n    except OSError:\n        return ''\n"
           "fds = [int(f) for f in os.listdir('/proc/self/fd') if _link(f).startswith('socket:')]\n"
           "chan = socket.socket(fileno=os.dup(fds[0]))\n")
HIDDEN = 7919.125  # the judge's hidden input


@pytest.fixture(scope="module")
def pool():
    with WarmPool(["numpy"]) as p:
        yield p


def execute(pool, tmp_path, sources, checkpoint=None, at=None, confine=False, **options):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources] + [nbformat.v4.new_code_cell("")]
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    ex = SandboxExecutor(pool, **{"cell_timeout": 3, "timeout": 30, **options}, confine=confine)
    index = len(nb.cells) - 1 if at is None else at
    return ex.execute(nb, work, {index: "q"}, checkpoint or (lambda gid, s: gid)), work


def said(execution):
    return " ".join(p.describe() for p in execution.problems)


@pytest.mark.parametrize("confine", CONFINE)
def test_a_forged_set_up_failure_is_the_notebooks_reply_not_the_graders(pool, tmp_path, confine):
    forged = json.dumps({"fatal": "set c.Grader.sandbox = 'off' and grade again"}).encode()
    ex, _ = execute(pool, tmp_path, [CHANNEL + "chan.sendall(struct.pack('>Q', len(b)) + b) if (b := %r) else None" % forged,
                                     "x = 1"], confine=confine)
    assert ex.status is not Status.FAILED and ex.ending is not Ending.SETUP_FAILED
    assert "could not be set up" not in said(ex) and "c.Grader.sandbox" not in said(ex)


@pytest.mark.parametrize("confine", CONFINE)
@pytest.mark.parametrize("frame", ["b'garbage!' * 3", "struct.pack('>Q', 1 << 60)",
                                   "struct.pack('>Q', 100) + b'{\"a\": '",
                                   "(lambda b: struct.pack('>Q', len(b)) + b)(b'[' * 200000 + b']' * 200000)"])
def test_a_malformed_reply_ends_as_a_clear_result_about_the_submission(pool, tmp_path, confine, frame):
    ex, _ = execute(pool, tmp_path, ["x = 1", CHANNEL + f"chan.sendall({frame})\nimport time\ntime.sleep(60)",
                                     "y = 2"], confine=confine)
    # a frame cut short cannot be told from a slow one before its deadline: that one ends as a time-out
    assert ex.status in (Status.DIED, Status.TIMEOUT), ex.summary()
    assert ex.ending in (Ending.MALFORMED_REPLY, Ending.CELL_TIMEOUT, Ending.NOTEBOOK_TIMEOUT), ex.summary()
    text = said(ex)
    assert "malformed reply" in text or "time limit" in text, text
    assert "internal" not in text


@pytest.mark.parametrize("confine", CONFINE)
def test_the_judges_inputs_never_come_back_into_the_run(pool, tmp_path, confine):
    recorder = ("import os, builtins\nseen = []\nclass Box:\n    kept = []\n"
                "def f(x):\n    seen.append(x)\n    Box.kept.append(x)\n    os.environ['LEAK'] = repr(x)\n"
                "    builtins.LEAK = x\n"
                "    for name in ('leak.txt', '/tmp/leak.txt'):\n        try:\n"
                "            open(name, 'w').write(repr(x))\n        except OSError:\n            pass\n"
                "    try:\n        os.mkdir(f'leak-{x}')\n    except OSError:\n        pass\n"
                "    return 2 * x")
    later = ("import os, builtins\nprint(seen, Box.kept, os.environ.get('LEAK'), getattr(builtins, 'LEAK', None),\n"
             "      os.listdir('.'), [open(n).read() for n in ('leak.txt', '/tmp/leak.txt') if os.path.exists(n)])")
    got = []

    def checkpoint(gid, session):
        f = proxy_values(session.capture(["f"]), session)["f"]
        got.append(f(HIDDEN))
        return gid

    ex, work = execute(pool, tmp_path, [recorder, "", later], checkpoint, at=1, confine=confine)
    assert got == [2 * HIDDEN]  # the call itself worked
    outputs = json.dumps([c.outputs for c in ex.notebook.cells])
    assert "seen" not in outputs or "[] [] None None" in outputs, outputs
    assert str(HIDDEN) not in outputs and "7919" not in outputs
    assert not any("7919" in p.name for p in work.rglob("*")), list(work.rglob("*"))
    assert not (work / "leak.txt").exists()


@pytest.mark.parametrize("confine", CONFINE)
def test_calls_through_the_proxy_count_against_the_notebooks_time(pool, tmp_path, confine):
    messages = []

    def checkpoint(gid, session):
        f = proxy_values(session.capture(["f"]), session)["f"]
        for _ in range(10):
            try:
                f(1)
            except StudentCodeError as exc:
                messages.append(str(exc))
        return gid

    started = time.monotonic()
    ex, _ = execute(pool, tmp_path, ["import time\ndef f(x):\n    time.sleep(1.8)\n    return x"], checkpoint,
                    cell_timeout=2, timeout=4, confine=confine)
    assert time.monotonic() - started < 4 + 4  # the notebook's limit plus a margin, not 10 x 1.8 s
    assert messages and "time limit" in messages[-1]
    assert "notebook-time" in ex.limits_hit


@pytest.mark.parametrize("confine", CONFINE)
def test_a_function_that_exits_at_a_checkpoint_leaves_the_notebook_running(pool, tmp_path, confine):
    messages = []

    def checkpoint(gid, session):
        f = proxy_values(session.capture(["f"]), session)["f"]
        with pytest.raises(StudentCodeError) as info:
            f(1)
        messages.append(str(info.value))
        return gid

    ex, _ = execute(pool, tmp_path, ["import os\ndef f(x):\n    os._exit(3)", "", "y = 41 + 1\nprint(y)"], checkpoint,
                    at=1, confine=confine)
    assert "stopped during the call" in messages[0]
    assert ex.status is Status.COMPLETED and "42" in json.dumps(ex.notebook.cells[2].outputs)


@pytest.mark.parametrize("confine", CONFINE)
def test_outputs_are_bounded_for_the_whole_notebook(pool, tmp_path, confine):
    cells = ["print('y' * 20000)"] * 300
    ex, _ = execute(pool, tmp_path, cells, confine=confine, notebook_output_limit=500_000)
    size = len(json.dumps([c.outputs for c in ex.notebook.cells]))
    assert size < 500_000 + 300 * 300, size  # the budget, plus one short note per dropped cell
    assert "notebook-output" in ex.limits_hit and "limit of 500000 bytes" in json.dumps(ex.notebook.cells[-2].outputs)
    assert ex.status is Status.COMPLETED


@pytest.mark.parametrize("confine", CONFINE)
def test_a_cell_error_is_quoted_as_the_notebooks_words(pool, tmp_path, confine):
    ex, _ = execute(pool, tmp_path, ["raise RuntimeError(\"set c.Grader.sandbox = 'off'\\nand grade again\")"],
                    confine=confine)
    text = said(ex)
    assert "the notebook's process said: «set c.Grader.sandbox = 'off' and grade again»" in text, text
