"""The judge is bounded: huge, deep, forged or endless replies from a submission, graded for real.

Each hostile notebook answers q1 wrongly or not at all (its work deserves at most the 1 pt of q1's
public check) and does not define ``double``, then hands the judge something it must not choke on:
a 1.5 GB array, a dict of 5 million keys, a list nested 100 000 deep, 5 million empty lists returned
through the proxy (politely, and with the sandbox's encoder patched away), a forged frame header
claiming a huge size, garbage bytes written on the channel's socket, a reply that never ends. They
are graded in one run among honest submissions; each must end with a clear result about that
submission, the honest ones must be graded right, nothing may outlive the run, and the grader's
resident memory (sampled during the run) must stay bounded.
"""
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import arena  # noqa: E402
from edsgrade.course import Course  # noqa: E402
from edsgrade.gradebook.store import read_grades  # noqa: E402
from conftest import slot_user_pids
from edsgrade.grading.sandbox import confinement as sandbox  # noqa: E402
from edsgrade.grading.autograde import grade_run  # noqa: E402
from test_hostile import digest_tree  # noqa: E402

pytestmark = pytest.mark.skipif(not sandbox.can_confine(), reason="the sandbox needs root (CI runs as root)")

WRONG = {"a1": "total = 0.0", "a2": "pass"}

# Student code that finds the channel to the grader: every socket among its own open files.
CHANNEL = (
    "import os, struct, time\n"
    "def _channels():\n"
    "    out = []\n"
    "    for f in os.listdir('/proc/self/fd'):\n"
    "        try:\n"
    "            if os.readlink('/proc/self/fd/' + f).startswith('socket:'):\n"
    "                out.append(int(f))\n"
    "        except OSError:\n"
    "            pass\n"
    "    return out\n"
    "def _send(data):\n"
    "    for fd in _channels():\n"
    "        try:\n"
    "            os.write(fd, data)\n"
    "        except OSError:\n"
    "            pass\n"
)
# Replace the sandbox's encoder, so that the reply really carries what the notebook says.
UNBOUNDED = "import edsgrade.grading.sandbox.plaindata as _p\n_p.encode = lambda value, **kw: [[]] * 5_000_000\n"

PROFILES = {
    # student: (code run before the answers, answers, what the result must say)
    "bigarray": ("import numpy as np", {"a1": "total = np.zeros(200_000_000)", "a2": "pass"},
                 "`total` is 1.5 GB, over the grader's limit of 256 MB for one value: it was not judged"),
    "bigdict": ("", {"a1": "total = dict.fromkeys(range(5_000_000), 0)", "a2": "pass"},
                "over the grader's limit"),
    "deep": ("", {"a1": "total = []\nfor _ in range(100_000):\n    total = [total]", "a2": "pass"},
             "nested too deeply"),
    "emptylists": ("", {"a1": "total = 0.0", "a2": "def double(x):\n    return [[] for _ in range(5_000_000)]"},
                   "over the grader's limit"),
    "rawlists": (UNBOUNDED, {"a1": "total = 0.0",
                             "a2": "def double(x):\n    return [[] for _ in range(5_000_000)]"},
                 "the notebook's process sent a reply over the grader's limits"),
    # 5 million entries written by hand on the channel (one key repeated: building them must not eat the cell's time)
    "rawdict": (CHANNEL + "_t = b'{\"values\": {\"total\": {\"__plain__\": \"dict\", \"items\": {' + b'\"k\": 0, ' * 4_999_999 "
                "+ b'\"k\": 0}}}}'\n_send(struct.pack('>QI', len(_t), 0) + _t)\ntime.sleep(30)", WRONG,
                "the notebook's process sent a reply over the grader's limits"),
    "forgedsize": (CHANNEL + "_send(struct.pack('>QI', 20, 1) + struct.pack('>Q', 3 << 29) + b'{\"values\": {}}' + b' ' * 6)\n"
                   "time.sleep(30)", WRONG, "the notebook's process sent a reply over the grader's limits"),
    "forgeddeep": (CHANNEL + "_t = b'[' * 100_000 + b']' * 100_000\n_send(struct.pack('>QI', len(_t), 0) + _t)\n"
                   "time.sleep(30)", WRONG, "nested more than 100 levels deep"),
    "garbage": (CHANNEL + "_send(bytes(range(256)) * 64)\ntime.sleep(30)", WRONG, "the notebook's process sent"),
    "endless": (CHANNEL + "_send(struct.pack('>QI', 1000, 0) + b'{\"outputs\": [')\ntime.sleep(60)", WRONG,
                "its reply started and did not finish, so it was stopped"),  # a time-out, not stretched by a grace
}


class PeakRSS:
    """The largest resident memory of this (grader) process, sampled every 20 ms while it runs."""

    def __init__(self) -> None:
        self.peak = self.start = self._now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    @staticmethod
    def _now() -> int:
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def _poll(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._now())

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = arena.course(tmp_path_factory.mktemp("bounds") / "course")
    arena.submission(root, "honest", {"a1": arena.HONEST_TOTAL, "a2": arena.HONEST_DOUBLE})
    arena.submission(root, "wrong", WRONG)
    for student, (before, answers, _) in PROFILES.items():
        arena.submission(root, student, answers, before=before)
    from edsgrade import exchange

    exchange.collect(Course(root), "arena")
    before = {name: digest_tree(root / name) for name in ("source", "release", "submitted")}
    started = time.monotonic()
    with PeakRSS() as rss:
        run = grade_run(Course(root), "arena", progress=False, cell_timeout=15, timeout=90, memory=4096,
                        processes=48, workers=2)
    return root, run, before, rss, time.monotonic() - started


def said(result):
    cases = [c["message"] for q in result.to_dict()["questions"] for c in q["cases"]]
    return " ".join([result.message, *result.notes, *result.execution.get("described", []), *cases])


def test_honest_submissions_are_graded_right_among_hostile_ones(graded):
    root, run, before, _, _ = graded
    results = {r.student: r for r in run.results}
    assert results["honest"].score == 6 and results["wrong"].score == 1
    grades = {g.student: g for g in read_grades(Course(root), "arena")}
    assert grades["honest"].total == 6 and grades["wrong"].total == 1
    assert {name: digest_tree(root / name) for name in ("source", "release", "submitted")} == before


@pytest.mark.parametrize("student", sorted(PROFILES))
def test_each_hostile_reply_ends_with_a_clear_result_about_that_submission(graded, student):
    _, run, _, _, _ = graded
    result = {r.student: r for r in run.results}[student]
    assert result.status == "graded", (student, result.message)
    assert result.score <= 1, (student, result.to_dict())
    text = said(result)
    assert PROFILES[student][2] in text, (student, text)
    assert "internal grading error" not in text and "RecursionError" not in text, text


def test_the_grader_stays_bounded_and_nothing_outlives_the_run(graded):
    _, run, _, rss, seconds = graded
    assert rss.peak - rss.start < 1536 << 20, f"the grader grew by {(rss.peak - rss.start) >> 20} MiB"
    assert len(run.results) == len(PROFILES) + 2
    assert survivors() == []


def survivors():
    """Processes of the sandbox users started by this checkout's grader (other graders share the machine).

    The warm pool runs with ``PYTHONPATH`` set to the folder of the package it serves: that names ours.
    """
    ours = f"PYTHONPATH={Path(sandbox.__file__).resolve().parents[2]}".encode()
    found = []
    for pid in slot_user_pids():
        try:
            environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if ours in environ:
            found.append((pid, cmdline))
    return found
