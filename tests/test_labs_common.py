"""The invariants every lab shares, checked once for every lab of ``source/`` (scikit-learn's test_common.py).

- the release holds no line of a solution or of a hidden test, and no hidden case's name, in any file
  (binary data included), and neither does what a student fetched;
- the release is small (students download it; the course's data are generated, never shipped);
- graded through ``edsgrade demo`` (the session's demo run, builds shared with the lab tests): the
  solution gets every point of every question and the untouched release none, and the demo cohort
  comes out in the order its profiles promise.

What is particular to one lab (its cohort's alternative answers and typical mistakes, its data files,
its feedback) stays in that lab's ``test_labN.py``. A new folder in ``source/`` fails
:func:`test_every_assignment_of_the_course_is_covered` until it is added here or to the exam's tests.
"""
from __future__ import annotations

import pytest

from conftest import REPO
from edsgrade.simulate.demo import COHORT, DEMO_ASSIGNMENTS
from edsgrade.grading.engine import read_result
from edsgrade.authoring.leakcheck import find_leaks
from edsgrade.authoring.master import load_master
from labkit import lost

LABS = DEMO_ASSIGNMENTS
EXAMS = ("exam-hackathon",)  # never in the demo (as on an exam day): tests/test_exam.py holds its invariants
#: bytes a lab's whole release may weigh (students fetch it over the hub; the data are generated at build)
RELEASE_BYTES = {"lab4-lidar": 3e6, "lab5-deep-learning": 12e6}
DEFAULT_RELEASE_BYTES = 5e6
BY_PROFILE = {profile: student for student, profile in COHORT.items()}


def test_every_assignment_of_the_course_is_covered():
    found = sorted(p.name for p in (REPO / "source").iterdir() if (p / f"{p.name}.ipynb").is_file())
    assert found == sorted(LABS + EXAMS)


def hidden_names(master) -> set[str]:
    return {c.name for q in master.questions for c in q.cases if c.hidden}


def secrets_in(folder, master) -> list[str]:
    """Secret lines (nbgrader's own check) and hidden case names found in any file under ``folder``."""
    found = [str(leak) for leak in find_leaks(folder, master.secret_lines())]
    names = [n.encode() for n in hidden_names(master)]
    for path in (p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [f"{path.relative_to(folder)}: hidden case {n.decode()}" for n in names if n in data]
    return found


@pytest.mark.parametrize("lab", LABS)
def test_the_release_holds_no_solution_and_no_hidden_test(lab_builds, lab):
    lab_builds.ensure([lab])
    course = lab_builds.course
    master = load_master(course.master_path(lab))
    assert hidden_names(master), f"{lab} has no hidden case: the leak check would prove nothing"
    assert secrets_in(course.release_dir(lab), master) == []


@pytest.mark.parametrize("lab", LABS)
def test_the_release_is_small(lab_builds, lab):
    lab_builds.ensure([lab])
    release = lab_builds.course.release_dir(lab)
    size = sum(p.stat().st_size for p in release.rglob("*") if p.is_file())
    assert 0 < size < RELEASE_BYTES.get(lab, DEFAULT_RELEASE_BYTES), f"{lab}: release of {size / 1e6:.1f} MB"


@pytest.fixture(scope="module")
def demo(demo_run):
    proc = demo_run.proc
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return demo_run


def demo_results(demo, lab) -> dict[str, object]:
    """The demo's graded result of each profile (``"full"``, ``"blank"``...) for ``lab``."""
    results = {profile: read_result(demo.course, student, lab) for profile, student in BY_PROFILE.items()}
    missing = [p for p, r in results.items() if r is None]
    assert not missing, f"{lab}: no recorded result for {missing}"
    return results


@pytest.mark.parametrize("lab", LABS)
def test_the_solution_gets_every_point_and_the_release_none(demo, lab):
    master = load_master(demo.course.master_path(lab))
    r = demo_results(demo, lab)
    assert r["full"].score == master.max_auto > 0, lost(r["full"])
    assert all(q.points == q.max_points for q in r["full"].questions), lost(r["full"])
    assert r["blank"].score == 0 and all(q.points == 0 for q in r["blank"].questions)
    assert {q.grade_id for q in r["full"].questions} == {q.grade_id for q in master.questions}


@pytest.mark.parametrize("lab", LABS)
def test_the_demo_cohort_comes_out_in_order(demo, lab):
    master = load_master(demo.course.master_path(lab))
    r = demo_results(demo, lab)
    full = master.max_auto
    assert 0 < r["partial"].score < full, lost(r["partial"])
    for profile in ("raises", "never-finishes"):  # everything but the middle question's points
        assert 0 < r[profile].score < full, (profile, r[profile].message)
    assert r["edits-test-cell"].score == r["partial"].score  # faking a test cell gains nothing
    assert r["deletes-test-cells"].score == full  # deleted test cells are restored
    assert r["corrupt"].score == 0 and r["corrupt"].status == "invalid"


@pytest.mark.parametrize("lab", LABS)
def test_what_a_student_fetched_holds_no_secret(demo, lab):
    master = load_master(demo.course.master_path(lab))
    fetched = demo.root / "students" / BY_PROFILE["blank"] / lab
    assert (fetched / master.path.name).is_file()
    assert secrets_in(fetched, master) == []
