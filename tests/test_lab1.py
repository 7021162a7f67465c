"""lab1-calibration through the whole pipeline, with a cohort of typical submissions.

One module-scoped course (``labkit.run_lab`` on the session's build): release, every student
fetches, answers and submits through the local exchange, collect, grade, feedback. The tests then
check what each party relies on; the invariants every lab shares (solution full, release 0, no leak,
small data, the demo cohort's order) are in ``test_labs_common.py``.
"""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from nbclient import NotebookClient

from edsgrade.simulate.cohort import answer_cells, solution_of
from edsgrade.report import write_csv
from labkit import replaced, run_lab, scores

A = "lab1-calibration"
COHORT = {"full": "full", "partial": "partial", "blank": "blank", "raises": "raises", "loops": "never-finishes",
          "edits": "edits-test-cell", "deletes": "deletes-test-cells", "corrupt": "corrupt"}

# Alternative correct answers (numpy polyfit instead of scikit-learn and the reverse, numpy floats
# instead of Python floats, a list instead of an array) must get full marks.
ALTERNATIVE = {
    "a4": 'lin_slope, lin_intercept = np.polyfit(calib["turbidity"], calib["ssc"], 1)\n'
          'fitted = lin_slope * calib["turbidity"] + lin_intercept\n'
          'lin_r2 = 1 - np.sum((calib["ssc"] - fitted) ** 2) / np.sum((calib["ssc"] - calib["ssc"].mean()) ** 2)',
    "a6": "from sklearn.linear_model import LinearRegression\n"
          'X_log = np.log(calib[["turbidity"]].to_numpy())\n'
          'y_log = np.log(calib["ssc"].to_numpy())\n'
          "fit = LinearRegression().fit(X_log, y_log)\n"
          "loglog_b = fit.coef_[0]\n"
          "loglog_a = np.exp(fit.intercept_)\n"
          "loglog_r2 = fit.score(X_log, y_log)\n"
          "loglog_smearing = np.exp(y_log - fit.predict(X_log)).mean()",
}
# Typical wrong answers: axes swapped in the linear fit; the test set leaking into training.
WRONG = {
    "a4": 'lin_slope, lin_intercept = np.polyfit(calib["ssc"], calib["turbidity"], 1)\n'
          'fitted = lin_slope * calib["ssc"] + lin_intercept\n'
          'lin_r2 = 1 - np.sum((calib["turbidity"] - fitted) ** 2) / np.sum((calib["turbidity"] - calib["turbidity"].mean()) ** 2)',
}


def leaky_a9(master) -> str:
    return replaced(solution_of(master, "a9"), 'LinearRegression().fit(train[["turbidity"]], train["ssc"])',
                    'LinearRegression().fit(calib[["turbidity"]], calib["ssc"])')


def own_answers(course, master) -> dict[str, dict[str, str]]:
    as_list = solution_of(master, "a5") + "\nransac_inlier_mask = [bool(v) for v in ransac_inlier_mask]  # a list"
    return {"alternative": {**ALTERNATIVE, "a5": as_list}, "wrong": {**WRONG, "a9": leaky_a9(master)}}


@pytest.fixture(scope="module")
def lab1(lab_builds, tmp_path_factory) -> SimpleNamespace:
    return run_lab(lab_builds, tmp_path_factory.mktemp("lab1"), A, profiles=COHORT, answers=own_answers, cell_timeout=15)


def test_the_master_runs_top_to_bottom_within_a_minute(lab1):
    assert lab1.report.master_seconds < 60
    assert lab1.report.questions >= 8
    assert lab1.master.max_auto == 23  # the solution gets them all: test_labs_common.py


def test_partial_answer_gets_exactly_the_points_of_its_questions(lab1):
    answered = [q.grade_id for q in lab1.master.questions[: len(lab1.master.questions) // 2]]
    got = scores(lab1.results["partial"])
    for q in lab1.master.questions:
        assert got[q.grade_id] == (q.points if q.grade_id in answered else 0), q.grade_id


def test_alternative_correct_approaches_get_full_marks(lab1):
    assert lab1.results["alternative"].score == lab1.master.max_auto


def test_typical_mistakes_lose_the_right_points(lab1):
    got = scores(lab1.results["wrong"])
    assert got["q4"] == 0.5  # public sanity check passes, least-squares and reference checks fail
    assert got["q9"] == 1  # a test-set leak: the public shape check passes, the hidden scores differ
    assert got["q10"] == 2  # the flood load by the (wrong) linear calibration of q4 differs; the rest is right
    others = [q for q in lab1.master.questions if q.grade_id not in ("q4", "q9", "q10")]
    assert all(got[q.grade_id] == q.points for q in others)


def test_broken_submissions_end_with_a_clear_recorded_result(lab1):
    r = lab1.results
    assert r["corrupt"].status == "invalid" and "not a valid notebook" in r["corrupt"].message
    shown = nbformat.read(lab1.root / "autograded" / "corrupt" / A / f"{A}.ipynb", as_version=4)  # for formgrader
    assert shown.cells[0].source.startswith("**Not graded:**")
    # the student's own words, quoted and labelled as the notebook's (never read as the grader's)
    assert "raised ValueError (the notebook's process said: «I do not know how to do this yet»)" in r["raises"].message
    assert "did not finish within the time limit" in r["loops"].message
    assert r["deletes"].score == lab1.master.max_auto
    assert any("had been deleted; it was restored" in n for n in r["deletes"].notes)
    assert any("had been edited" in n for n in r["edits"].notes)
    assert r["edits"].score == r["partial"].score  # faking a test cell gains nothing
    middle = lab1.master.questions[len(lab1.master.questions) // 2].grade_id
    for student in ("raises", "loops"):
        assert scores(r[student])[middle] == 0
        assert 0 < r[student].score < lab1.master.max_auto
    for student in r:
        assert (lab1.root / "autograded" / student / A / "result.json").is_file()


def test_gradebook_csv_and_nbgrader_export_agree(lab1, tmp_path):
    rows = write_csv(lab1.course, A, tmp_path / "grades.csv")
    by_student = {row.student: row for row in rows}
    assert set(by_student) == set(lab1.results)
    for student, result in lab1.results.items():
        assert by_student[student].total == result.score
        for q in result.questions:
            assert by_student[student].scores[q.grade_id] == q.points
    with open(tmp_path / "grades.csv") as f:
        table = {row["student"]: row for row in csv.DictReader(f)}
    export = tmp_path / "export.csv"
    done = subprocess.run([sys.executable, "-m", "nbgrader", "export", "--to", str(export)], cwd=lab1.root,
                          capture_output=True, text=True, env={**__import__("os").environ,
                                                               "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    with open(export) as f:
        exported = {row["student_id"]: row for row in csv.DictReader(f)}
    assert set(exported) == set(table)
    for student, row in exported.items():
        assert float(row["score"]) == float(table[student]["total"]) == lab1.results[student].score


def test_stock_otter_run_gives_the_same_scores(lab1, tmp_path):
    zip_path = lab1.course.build_dir(A) / "autograder.zip"
    for student in ("full", "blank", "partial"):
        out = tmp_path / student
        out.mkdir()
        subm = tmp_path / f"{student}.ipynb"
        shutil.copy(lab1.root / "submitted" / student / A / f"{A}.ipynb", subm)
        done = subprocess.run([sys.executable, "-m", "otter", "run", "-a", str(zip_path), "-o", str(out), str(subm)],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        otter = {t["name"]: t["score"] for t in json.loads((out / "results.json").read_text())["tests"] if "score" in t}
        assert otter == scores(lab1.results[student]), student


def test_feedback_shows_points_and_public_messages_but_never_hidden_code(lab1):
    secret = lab1.master.secret_lines()
    for student in lab1.results:
        html = (lab1.root / "feedback" / student / A / f"{A}.html").read_text()
        assert f"feedback for {student}" in html
        leaked = [line for line in secret if len(line) > 12 and line in html]
        assert not leaked, (student, leaked[:3])
    html = (lab1.root / "feedback" / "wrong" / A / f"{A}.html").read_text()
    assert "q4 — 0.5 / 2 points" in html
    assert "linear_fit_matches_reference" in html  # a hidden case, by name
    assert "differs from the reference" not in html  # ... but not its message


def test_a_test_cell_checks_public_cases_in_the_student_notebook(lab1, tmp_path):
    for student, expect in (("full", "q4 results: All test cases passed!"), ("blank", "q4 results:")):
        work = tmp_path / student
        shutil.copytree(lab1.course.release_dir(A), work)
        nb = nbformat.read(lab1.root / "submitted" / student / A / f"{A}.ipynb", as_version=4)
        NotebookClient(nb, timeout=120, allow_errors=True, resources={"metadata": {"path": str(work)}}).execute()
        outputs = {c.metadata["nbgrader"]["grade_id"]: json.dumps(c.outputs) for c in nb.cells
                   if c.source.startswith("grader.check")}
        assert expect in outputs["q4"]
        if student == "blank":
            assert "All test cases passed" not in outputs["q4"]
            assert "linear_fit_values_are_sane" in outputs["q4"]  # the failing public case is named


def test_answer_cells_belong_to_their_questions(lab1):
    owners = answer_cells(lab1.master)
    assert owners["q1"] == ["a1"] and owners["q10"] == ["a10"]
