"""exam-hackathon end to end: build, release without the hidden labels, automatic grading of typical hand-ins.

One course is built per module and every submission is graded in a single ``grade`` call: the
solution, another strong approach, a weak one, one that fits on the blind wells, one without
``predictions.csv`` and the untouched release.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pandas as pd
import pytest

from conftest import new_course
from edsgrade import exchange
from edsgrade.build import build
from edsgrade.cohort import answer
from edsgrade.course import Course
from edsgrade.grading.autograde import grade_assignment
from edsgrade.leakcheck import find_leaks
from edsgrade.master import SOLUTION_BEGIN, SOLUTION_END, load_master

A = "exam-hackathon"

# --- another strong approach: other features, models, metric names, output order ---------------------------
STRONG = {
    "explore": '''
fig, ax = plt.subplots()
wells.boxplot(column="PE", by="facies", ax=ax)
plt.show()
''',
    "models": '''
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.svm import SVC


def log_features(table):
    X = table[LOGS].copy()
    X["RT"] = np.log10(X["RT"])
    X["M"] = (X["DT"] - 189.0) / (X["RHOB"] - 1.0)  # the M of the M-N lithology plot
    return X


to_features = FunctionTransformer(log_features)
models = {
    "LDA": make_pipeline(to_features, StandardScaler(), LinearDiscriminantAnalysis()),
    "SVM (rbf)": make_pipeline(to_features, StandardScaler(), SVC(C=3.0, class_weight="balanced")),
    "gradient boosting": make_pipeline(to_features, HistGradientBoostingClassifier(max_iter=40, random_state=1)),
}
''',
    "validation": '''
from sklearn.model_selection import cross_validate

X, y, groups = wells.drop(columns="facies"), wells["facies"], wells["well"]
by_well = GroupKFold(n_splits=4)
table = []
for name, model in models.items():
    scores = cross_validate(model, X, y, groups=groups, cv=by_well, scoring=["balanced_accuracy", "f1_macro"])
    table.append((name, "wells held out (GroupKFold 4)", "balanced accuracy", scores["test_balanced_accuracy"].mean()))
    table.append((name, "wells held out (GroupKFold 4)", "f1 macro", scores["test_f1_macro"].mean()))
results = pd.DataFrame(table, columns=["model", "validation", "metric", "score"])
for model in models.values():
    model.fit(X, y)
''',
    "errors": '''
predicted = cross_val_predict(models["SVM (rbf)"], X, y, groups=groups, cv=by_well)
confusion = confusion_matrix(y, predicted, labels=FACIES)
ConfusionMatrixDisplay(confusion, display_labels=FACIES).plot()
plt.show()
''',
    "predict": '''
out = pd.DataFrame({"facies": models["SVM (rbf)"].predict(blind.drop(columns="id")), "id": blind["id"]})
out.sample(frac=1.0, random_state=3).to_csv("predictions.csv", index=False)
''',
}

# --- a weak approach: the gamma ray only (honest, but little information) ---------------------------------
WEAK = {
    "models": '''
from sklearn.dummy import DummyClassifier
from sklearn.tree import DecisionTreeClassifier

gr_only = FunctionTransformer(lambda table: table[["GR"]])
models = {
    "majority": make_pipeline(gr_only, DummyClassifier(strategy="most_frequent")),
    "tree on GR": make_pipeline(gr_only, DecisionTreeClassifier(max_depth=2)),
    "knn on GR": make_pipeline(gr_only, KNeighborsClassifier(n_neighbors=25)),
}
''',
    "validation": '''
X, y, groups = wells.drop(columns="facies"), wells["facies"], wells["well"]
by_well = GroupKFold(n_splits=4)
results = pd.DataFrame([{"model": name, "validation": "GroupKFold by well", "metric": "balanced_accuracy",
                         "score": cross_val_score(m, X, y, groups=groups, cv=by_well,
                                                  scoring="balanced_accuracy").mean()}
                        for name, m in models.items()])
for model in models.values():
    model.fit(X, y)
best = "tree on GR"
''',
    "errors": '''
predicted = cross_val_predict(models[best], X, y, groups=groups, cv=by_well)
confusion = confusion_matrix(y, predicted, labels=FACIES)
''',
}


def _master_cell(master, grade_id: str) -> nbformat.NotebookNode:
    return next(c for c in master.notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def solution_of(master, grade_id: str) -> str:
    source = _master_cell(master, grade_id).source
    return source[source.index(SOLUTION_BEGIN) + len(SOLUTION_BEGIN): source.index(SOLUTION_END)].strip("\n")


def with_answers(nb: nbformat.NotebookNode, master, code: dict[str, str]) -> nbformat.NotebookNode:
    """``nb`` with the solution regions of the answer cells in ``code`` replaced."""
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in code:
            source = _master_cell(master, gid).source
            cell.source = source.split(SOLUTION_BEGIN)[0] + code[gid].strip("\n") + source.split(SOLUTION_END)[1]
    return nb


def submissions(master) -> dict[str, dict[str, str]]:
    """Student -> the answer cells that differ from the master's solution."""
    predict = solution_of(master, "predict")
    assert 'to_csv("predictions.csv"' in predict
    # pseudo-labelling: the chosen model refitted on the blind wells with its own predictions
    leak = (predict + '\npseudo = models[best].predict(blind.drop(columns="id"))\n'
            'models[best].fit(pd.concat([X, blind.drop(columns="id")]), np.concatenate([y, pseudo]))\n')
    no_file = "\n".join(line for line in predict.splitlines() if "to_csv" not in line)
    return {"solution": {}, "strong": STRONG, "weak": WEAK, "leaky": {"predict": leak},
            "no-predictions": {"predict": no_file}}


@pytest.fixture(scope="module")
def exam(tmp_path_factory) -> SimpleNamespace:
    root = new_course(tmp_path_factory.mktemp("exam"), (A,))
    course = Course(root)
    # what the master leaves in source/ when the instructor runs it in Jupyter: never released
    (course.source_dir(A) / "predictions.csv").write_text("id,facies\n0,shale\n")
    report = build(course, A)
    exchange.release(course, A)
    master = load_master(course.master_path(A))
    release_nb = course.release_dir(A) / f"{A}.ipynb"
    released = nbformat.read(release_nb, as_version=4)
    for student, code in submissions(master).items():
        folder = exchange.fetch(course, A, student)
        nbformat.write(with_answers(answer(released, master), master, code), folder / f"{A}.ipynb")
        exchange.submit(course, A, student)
    exchange.fetch(course, A, "blank")
    exchange.submit(course, A, "blank")
    exchange.collect(course, A)
    # a predictions.csv from an earlier run, handed in beside the notebook (the course's nbgrader
    # configuration drops it at submission; a course without that rule still grades only what the run wrote)
    stale = course.submitted_dir("no-predictions", A) / "predictions.csv"
    ids = pd.read_csv(course.release_dir(A) / "data" / "test.csv")["id"]
    pd.DataFrame({"id": ids, "facies": "shale"}).to_csv(stale, index=False)
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    results = {r.student: r for r in grade_assignment(course, A, cell_timeout=120, progress=False)}
    return SimpleNamespace(root=root, course=course, master=master, report=report, results=results)


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
               exam.course.student_home("solution"), exam.root / "submitted"]
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
    result = exam.results["solution"]
    assert result.score == 20, failed(result)


def test_another_strong_approach_gets_every_automatic_point(exam):
    result = exam.results["strong"]
    assert result.score == 20, failed(result)


def test_a_weak_approach_loses_balanced_accuracy_points_only(exam):
    result = exam.results["weak"]
    got = points(result)
    assert 2 < got["predictions"] < 8, failed(result)  # a valid file, a low balanced accuracy
    assert got["results"] == 4 and got["integrity"] == 6, failed(result)
    assert got["figures"] == 2, failed(result)  # the exploration figure of the solution is kept
    assert got["predictions"] < points(exam.results["solution"])["predictions"]


def test_fitting_on_the_blind_wells_loses_the_leak_points(exam):
    result = exam.results["leaky"]
    got = points(result)
    assert got["integrity"] == 2, failed(result)
    lost = [c for q in result.questions for c in q.cases if not c.passed]
    assert [c.name for c in lost] == ["blind_wells_never_used_to_fit"], failed(result)
    assert "blind wells are used to fit: code cell" in lost[0].message and "fit(...)" in lost[0].message


def test_no_predictions_file_loses_the_prediction_points(exam):
    result = exam.results["no-predictions"]
    got = points(result)
    assert got["predictions"] == 0 and result.score == 12, failed(result)
    messages = [c.message for q in result.questions for c in q.cases if not c.passed]
    assert any("predictions.csv was not written when the notebook ran" in m for m in messages), messages


def test_the_untouched_release_gets_nothing(exam):
    result = exam.results["blank"]
    assert result.score == 0, {q.grade_id: q.points for q in result.questions}


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
