"""Hostile submissions, graded in one run among honest ones (the sandbox and the judge, for real).

Each hostile notebook answers q1 wrongly (``total = 0.0``: 1 pt of public check) and does not
define ``double``, then tries something. None may score more than those 1 pt, change anyone else's
grade, touch the course files or the gradebook, or leave a process behind; its result must say
what happened. Runs as root (as CI does): the sandbox's users and namespaces are real.
"""
import hashlib
import socket
import threading

import nbformat
import pytest

import arena
from conftest import slot_user_pids
from edsgrade.course import Course
from edsgrade.gradebook.store import read_grades
from edsgrade.grading.sandbox import confinement as sandbox
from edsgrade.grading.autograde import grade_run

pytestmark = pytest.mark.skipif(not sandbox.can_confine(), reason="the sandbox needs root (CI runs as root)")

WRONG = {"a1": "total = 0.0", "a2": "pass"}


def _edit_metadata(nb):
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade_id") == "q1":
            meta["points"] = 100
            meta["checksum"] = "forged"
        if meta.get("grade_id") == "a1":
            meta["grade_id"] = "q2"


def _duplicate_test_cell(nb):
    tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "q1"]
    nb.cells.append(nbformat.from_dict(dict(tests[0])))


def _delete_test_cells(nb):
    nb.cells = [c for c in nb.cells if not c.metadata.get("nbgrader", {}).get("grade", False)]


def _unknown_kernel(nb):
    nb.metadata["kernelspec"] = {"name": "evil-kernel", "display_name": "Evil", "language": "python"}


def hostile_profiles(root, port):
    """student -> (code run before the wrong answers, notebook edit, what the result must mention)."""
    course_files = [root / "source" / "arena" / "arena.ipynb", root / "gradebook.db",
                    root / "submitted" / "honest" / "arena" / "arena.ipynb", root / "nbgrader_config.py"]
    touch = "\n".join(f"for f in [{str(p)!r}]:\n    try:\n        print(open(f).read()[:50]); os.remove(f)\n"
                      f"    except OSError as e:\n        print('no', e)" for p in course_files)
    return {
        "loop": ("while True:\n    pass", None, "did not finish within the time limit"),
        "memory": ("blob = bytearray(3 * 1024 ** 3)", None, "memory limit"),
        "forkbomb": ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
                     None, "time limit"),
        "sysexit": ("import sys\nsys.exit(0)", None, "SystemExit"),
        "osexit": ("import os\nos._exit(0)", None, "exited with code 0"),
        "segfault": ("import ctypes\nctypes.string_at(0)", None, "segmentation fault"),
        "bigprint": ("for _ in range(10 ** 6):\n    print('x' * 1000)", None, "output"),
        "sleeper": ("import time\ntime.sleep(1000)", None, "did not finish within the time limit"),
        "lingerer": ("import subprocess, threading, os, time\nsubprocess.Popen(['sleep', '1000'])\n"
                     "threading.Thread(target=time.sleep, args=(1000,)).start()\n"
                     "if os.fork() == 0:\n    os.setsid()\n    time.sleep(1000)", None, ""),
        "snooper": ("import os, shutil\n" + touch + f"\nshutil.rmtree({str(root)!r}, ignore_errors=True)", None, ""),
        "caller": (f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).send(b'leak')",
                   None, "Network is unreachable"),
        "patcher": ("import numpy, builtins\nnumpy.isclose = lambda *a, **k: True\nnumpy.allclose = lambda *a, **k: True\n"
                    "builtins.isinstance = lambda *a: True\nimport otter.test_files\n"
                    "otter.test_files.test_case.__call__ = lambda *a, **k: None", None, ""),
        "liar": ("class Liar:\n    __eq__ = lambda s, o: True\n    __array__ = lambda s, *a, **k: __import__('numpy').zeros(0)\n"
                 "    __float__ = lambda s: 0.0\n    __call__ = lambda s, *a, **k: s\n"
                 "total_liar = Liar()\ndouble = Liar()", None, ""),
        "forger": ("import json\nfor p in ['result.json', 'autograded/forger/arena/result.json', "
                   f"{str(root / 'autograded' / 'forger' / 'arena' / 'result.json')!r}]:\n    try:\n"
                   "        open(p, 'w').write(json.dumps({'score': 100}))\n    except OSError:\n        pass", None, ""),
        "metadata": ("", _edit_metadata, ""),
        "duplicate": ("", _duplicate_test_cell, "a copy of test cell q1 was found and ignored"),
        "deleter": ("", _delete_test_cells, "had been deleted"),
        "kernel": ("", _unknown_kernel, "evil-kernel"),
    }


def digest_tree(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p).encode() + p.read_bytes())
    return h.hexdigest()


def test_hostile_submissions_among_honest_ones(tmp_path):
    root = arena.course(tmp_path / "course")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.5)
    accepted = []

    def accept():
        while not stop.is_set():
            try:
                accepted.append(listener.accept())
            except OSError:
                pass

    stop = threading.Event()
    threading.Thread(target=accept, daemon=True).start()
    profiles = hostile_profiles(root, listener.getsockname()[1])

    arena.submission(root, "honest", {"a1": arena.HONEST_TOTAL, "a2": arena.HONEST_DOUBLE})
    arena.submission(root, "wrong", WRONG)
    for student, (code, edit, _) in profiles.items():
        arena.submission(root, student, WRONG, before=code, edit=edit)
    from edsgrade import exchange

    exchange.collect(Course(root), "arena")
    before = {name: digest_tree(root / name) for name in ("source", "release", "submitted")}
    run = grade_run(Course(root), "arena", progress=False, cell_timeout=3, timeout=20, memory=1024,
                    processes=48, workers=2)
    stop.set()
    results = {r.student: r for r in run.results}

    assert results["honest"].score == 6 and results["wrong"].score == 1
    for student, (_, _, evidence) in profiles.items():
        r = results[student]
        assert r.status == "graded", (student, r.message)
        assert r.score <= 1, (student, r.score, r.to_dict())
        assert r.max_score == 6, student
        said = " ".join([r.message, *r.notes, *r.execution.get("described", []), *r.execution.get("limits_hit", [])])
        assert evidence in said, (student, said)
    assert "memory" in results["memory"].execution["limits_hit"]
    assert "output" in results["bigprint"].execution["limits_hit"]
    assert not accepted  # no connection reached the listener on the host's loopback
    # course files, other submissions and the gradebook are untouched
    assert {name: digest_tree(root / name) for name in ("source", "release", "submitted")} == before
    grades = {g.student: g for g in read_grades(Course(root), "arena")}
    assert grades["honest"].total == 6 and grades["wrong"].total == 1
    assert all(grades[s].total <= 1 for s in profiles)
    forged = (root / "autograded" / "forger" / "arena" / "result.json").read_text()
    assert '"score": 100' not in forged
    # no process this run started survives (other graders on the machine may use the slots too)
    assert survivors() == []


def survivors():
    """Processes of the sandbox users that came from this test's grader (its Python, or `sleep`)."""
    import sys

    found = []
    for pid in slot_user_pids():
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if sys.executable in cmdline or cmdline.startswith("sleep"):
            found.append((pid, cmdline))
    return found
