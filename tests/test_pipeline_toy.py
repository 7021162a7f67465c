"""Every command of the CLI on a small assignment, as an instructor and students would use them."""
import csv
import json
import subprocess
import sys

import nbformat

from conftest import cli
from edsgrade.simulate.cohort import answer
from edsgrade.course import Course
from edsgrade.authoring.master import load_master


def ok(proc):
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_full_cycle_with_the_cli(toy_course):
    root = toy_course
    out = ok(cli(root, "build", "--all"))
    assert "built toy" in out and "2 autograded questions (5 pt)" in out
    release = root / "release" / "toy"
    assert (release / "tests" / "q1.py").is_file() and (root / "build" / "toy" / "autograder.zip").is_file()
    public = (release / "tests" / "q1.py").read_text()
    assert "mean_is_a_number" in public and "mean_matches_reference" not in public
    nb = nbformat.read(release / "toy.ipynb", as_version=4)
    assert 'grader.check("q1")' in [c.source for c in nb.cells]
    assert "edsgrade.authoring" not in json.dumps(nb)

    ok(cli(root, "release", "toy"))
    master = load_master(root / "source" / "toy" / "toy.ipynb")
    for student, questions in (("alice", None), ("bob", []), ("carol", ["q2"])):
        assert "fetched" in ok(cli(root, "fetch", "toy", "--student", student))
        path = root / "students" / student / "toy" / "toy.ipynb"
        nbformat.write(answer(nbformat.read(path, as_version=4), master, questions), path)
        assert "submitted" in ok(cli(root, "submit", "toy", "--student", student))
    assert "3 submissions" in ok(cli(root, "collect", "toy"))
    assert (root / "submitted" / "alice" / "toy" / "timestamp.txt").read_text().strip()

    ok(cli(root, "grade", "toy"))
    ok(cli(root, "feedback", "toy"))
    ok(cli(root, "grades", "toy", "--csv", str(root / "grades.csv")))
    rows = {r["student"]: r for r in csv.DictReader(open(root / "grades.csv"))}
    assert (rows["alice"]["q1"], rows["alice"]["q2"], rows["alice"]["total"]) == ("3", "2", "5")
    assert rows["bob"]["total"] == "0"
    assert (rows["carol"]["q1"], rows["carol"]["q2"]) == ("0", "2")
    assert list(rows["alice"]) == ["student", "q1", "q2", "why", "total", "max_score", "auto", "auto_max", "bonus",
                                   "bonus_max", "manual",
                                   "manual_max", "late_minutes", "penalty", "grade", "out_of", "status"]
    # the answer graded by hand is not marked yet: no grade, and the report says why
    assert rows["alice"]["grade"] == "" and "rubric pending: why" in rows["alice"]["status"]

    html = (root / "feedback" / "carol" / "toy" / "toy.html").read_text()
    assert "q2 — 2 / 2 points" in html and "mean_matches_reference" in html
    assert "hidden mean check failed" not in html and "ref.mean_value" not in html
    autograded = nbformat.read(root / "autograded" / "alice" / "toy" / "toy.ipynb", as_version=4)
    assert any("q1: 3 / 3 points" in o.get("text", "") for c in autograded.cells for o in c.get("outputs", []))

    # a grader marks the interpretation answer by hand (as formgrader does, through the gradebook)
    with Course(root).gradebook() as gb:
        gb.find_grade("why", "toy", "toy", "alice").manual_score = 1
        gb.find_comment("why", "toy", "toy", "alice").manual_comment = "Right: the 9 pulls the mean up."
        gb.db.commit()
    ok(cli(root, "feedback", "toy", "--student", "alice"))
    html = (root / "feedback" / "alice" / "toy" / "toy.html").read_text()
    assert "Right: the 9 pulls the mean up." in html and "1 / 1 points" in html
    ok(cli(root, "grades", "toy", "--csv", str(root / "grades.csv")))
    rows = {r["student"]: r for r in csv.DictReader(open(root / "grades.csv"))}
    assert (rows["alice"]["why"], rows["alice"]["total"]) == ("1", "6")
    assert (rows["alice"]["grade"], rows["alice"]["out_of"], rows["alice"]["status"]) == ("20", "20", "final")
    assert "Final grade: 20.00 / 20" in html


def released_and_collected(root, student):
    """Build and release toy; ``student`` fetches and hands in the blank release; collect."""
    for args in (("build", "toy"), ("release", "toy"), ("fetch", "toy", "--student", student),
                 ("submit", "toy", "--student", student), ("collect", "toy")):
        ok(cli(root, *args))


def test_a_resubmission_replaces_the_collected_one(toy_course):
    root = toy_course
    released_and_collected(root, "dan")
    first = (root / "submitted" / "dan" / "toy" / "timestamp.txt").read_text()
    master = load_master(root / "source" / "toy" / "toy.ipynb")
    path = root / "students" / "dan" / "toy" / "toy.ipynb"
    nbformat.write(answer(nbformat.read(path, as_version=4), master), path)
    ok(cli(root, "submit", "toy", "--student", "dan"))
    ok(cli(root, "collect", "toy"))
    assert (root / "submitted" / "dan" / "toy" / "timestamp.txt").read_text() > first
    ok(cli(root, "grade", "toy", "--student", "dan"))
    ok(cli(root, "grade", "toy", "--student", "dan"))  # grading again keeps one result per student
    with Course(root).gradebook() as gb:
        subs = gb.assignment_submissions("toy")
        assert [(s.student.id, s.score) for s in subs] == [("dan", 5.0)]
        # the gradebook keeps the time of the submission, as collected
        stamp = (root / "submitted" / "dan" / "toy" / "timestamp.txt").read_text().strip()
        assert str(subs[0].timestamp) == stamp.replace(" UTC", "")


def test_errors_name_the_problem_and_what_to_do(toy_course, tmp_path):
    root = toy_course
    proc = cli(root, "build", "nope")
    assert proc.returncode == 1 and "no assignment 'nope'" in proc.stderr and "toy" in proc.stderr
    proc = cli(root, "release", "toy")
    assert proc.returncode == 1 and "edsgrade build toy" in proc.stderr
    ok(cli(root, "build", "toy"))
    proc = cli(root, "fetch", "toy", "--student", "eve")
    assert proc.returncode == 1 and "edsgrade release toy" in proc.stderr
    proc = cli(root, "collect", "toy")
    assert proc.returncode == 1 and "nothing to collect" in proc.stderr
    ok(cli(root, "release", "toy"))
    proc = cli(root, "submit", "toy", "--student", "eve")
    assert proc.returncode == 1 and "fetch the assignment first" in proc.stderr
    proc = cli(root, "feedback", "toy")
    assert proc.returncode == 1 and "edsgrade grade toy" in proc.stderr
    proc = cli(root, "grade", "toy", "--student", "eve")
    assert proc.returncode == 1 and "edsgrade collect toy" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "edsgrade", "build", "toy"], cwd=tmp_path.parent.parent,
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "--course-dir" in proc.stderr


def test_build_refuses_a_release_that_leaks_a_secret(toy_course):
    root = toy_course
    # an instructor's note left beside the master, holding a line of the solution
    (root / "source" / "toy" / "notes.txt").write_text("remember: secret_helper_line = 42\nsecret_helper_line = 42\n")
    proc = cli(root, "build", "toy")
    assert proc.returncode == 1
    assert "refusing to release toy" in proc.stderr and "notes.txt" in proc.stderr
    assert not (root / "release" / "toy").exists()


def test_build_refuses_a_master_whose_solution_fails_its_tests(toy_course):
    path = toy_course / "source" / "toy" / "toy.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[2].source = nb.cells[2].source.replace("float(np.mean(values))", "[1, 2]")
    nbformat.write(nb, path)
    proc = cli(toy_course, "build", "toy")
    assert proc.returncode == 1 and "mean_is_a_number fails on the reference solution" in proc.stderr


def test_grading_refuses_a_master_changed_since_its_build(toy_course):
    root = toy_course
    released_and_collected(root, "fay")
    path = root / "source" / "toy" / "toy.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].source += " (edited)"
    nbformat.write(nb, path)
    proc = cli(root, "grade", "toy")
    assert proc.returncode == 1 and "changed since it was built" in proc.stderr


def test_a_grader_failure_on_one_submission_is_recorded_and_the_run_goes_on(toy_course, monkeypatch):
    from edsgrade.grading import autograde

    root = toy_course
    released_and_collected(root, "gil")
    ok(cli(root, "fetch", "toy", "--student", "hal"))
    ok(cli(root, "submit", "toy", "--student", "hal"))
    ok(cli(root, "collect", "toy"))
    from edsgrade.grading.engine import Engine

    real = Engine._grade

    def failing_for_gil(self, student, *args):
        if student == "gil":  # stands for a bug of the grader met on one submission only
            raise RuntimeError("boom")
        return real(self, student, *args)

    monkeypatch.setattr(Engine, "_grade", failing_for_gil)
    results = {r.student: r for r in autograde.grade_run(Course(root), "toy", progress=False).results}
    assert results["gil"].status == "error" and "internal grading error (RuntimeError: boom)" in results["gil"].message
    assert results["hal"].status == "graded"
    assert autograde.read_result(Course(root), "gil", "toy").status == "error"
