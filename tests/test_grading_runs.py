"""Grading runs: parallel workers, the journal (resume after kill -9, --force), Dask, variant data."""
import json
import os
import signal
import subprocess
import sys
import time

from pathlib import Path

import pytest

import arena
from conftest import REPO
from edsgrade import exchange
from edsgrade.course import Course
from edsgrade.gradebook.store import read_grades
from edsgrade.grading.autograde import grade_run
from edsgrade.grading.journal import path_of

FULL = {"a1": arena.HONEST_TOTAL, "a2": arena.HONEST_DOUBLE}
SLOW = "import time\ntime.sleep(0.4)"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One built and released arena course; each test grades in its own copy."""
    return arena.course(tmp_path_factory.mktemp("arena") / "course")


@pytest.fixture
def course_copy(built, tmp_path):
    import shutil

    arena.register()
    return Path(shutil.copytree(built, tmp_path / "course", symlinks=True))


def cohort(root, n, before=""):
    students = [f"s{i:02d}" for i in range(n)]
    for i, s in enumerate(students):
        answers = FULL if i % 2 == 0 else {"a1": arena.HONEST_TOTAL}
        arena.submission(root, s, answers, before=before)
    exchange.collect(Course(root), "arena")
    return students


def scores(root):
    return {g.student: g.total for g in read_grades(Course(root), "arena")}


def grade_cli(root, *args, **kwargs):
    """``edsgrade grade arena`` in a child process that knows the test dataset ``tiny``."""
    code = ("import sys; sys.path.insert(0, 'tests'); import arena; arena.register(); "
            "from edsgrade.cli import main; sys.exit(main(sys.argv[1:]))")
    return subprocess.Popen([sys.executable, "-c", code, "--course-dir", str(root), "-q", "grade", "arena", *args],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_a_run_killed_halfway_resumes_without_grading_anything_twice(course_copy):
    root = course_copy
    students = cohort(root, 10, before=SLOW)
    proc = grade_cli(root, "--workers", "1")
    journal = path_of(Course(root), "arena")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not journal.exists() or len(journal.read_text().splitlines()) < 3):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # kill -9 of the grader, halfway
    proc.wait()
    first = [json.loads(l)["student"] for l in journal.read_text().splitlines()]
    assert 3 <= len(first) < 10

    again = grade_cli(root, "--workers", "2")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    lines = [json.loads(l)["student"] for l in journal.read_text().splitlines()]
    assert sorted(lines) == students, "each submission graded exactly once over the two runs"
    assert f"{len(first)} already graded and unchanged" in out
    autograded = root / "autograded"
    for s in students:
        assert sorted(p.name for p in (autograded / s).iterdir()) == ["arena"], "no half-written folder left"
        assert json.loads((autograded / s / "arena" / "result.json").read_text())["score"] == (6 if int(s[1:]) % 2 == 0 else 3)
    assert scores(root) == {s: (6 if int(s[1:]) % 2 == 0 else 3) for s in students}

    forced = grade_cli(root, "--force")
    out, err = forced.communicate(timeout=300)
    assert forced.returncode == 0, err
    assert len(journal.read_text().splitlines()) == 20 and "graded 10 submission" in out


def test_two_workers_give_the_same_results_as_one(course_copy):
    root = course_copy
    students = cohort(root, 6, before=SLOW)
    one = grade_run(Course(root), "arena", progress=False, workers=1, force=True)
    two = grade_run(Course(root), "arena", progress=False, workers=2, force=True)
    assert [r.to_dict()["questions"] for r in one.results] == [r.to_dict()["questions"] for r in two.results]
    assert [r.student for r in two.results] == students
    assert two.wall < one.wall, (one.summary(), two.summary())


def test_dask_backend_on_a_real_scheduler_gives_the_same_results(course_copy):
    from distributed import LocalCluster

    root = course_copy
    students = cohort(root, 4)
    local = {r.student: r.to_dict()["questions"] for r in grade_run(Course(root), "arena", progress=False).results}
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, env=env) as cluster:
        proc = grade_cli(root, "--backend", "dask", "--scheduler", cluster.scheduler_address, "--force")
        out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "(dask, " in out
    remote = {s: json.loads((root / "autograded" / s / "arena" / "result.json").read_text())["questions"]
              for s in students}
    assert remote == local


def test_variant_data_fails_hard_coded_answers_and_passes_general_ones(tmp_path):
    root = arena.course(tmp_path / "course", variants=[11, 12])
    release_values = (root / "release" / "arena" / "data" / "values.txt").read_text()
    hard_coded = sum(float(v) for v in release_values.split())
    arena.submission(root, "general", FULL)
    arena.submission(root, "hardcoded", {"a1": f"total = {hard_coded!r}", "a2": arena.HONEST_DOUBLE})
    exchange.collect(Course(root), "arena")
    results = {r.student: r for r in grade_run(Course(root), "arena", progress=False).results}
    assert results["general"].score == 6 and results["general"].variant in (11, 12)
    assert results["hardcoded"].score == 4  # public check of q1 and all of q2: the hidden total is wrong
    # the hidden seeds never reach the release
    assert "variants" not in (root / "release" / "arena" / "arena.ipynb").read_text()
    for seed in (11, 12):
        assert (root / "build" / "arena" / "variants" / str(seed) / "reference.json").is_file()


def test_settings_come_from_the_config_and_the_master(course_copy):
    from edsgrade.grading.engine import GradingOptions
    from edsgrade.authoring.master import load_master

    root = course_copy
    config = root / "nbgrader_config.py"
    config.write_text(config.read_text() + "\nc.Grader.memory = 2048\n"
                      "c.Grader.assignments = {'arena': {'cell_timeout': 7}}\n")
    master = load_master(root / "source" / "arena" / "arena.ipynb")
    master.settings["timeout"] = 99
    options = GradingOptions.resolve(Course(root), master, cell_timeout=None, processes=10)
    assert (options.memory, options.cell_timeout, options.timeout, options.processes) == (2048, 7, 99, 10)
