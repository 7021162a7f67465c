"""exam-hackathon end to end, as ``edsgrade exam-demo`` plays it: a simulated exam day for eleven students.

One course is built per module; the exam is opened (deadline in the gradebook), eleven students hand
in (see :mod:`edsgrade.simulate.examcohort`: the solution, another strong approach, a weak one, one that fits
on the blind wells, one without ``predictions.csv``, one late, one within the grace period, one whose
notebook runs past the time limit, a partial one, one whose code raises, the untouched release), the
exam is closed, every submission is graded in a single ``grade`` call, the rubric is marked, and
feedback and final grades are written. The tests check the automatic part, the release's secrecy,
the combined grades and the feedback.
"""
from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from conftest import cli, new_course
from edsgrade.build.release import build
from edsgrade.course import Course
from edsgrade.simulate.examcohort import CLASS, RUBRIC
from edsgrade.simulate.examdemo import run_exam_demo
from edsgrade.authoring.leakcheck import find_leaks
from edsgrade.authoring.master import load_master

A = "exam-hackathon"


@pytest.fixture(scope="module")
def exam(tmp_path_factory) -> SimpleNamespace:
    root = new_course(tmp_path_factory.mktemp("exam"), (A,))
    course = Course(root)
    # what the master leaves in source/ when the instructor runs it in Jupyter: never released
    (course.source_dir(A) / "predictions.csv").write_text("id,facies\n0,shale\n")
    report = build(course, A)
    lines: list[str] = []
    demo = run_exam_demo(course, progress=False, echo=lines.append)
    results = {r.student: r for r in demo.results}
    finals = {f.student: f for f in demo.grades}
    return SimpleNamespace(root=root, course=course, master=load_master(course.master_path(A)), report=report,
                           demo=demo, results=results, finals=finals, log="\n".join(lines))


def points(result) -> dict[str, float]:
    return {q.grade_id: q.points for q in result.questions}


def failed(result) -> dict[str, list[str]]:
    return {q.grade_id: [f"{c.name}: {c.message}" for c in q.cases if not c.passed] for q in result.questions
            if q.points < q.max_points}


def test_the_exam_master_is_complete_and_fast(exam):
    assert exam.report.master_seconds < 90
    assert exam.master.max_auto == 20
    rubric = {m.grade_id: m.points for m in exam.master.manual}
    assert rubric == {"reasoning": 4, "comparison": 4, "interpretation": 4, "clarity": 4, "critical-thinking": 4}
    assert exam.master.settings["exam"] == {"auto_share": 0.4, "duration_minutes": 240}
    # the check that sees the whole run is the last cell
    last = exam.master.notebook.cells[-1].metadata["nbgrader"]
    assert last["grade_id"] == "integrity"


def test_hidden_labels_never_reach_the_release_or_the_masters_run(exam):
    hidden = exam.course.build_dir(A) / "hidden"
    labels = pd.read_csv(hidden / "test_labels.csv")
    audit = pd.read_csv(hidden / "audit.csv")
    assert len(labels) > 500 and set(labels["facies"]) >= {"sandstone", "shale", "limestone"}
    sequence = ",".join(labels["facies"])
    rows = {f"{i},{f}" for i, f in zip(labels["id"], labels["facies"])}
    audit_rows = audit.drop(columns="facies").round(6).astype(str).agg(",".join, axis=1).head(30).tolist()
    folders = [exam.course.release_dir(A), exam.course.source_dir(A), exam.course.exchange_root,
               exam.course.student_home("alice"), exam.root / "submitted"]
    assert all(folder.is_dir() for folder in folders), folders
    for folder in folders:
        for path in (p for p in folder.rglob("*") if p.is_file()):
            assert "test_labels" not in path.name and "audit" not in path.name, path
            text = path.read_text(errors="replace")
            assert sequence[:2000] not in text, path
            # a labels file, in any row order (a constant guess matches some rows, never most)
            assert len(rows & set(text.splitlines())) < 0.6 * len(rows), path
    test_csv = pd.read_csv(exam.course.release_dir(A) / "data" / "test.csv")
    assert "facies" not in test_csv.columns and list(test_csv["id"]) == list(labels["id"])
    assert audit["well"].nunique() == 2 and not set(audit["well"]) & set(test_csv["well"])
    train = (exam.course.release_dir(A) / "data" / "train.csv").read_text()
    assert not [r for r in audit_rows if r in train]  # the audit wells are not in the training data
    # the master's own run saw the release's files only (its working copy is a copy of source/)
    assert not (exam.course.source_dir(A) / "hidden").exists()
    assert not list(exam.course.release_dir(A).rglob("predictions.csv"))
    assert find_leaks(exam.course.release_dir(A), exam.master.secret_lines()) == []


def test_the_solution_gets_every_automatic_point(exam):
    result = exam.results["alice"]
    assert result.score == 20, failed(result)


def test_another_strong_approach_gets_every_automatic_point(exam):
    result = exam.results["bruno"]
    assert result.score == 20, failed(result)


def test_a_weak_approach_loses_balanced_accuracy_points_only(exam):
    result = exam.results["carla"]
    got = points(result)
    assert 2 < got["predictions"] < 8, failed(result)  # a valid file, a low balanced accuracy
    assert got["results"] == 4 and got["integrity"] == 6, failed(result)
    assert got["figures"] == 2, failed(result)  # the exploration figure of the solution is kept
    assert got["predictions"] < points(exam.results["alice"])["predictions"]


def test_fitting_on_the_blind_wells_loses_the_leak_points(exam):
    result = exam.results["diego"]
    got = points(result)
    assert got["integrity"] == 2, failed(result)
    lost = [c for q in result.questions for c in q.cases if not c.passed]
    assert [c.name for c in lost] == ["blind_wells_never_used_to_fit"], failed(result)
    assert "blind wells are used to fit: code cell" in lost[0].message and "fit(...)" in lost[0].message


def test_no_predictions_file_loses_the_prediction_points(exam):
    result = exam.results["elena"]
    got = points(result)
    assert got["predictions"] == 0 and result.score == 12, failed(result)
    messages = [c.message for q in result.questions for c in q.cases if not c.passed]
    assert any("did not write predictions.csv" in m for m in messages), messages


def test_the_untouched_release_gets_nothing(exam):
    result = exam.results["kim"]
    assert result.score == 0, {q.grade_id: q.points for q in result.questions}


def test_the_exam_day_flags_late_submissions(exam):
    closed = exam.demo.closed
    assert sorted(a.student for a in closed.arrivals) == sorted(CLASS)
    assert {a.student: round(a.seconds_late / 60) for a in closed.late} == {"femi": 25, "gaia": 3}
    assert "5 min of grace" in closed.policy


def test_a_notebook_over_the_time_limit_loses_the_run_points_and_keeps_the_rest(exam):
    result = exam.results["hugo"]
    lost = [c.name for q in result.questions for c in q.cases if not c.passed]
    assert lost == ["notebook_runs_top_to_bottom_within_the_time_limit"], failed(result)
    assert result.score == 18 and "cell-time" in result.execution.get("limits_hit", []), result.execution


def test_partial_and_raising_notebooks_keep_what_they_produced(exam):
    for student in ("ines", "jules"):
        got = points(exam.results[student])
        assert got["predictions"] == 0 and got["results"] == 4, (student, failed(exam.results[student]))
        assert 0 < exam.results[student].score < 20


def expected_grade(student: str, auto: float) -> float:
    """The final grade the course's rules give (docs/exam.md): 40 % automatic, 60 % rubric, out of 20,
    then 10 % of the grade per started 10 minutes late after 5 minutes of grace."""
    who = CLASS[student]
    before = 20 * (0.4 * auto / 20 + 0.6 * sum(who.marks) / 20)
    late = max(0.0, who.minutes_after_deadline - 5)
    periods = -(-late // 10)
    return before * (1 - 0.1 * periods)


def test_final_grades_combine_both_parts_and_the_late_penalty(exam):
    assert set(exam.finals) == set(CLASS)
    for student, final in exam.finals.items():
        assert final.status == "final" and final.scale == 20, (student, final.status_text())
        assert final.manual == pytest.approx(sum(CLASS[student].marks)) and final.manual_max == 20
        assert final.auto == pytest.approx(exam.results[student].score)
        assert final.grade == pytest.approx(expected_grade(student, final.auto)), student
    grades = {s: f.grade for s, f in exam.finals.items()}
    # the same hand-in, late, loses 20 % (two started periods after the grace); within the grace, nothing
    assert exam.finals["femi"].penalty == pytest.approx(0.2 * exam.finals["femi"].before_penalty)
    assert exam.finals["gaia"].penalty == 0 and exam.finals["gaia"].late
    ranking = sorted(grades, key=grades.get, reverse=True)
    assert ranking[:2] == ["alice", "bruno"] and ranking[-1] == "kim", grades
    assert grades["femi"] < grades["alice"] and grades["carla"] < grades["bruno"], grades
    assert grades["diego"] < grades["alice"] and grades["elena"] < grades["alice"], grades


def test_rubric_through_the_cli_then_grades_and_feedback(exam, tmp_path):
    root = exam.root
    proc = cli(root, "rubric", A, "--student", "hugo", "--criterion", "clarity", "--points", "4",
               "--comment", "Clear plots; now budget your search.")
    assert proc.returncode == 0 and "clarity: 4 / 4" in proc.stdout, proc.stdout + proc.stderr
    bad = cli(root, "rubric", A, "--student", "hugo", "--criterion", "style", "--points", "1")
    assert bad.returncode == 1 and "critical-thinking" in bad.stderr, bad.stderr  # lists the valid criteria
    too_many = cli(root, "rubric", A, "--student", "hugo", "--criterion", "clarity", "--points", "5")
    assert too_many.returncode == 1 and "4" in too_many.stderr, too_many.stderr
    proc = cli(root, "grades", A, "--csv", str(tmp_path / "grades.csv"))
    assert proc.returncode == 0, proc.stderr
    rows = {r["student"]: r for r in csv.DictReader(open(tmp_path / "grades.csv"))}
    marks = list(CLASS["hugo"].marks)
    marks[RUBRIC.index("clarity")] = 4
    assert float(rows["hugo"]["grade"]) == pytest.approx(20 * (0.4 * 18 / 20 + 0.6 * sum(marks) / 20), abs=0.01)
    assert float(rows["femi"]["penalty"]) > 0 and float(rows["femi"]["late_minutes"]) == pytest.approx(25, abs=0.1)
    proc = cli(root, "feedback", A, "--student", "hugo", "--student", "femi")
    assert proc.returncode == 0, proc.stderr
    page = (root / "feedback" / "hugo" / A / f"{A}.html").read_text()
    assert "Clear plots; now budget your search." in page and "The search never ended" in page
    hugo = 20 * (0.4 * 18 / 20 + 0.6 * sum(marks) / 20)
    assert f"Final grade: {hugo:.2f} / 20" in page and "18 / 20" in page and f"{sum(marks):g} / 20" in page
    assert "notebook_runs_top_to_bottom_within_the_time_limit" in page  # the automatic part, by case name
    late_page = (root / "feedback" / "femi" / A / f"{A}.html").read_text()
    assert "late by 25 min" in late_page and "penalty" in late_page
    for student in CLASS:  # hidden cases are named, their code never shown
        text = (root / "feedback" / student / A / f"{A}.html").read_text()
        assert "FIT_METHODS" not in text and "test_labels" not in text


# --- the static leak check on its own: what it flags, and the honest code it must not flag -------------------
HONEST = [
    # a name used for the blind wells first, then re-bound to training data before fitting
    "X = blind[LOGS]\npreview = X.describe()\nX = wells[LOGS]\nmodel.fit(X, wells['facies'])",
    # the usual train_test_split names, on the training wells only
    "X_train, X_test, y_train, y_test = train_test_split(wells[LOGS], wells['facies'])\n"
    "scaler = StandardScaler().fit(X_train)\nmodel.fit(scaler.transform(X_train), y_train)\n"
    "model.predict(scaler.transform(blind[LOGS]))",
    # predicting and writing the blind wells in a loop
    "for name, m in models.items():\n    m.fit(X, y)\n    out = m.predict(blind.drop(columns='id'))\n"
    "pd.DataFrame({'id': blind['id'], 'facies': out}).to_csv('predictions.csv', index=False)",
    "%matplotlib inline\nmodel.fit(X, y)",
]
LEAKS = [
    "both = pd.concat([wells, blind])\nscaler = StandardScaler()\nscaler.fit(both[LOGS])",
    "t = pd.read_csv('data/test.csv')\nclusters = KMeans(6).fit_predict(t[LOGS])",
    "scores = cross_val_score(model, blind[LOGS], labels)",
    "X_blind = blind[LOGS]\nfor m in models.values():\n    m.partial_fit(X_blind, m.predict(X_blind))",
    "Z = StandardScaler().fit_transform(blind[LOGS])",
]


@pytest.mark.parametrize("code", HONEST + LEAKS)
def test_the_static_leak_check_flags_fits_on_the_blind_wells_only(code):
    from edsgrade.grading.context import RunInfo
    from edsgrade.grading.judge import judge_question

    master = load_master(Path(__file__).resolve().parents[1] / "source" / A / f"{A}.ipynb")
    run = RunInfo(completed=True, seconds=1.0, figures=1, code=("import numpy as np", code))
    results = pd.DataFrame({"model": ["a"], "validation": ["b"], "metric": ["accuracy"], "score": [0.5]})
    result = judge_question(master.question("integrity"), {"results": results}, None, {"run": run})
    verdict = {c.name: c.passed for c in result.cases}
    assert verdict["blind_wells_never_used_to_fit"] == (code in HONEST), result.cases
    assert verdict["notebook_runs_top_to_bottom_within_the_time_limit"]
    late = RunInfo(completed=False, seconds=600.0, figures=1, limits_hit=("notebook-time",), code=(code,))
    result = judge_question(master.question("integrity"), {"results": results}, None, {"run": late})
    assert not {c.name: c.passed for c in result.cases}["notebook_runs_top_to_bottom_within_the_time_limit"]
