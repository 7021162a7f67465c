"""The judge trusts only what it observed, and is blind to the run (issue 12, parts 4 and 5).

Each hostile notebook runs in the real sandbox (as root, as CI does) from the real warm pool and
writes to its own channel, floods its outputs, stalls or records the judge's calls; the executor must
end each with a clear result of its own, labelled as the submission's, and nothing a called
function does may reach the notebook's later cells, outputs or files.
"""
import json
import os
import time

import nbformat
import pytest

from conftest import slot_user_pids
from edsgrade.grading.sandbox import confinement as sandbox
from edsgrade.grading.sandbox.executor import Ending, SandboxExecutor, Status
from edsgrade.grading.judge import StudentCodeError, proxy_values
from edsgrade.grading.sandbox.pool import WarmPool

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
    ex, _ = execute(pool, tmp_path, [CHANNEL + "chan.sendall(struct.pack('>QI', len(b), 0) + b) if (b := %r) else None" % forged,
                                     "x = 1"], confine=confine)
    assert ex.status is not Status.FAILED and ex.ending is not Ending.SETUP_FAILED
    assert "could not be set up" not in said(ex) and "c.Grader.sandbox" not in said(ex)


@pytest.mark.parametrize("confine", CONFINE)
def test_a_real_set_up_failure_reaches_the_grader_on_the_templates_own_pipe(pool, tmp_path, confine):
    """A limit the notebook's process cannot set (confined: PID 2, inside its PID namespace) fails its set-up:
    the grader hears it from the warm template, as the sandbox's failure, and no cell is run."""
    from edsgrade.grading.sandbox.confinement import Limits

    ex, _ = execute(pool, tmp_path, ["print('never run')"], confine=confine, limits=Limits(open_files=1 << 40))
    assert ex.status is Status.FAILED and ex.ending is Ending.SETUP_FAILED, ex.summary()
    assert "the sandbox could not be set up" in said(ex) and "setrlimit" in said(ex), said(ex)
    assert "never run" not in json.dumps([c.outputs for c in ex.notebook.cells])


@pytest.mark.parametrize("confine", CONFINE)
@pytest.mark.parametrize("frame", ["b'garbage!' * 3", "struct.pack('>QI', 1 << 60, 0)",
                                   "struct.pack('>QI', 100, 0) + b'{\"a\": '",
                                   "(lambda b: struct.pack('>QI', len(b), 0) + b)(b'[' * 200000 + b']' * 200000)"])
def test_a_malformed_reply_ends_as_a_clear_result_about_the_submission(pool, tmp_path, confine, frame):
    ex, _ = execute(pool, tmp_path, ["x = 1", CHANNEL + f"chan.sendall({frame})\nimport time\ntime.sleep(60)",
                                     "y = 2"], confine=confine)
    # a frame cut short cannot be told from a slow one before its deadline: that one ends as a time-out
    assert ex.status in (Status.DIED, Status.TIMEOUT), ex.summary()
    assert ex.ending in (Ending.MALFORMED_REPLY, Ending.CELL_TIMEOUT, Ending.NOTEBOOK_TIMEOUT), ex.summary()
    text = said(ex)
    assert "malformed reply" in text or "over the grader's limits" in text or "time limit" in text, text
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


@pytest.mark.skipif(not sandbox.can_confine(), reason="the PID namespace, cgroup and seccomp filter need root")
def test_a_snapshot_stays_in_the_submissions_namespace_and_group_and_is_stricter(pool, tmp_path):
    """The snapshot is a fork of PID 2: same PID namespace and cgroup, the sandbox's filter plus its own."""
    probe = ("import os\n"
             "def _state():\n"
             "    status = open('/proc/self/status').read().splitlines()\n"
             "    filters = [int(l.split()[1]) for l in status if l.startswith('Seccomp_filters:')]\n"
             "    return [os.getpid(), open('/proc/self/cgroup').read(), filters[0] if filters else -1]\n"
             "def _fork():\n"
             "    try:\n        kid = os.fork()\n    except OSError as exc:\n        return type(exc).__name__\n"
             "    if kid == 0:\n        os._exit(0)\n    os.waitpid(kid, 0)\n    return 'forked'\n"
             "def probe(x):\n    return _state() + [_fork()]\n"
             "main = _state() + [_fork()]")
    got = []

    def checkpoint(gid, session):
        values = proxy_values(session.capture(["main", "probe"]), session)
        got.append((values["main"], values["probe"](1)))
        return gid

    ex, _ = execute(pool, tmp_path, [probe], checkpoint, confine=True)
    assert ex.status is Status.COMPLETED, ex.summary()
    (pid, group, filters, forked), (spid, sgroup, sfilters, sforked) = got[0]
    assert pid == 2 and 2 < spid < 100, (pid, spid)  # numbered inside the submission's own PID namespace
    assert sgroup == group  # the same control group: its memory and processes count with the notebook's
    assert forked == "forked" and sforked == "PermissionError"  # isolation's filter allows fork; the seal denies it
    if ex.isolation.get("seccomp"):
        assert filters >= 1 and sfilters == filters + 1  # the sandbox's filter stays; the seal stacks its own


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


# -- graded for real, among honest submissions, through the CLI ---------------------------------
# One course, one `edsgrade grade` run (as root: the real sandbox), shared by the checks below. Each
# hostile notebook answers q1 wrongly (1 pt of public check) and tries one thing; its own work is
# worth what ``DESERVES`` says. The hidden inputs of q2 are arena's ``double([1.5, -2.25, 1e6])``.
MARKUP = "[/x] [bold]closing[/bold] [/]"
WRONG = {"a1": "total = 0.0", "a2": "pass"}
RECORDING_DOUBLE = ("import os\nseen = []\nclass Box:\n    kept = []\n"
                    "def double(x):\n    seen.append(x)\n    Box.kept.append(x)\n    os.environ['LEAK'] = repr(x)\n"
                    "    for name in ('leak.txt', '/tmp/leak.txt'):\n        try:\n"
                    "            open(name, 'a').write(repr(x))\n        except OSError:\n            pass\n"
                    "    return 2 * np.asarray(x, dtype=float)")
PRINT_RECORDED = ("import os\nprint('recorded:', seen, Box.kept, os.environ.get('LEAK'),\n"
                  "      [open(n).read() for n in ('leak.txt', '/tmp/leak.txt') if os.path.exists(n)])")


def _forge(frame: str, then: str = "") -> str:
    return CHANNEL + f"chan.sendall({frame})\n" + then


def _append(*sources):
    def edit(nb):
        nb.cells.extend(nbformat.v4.new_code_cell(s) for s in sources)
    return edit


def _prepend(*sources):
    def edit(nb):
        nb.cells[1:1] = [nbformat.v4.new_code_cell(s) for s in sources]
    return edit


def _markup_everywhere(nb):
    nb.metadata["kernelspec"] = {"name": MARKUP, "display_name": MARKUP, "language": "python"}
    nb.cells.insert(1, nbformat.v4.new_code_cell(f"print({MARKUP!r})\nraise RuntimeError({MARKUP!r})"))


FORGED = json.dumps({"fatal": "set c.Grader.sandbox = 'off' and grade again",
                     "setup_error": "set c.Grader.sandbox = 'off' and grade again",
                     "error": {"ename": "SandboxError", "evalue": "set c.Grader.sandbox = 'off' and grade again"}})
#: student -> (answers, code before a1, notebook edit, points its own work deserves at most)
HOSTILE = {
    "forger": (WRONG, _forge("(lambda b: struct.pack('>QI', len(b), 0) + b)(%r)" % FORGED.encode()), None, 1),
    "garbage": (WRONG, _forge("b'garbage!' * 3"), None, 1),
    "huge": (WRONG, _forge("struct.pack('>QI', 1 << 60, 0)"), None, 1),
    "truncated": (WRONG, _forge("struct.pack('>QI', 100, 0) + b'{\"a\": '", "import time\ntime.sleep(60)"), None, 1),
    "deep": (WRONG, _forge("(lambda b: struct.pack('>QI', len(b), 0) + b)(b'[' * 200000 + b']' * 200000)"), None, 1),
    "recorder": ({"a1": "total = 0.0", "a2": RECORDING_DOUBLE}, "", _append(PRINT_RECORDED), 4),
    "sleeper": ({"a1": "total = 0.0", "a2": "import time\ndef double(x):\n    time.sleep(2.8)\n"
                 "    return 2 * np.asarray(x, dtype=float)"}, "",
                _prepend(*["import time\ntime.sleep(2.8)"] * 3), 2),
    "flood": (WRONG, "", _prepend(*["print('y' * 30000)"] * 300), 1),
    "markup": (WRONG, "", _markup_everywhere, 1),
    "exiter": ({"a1": "total = 0.0", "a2": "import os, signal\ndef double(x):\n"
                "    try:\n        os.kill(os.getppid(), signal.SIGKILL)\n    except OSError:\n        pass\n"
                "    os._exit(3)"}, "", _append("print('still', 41 + 1)"), 1),
    "selfkill": ({"a1": "total = 0.0", "a2": "import os, signal\ndef double(x):\n"
                  "    os.kill(os.getpid(), signal.SIGKILL)"}, "", _append("print('still', 41 + 1)"), 1),
}
TIMEOUT, CELL_TIMEOUT, OUTPUT_BUDGET = 12, 3, 1_000_000


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    import arena
    from conftest import cli
    from edsgrade import exchange
    from edsgrade.course import Course

    if not sandbox.can_confine():
        pytest.skip("grading among honest submissions needs the real sandbox (root), as CI has")
    root = arena.course(tmp_path_factory.mktemp("channel") / "course")
    with open(root / "nbgrader_config.py", "a") as f:
        f.write(f"\nc.Grader.notebook_output_limit = {OUTPUT_BUDGET}\n")
    arena.submission(root, "honest", {"a1": arena.HONEST_TOTAL, "a2": arena.HONEST_DOUBLE})
    arena.submission(root, "honest2", {"a1": arena.HONEST_TOTAL, "a2": arena.HONEST_DOUBLE})
    arena.submission(root, "wrong", WRONG)
    for student, (answers, before, edit, _) in HOSTILE.items():
        arena.submission(root, student, answers, before=before, edit=edit)
    exchange.collect(Course(root), "arena")
    from test_hostile import digest_tree

    before = {name: digest_tree(root / name) for name in ("source", "release", "submitted")}
    started = time.monotonic()
    run = cli(root, "grade", "arena", "--cell-timeout", str(CELL_TIMEOUT), "--timeout", str(TIMEOUT),
              "--workers", "2")
    seconds = time.monotonic() - started
    feedback = cli(root, "feedback", "arena")
    results = {s: json.loads((root / "autograded" / s / "arena" / "result.json").read_text())
               for s in ["honest", "honest2", "wrong", *HOSTILE]}
    return {"root": root, "run": run, "feedback": feedback, "results": results, "before": before,
            "seconds": seconds, "digest": digest_tree}


def orphans():
    """Processes of the sandbox users that no live grader answers for (this run's grader has exited).

    Other engineers' and CI jobs' gradings may hold slots at the same time: a process whose ancestors
    include a live warm template (run by root) is theirs; any other one outlived its grading.
    """
    def stat(pid):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[1])

    found = []
    for pid in slot_user_pids():
        try:
            parent, owned = pid, False
            while parent > 1 and not owned:
                parent = stat(parent)
                cmd = open(f"/proc/{parent}/cmdline", "rb").read()
                owned = os.stat(f"/proc/{parent}").st_uid == 0 and b"edsgrade.grading.sandbox.template" in cmd
            if not owned:
                found.append((pid, open(f"/proc/{pid}/cmdline", "rb").read()[:200]))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return found


def _words(result):
    return " ".join([result["message"], *result["notes"], *result["execution"].get("described", []),
                     *result["execution"].get("limits_hit", []), json.dumps(result["questions"])])


def test_the_grading_run_finishes_and_prints_every_text_as_text(graded):
    run = graded["run"]
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "MarkupError" not in run.stderr and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert "[/x]" in run.stdout  # the markup student's words, printed as they are (its note and its message)
    assert graded["feedback"].returncode == 0, graded["feedback"].stderr[-3000:]


def test_honest_grades_and_course_files_are_untouched(graded):
    from edsgrade.course import Course
    from edsgrade.gradebook.store import read_grades

    results = graded["results"]
    assert results["honest"]["score"] == 6 and results["honest2"]["score"] == 6 and results["wrong"]["score"] == 1
    grades = {g.student: g.total for g in read_grades(Course(graded["root"]), "arena")}
    assert grades["honest"] == 6 and grades["honest2"] == 6 and grades["wrong"] == 1
    digest = graded["digest"]
    assert {n: digest(graded["root"] / n) for n in ("source", "release", "submitted")} == graded["before"]
    assert orphans() == []


@pytest.mark.parametrize("student", list(HOSTILE))
def test_a_hostile_submission_scores_only_its_own_work(graded, student):
    r = graded["results"][student]
    assert r["status"] == "graded", (student, r["message"])
    assert r["max_score"] == 6 and r["score"] <= HOSTILE[student][3], (student, r["score"], r)


@pytest.mark.parametrize("student", ["forger", "garbage", "huge", "truncated", "deep"])
def test_what_the_channel_carried_ends_as_a_result_about_the_submission(graded, student):
    r = graded["results"][student]
    words = _words(r)
    assert "internal" not in words and "could not be set up" not in words, words
    assert r["execution"]["ending"] != "setup-failed" and r["execution"]["status"] != "failed", r["execution"]
    # the forged text never reads as the grader's own advice: at most as the notebook's quoted words
    assert words.count("c.Grader.sandbox") == words.count("the notebook's process said: «set c.Grader.sandbox"), words
    if student in ("garbage", "huge", "deep"):
        assert r["execution"]["ending"] == "malformed-reply", r["execution"]
        # the protocol's typed error, in the grader's words (malformed, or over the grader's limits)
        assert ("the notebook's process sent a malformed reply" in words
                or "the notebook's process sent a reply over the grader's limits" in words), words
    if student == "truncated":  # a frame cut short is a reply that never finished: the cell's time limit
        assert "cell-time" in r["execution"]["limits_hit"], r["execution"]
        assert "did not finish within the time limit" in words, words
        assert r["execution"]["seconds"] <= CELL_TIMEOUT + 6, r["execution"]  # not stretched by the half frame


def test_the_judges_hidden_inputs_never_reach_autograded_or_feedback(graded):
    root = graded["root"]
    r = graded["results"]["recorder"]
    assert r["score"] == 4, r  # its double is right: the calls worked, in the snapshot
    nb = (root / "autograded" / "recorder" / "arena" / "arena.ipynb").read_text()
    assert "recorded: [] [] None []" in nb, nb[-3000:]  # the later cell ran, and saw nothing recorded
    for folder in (root / "autograded" / "recorder", root / "feedback" / "recorder"):
        files = [p for p in folder.rglob("*") if p.is_file()]
        assert files, folder
        for p in files:
            text = p.read_bytes().decode(errors="replace")
            assert "-2.25" not in text and "1000000.0" not in text and "1e+06" not in text, (p, text[:2000])


def test_proxy_calls_are_counted_against_the_notebooks_time(graded):
    r = graded["results"]["sleeper"]
    assert "notebook-time" in r["execution"]["limits_hit"], r["execution"]
    assert r["execution"]["seconds"] <= TIMEOUT + 1, r["execution"]
    assert r["seconds"] <= TIMEOUT + 8, r["seconds"]  # not 3 cells + every call's full cell limit
    assert "time limit" in _words(r)


def test_outputs_are_bounded_for_the_whole_notebook_in_the_autograded_copy(graded):
    r = graded["results"]["flood"]
    path = graded["root"] / "autograded" / "flood" / "arena" / "arena.ipynb"
    assert path.stat().st_size < OUTPUT_BUDGET + 300 * 400 + 100_000, path.stat().st_size
    assert "notebook-output" in r["execution"]["limits_hit"]
    assert "c.Grader.notebook_output_limit" in path.read_text()


def test_markup_in_outputs_notes_and_messages_is_kept_as_the_submissions_text(graded):
    r = graded["results"]["markup"]
    assert f"the notebook's process said: «{MARKUP}»" in _words(r), _words(r)


@pytest.mark.parametrize("student", ["exiter", "selfkill"])
def test_a_process_that_dies_in_the_judges_call_leaves_the_run_going(graded, student):
    root = graded["root"]
    r = graded["results"][student]
    assert "stopped during the call" in _words(r), _words(r)
    assert r["execution"]["status"] == "completed", r["execution"]
    nb = (root / "autograded" / student / "arena" / "arena.ipynb").read_text()
    assert "still 42" in nb


def test_a_student_id_that_looks_like_markup_gets_a_clear_error(graded):
    from conftest import cli

    run = cli(graded["root"], "grade", "arena", "--student", MARKUP)
    assert run.returncode != 0
    assert "MarkupError" not in run.stderr and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert "no collected submission" in run.stderr + run.stdout and "[/x]" in run.stderr + run.stdout


@pytest.mark.parametrize("evidence", [True, False])
def test_a_memory_ending_comes_from_the_graders_own_accounting(pool, tmp_path, evidence):
    """A SIGKILL is a memory ending only when the grader's accounting (the confinement's hook) says so."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import os, signal\nraise MemoryError('pretend')"),
                nbformat.v4.new_code_cell("os.kill(os.getpid(), signal.SIGKILL)"), nbformat.v4.new_code_cell("")]
    work = tmp_path / "work"
    work.mkdir()
    asked = []
    ex = SandboxExecutor(pool, cell_timeout=3, timeout=30, confine=CONFINE[-1],
                         memory_evidence=lambda jail: asked.append(jail) or evidence)
    result = ex.execute(nb, work, {2: "q"}, lambda gid, s: gid)
    assert asked and result.status is Status.DIED
    assert result.ending is (Ending.MEMORY if evidence else Ending.KILLED_BY_SIGNAL), result.summary()
    words = " ".join(p.describe() for p in result.problems)
    assert ("memory limit and was killed" in words) is evidence, words
    assert "the notebook's process said: «pretend»" in words  # its own claim, quoted, not the ending
