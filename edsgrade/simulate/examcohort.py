"""A simulated exam class for ``exam-hackathon``: eleven typical hand-ins and how a grader marks them.

Used by ``edsgrade exam-demo`` (:mod:`edsgrade.simulate.examdemo`) and the tests. Each student is made from
the release and the master (as :mod:`edsgrade.simulate.cohort` does for the labs): the master's solution,
another strong approach, a weak one, one that fits a model on the blind wells, one who writes no
``predictions.csv``, a late one, one within the grace period, one whose notebook runs past the time
limit, a partial one, one whose code raises, and the untouched release. Each also has the rubric
marks and comments a grader would give the notebook, so that the final grades can be checked.
"""
from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from dataclasses import dataclass

import nbformat

from edsgrade.simulate.cohort import answer, solution_of, with_answers  # the one answer-filling helper of the simulated class
from edsgrade.authoring.master import Master

#: the exam this class sits
EXAM = "exam-hackathon"

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

#: a model selection that never ends within the exam's limits (an exhaustive search, say)
TOO_SLOW = '''
import time

for trial in range(10**6):  # "let me try a few more hyper-parameters..."
    time.sleep(1.0)
'''

RUBRIC = ("reasoning", "comparison", "interpretation", "clarity", "critical-thinking")


@dataclass(frozen=True)
class Candidate:
    """One student of the simulated exam."""

    profile: str  # what kind of hand-in (see PROFILES)
    marks: tuple[float, float, float, float, float]  # rubric points, in the order of RUBRIC
    comment: str  # the grader's comment on critical thinking (others get a generic one)
    minutes_after_deadline: float = -30.0  # when the notebook was handed in (negative: before)


def _answers(master: Master) -> dict[str, dict[str, str]]:
    """Profile -> the answer cells that differ from the master's solution."""
    predict = solution_of(master, "predict")
    # pseudo-labelling: the chosen model refitted on the blind wells with its own predictions
    leak = (predict + '\npseudo = models[best].predict(blind.drop(columns="id"))\n'
            'models[best].fit(pd.concat([X, blind.drop(columns="id")]), np.concatenate([y, pseudo]))\n')
    no_file = "\n".join(line for line in predict.splitlines() if "to_csv" not in line)
    return {"solution": {}, "strong": STRONG, "weak": WEAK, "leaky": {"predict": leak},
            "no-predictions": {"predict": no_file},
            "too-slow": {"validation": solution_of(master, "validation") + "\n" + TOO_SLOW},
            "raises": {"errors": 'raise RuntimeError("out of time: I will do the confusion matrix later")\n'
                                 + solution_of(master, "errors")}}


def make_notebook(profile: str, release: nbformat.NotebookNode, master: Master) -> nbformat.NotebookNode:
    """The notebook a student of ``profile`` hands in (see ``PROFILES``)."""
    if profile not in PROFILES:
        raise KeyError(f"unknown exam profile {profile!r}; known: {', '.join(PROFILES)}")
    if profile == "blank":
        return copy.deepcopy(release)
    if profile == "partial":  # exploration, models and validation; nothing after
        nb = copy.deepcopy(release)
        return with_answers(nb, master, {gid: solution_of(master, gid) for gid in ("explore", "models", "validation")})
    return with_answers(answer(release, master), master, _answers(master)[profile])


PROFILES: dict[str, str] = {
    "solution": "the master's approach, complete",
    "strong": "another strong approach (LDA, SVM, boosting; F1 and balanced accuracy)",
    "weak": "honest but weak: the gamma ray only",
    "leaky": "refits the chosen model on the blind wells (pseudo-labels)",
    "no-predictions": "never writes predictions.csv",
    "too-slow": "a hyper-parameter search that runs past the time limit",
    "partial": "exploration, models and validation only",
    "raises": "the confusion-matrix cell raises",
    "blank": "hands in the release untouched",
}

#: the simulated class: student -> what they hand in, when, and the rubric marks a grader gives
CLASS: dict[str, Candidate] = {
    "alice": Candidate("solution", (4, 4, 3.5, 4, 3.5), "Trust discussed with held-out wells: good."),
    "bruno": Candidate("strong", (3.5, 4, 3, 3.5, 3), "Good, but say why F1 and balanced accuracy differ."),
    "carla": Candidate("weak", (2, 1.5, 1.5, 3, 1), "One log cannot separate six facies: why stop there?"),
    "diego": Candidate("leaky", (3, 3, 3, 3, 0.5), "Refitting on the blind wells is using the test set."),
    "elena": Candidate("no-predictions", (3, 3, 3, 3, 3), "Sound analysis; the predictions file is missing."),
    "femi": Candidate("solution", (4, 4, 3.5, 4, 3.5), "As good as the best, but handed in late.", 25.0),
    "gaia": Candidate("solution", (3.5, 3.5, 3, 3.5, 3), "Complete; handed in within the grace period.", 3.0),
    "hugo": Candidate("too-slow", (3, 3, 2.5, 2.5, 2.5), "The search never ended: budget your time."),
    "ines": Candidate("partial", (2.5, 2, 0, 2, 1), "Stopped before the error analysis."),
    "jules": Candidate("raises", (3, 3, 1, 2.5, 2), "Your confusion-matrix cell raises: nothing after it ran."),
    "kim": Candidate("blank", (0, 0, 0, 0, 0), "Nothing handed in but the release."),
}

STAMP = "%Y-%m-%d %H:%M:%S.%f UTC"  # nbgrader's submission time format


SIMULATED_ARRIVALS = "simulated-arrivals.json"  # in the course's build/ folder: the grader's, never the exchange


def simulated_arrivals_path(course) -> Path:
    """Where a simulation keeps its table of simulated arrival times (instructor-only ``build/``)."""
    return course.root / "build" / SIMULATED_ARRIVALS


def redate_submission(course, assignment: str, student: str, when: dt.datetime) -> None:
    """Make the latest submission of ``student`` count as handed in at ``when`` (naive UTC).

    A simulation tool (the demo and the tests): a simulated class cannot wait for real minutes to pass.
    The collect dates submissions from the exchange itself (see :mod:`edsgrade.exchange.safe`), never
    from what a student writes, so this writes nothing in the exchange: it records ``when`` for that
    submission's folder in a table in the course's ``build/`` folder and points this ``course``'s
    collect at it (``c.SafeCollect.simulated_arrivals``). A course run by hand from the command line
    sets that option in its ``nbgrader_config.py`` to use the table.
    """
    import json

    inbound = course.exchange_root / course.course_id / "inbound"
    folders = sorted(inbound.glob(f"{student}+{assignment}+*"), key=lambda p: p.lstat().st_ctime)
    if not folders:
        raise FileNotFoundError(f"no submission of {assignment} by {student} in {inbound}")
    path = simulated_arrivals_path(course)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = json.loads(path.read_text()) if path.is_file() else {}
    table[folders[-1].name] = when.strftime(STAMP)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(table, indent=1))
    tmp.replace(path)
    course.config.SafeCollect.simulated_arrivals = str(path)


def rubric_comment(candidate: Candidate, criterion: str) -> str:
    """The comment the simulated grader writes on ``criterion``."""
    if criterion == "critical-thinking":
        return candidate.comment
    return f"{criterion.capitalize()}: {dict(zip(RUBRIC, candidate.marks))[criterion]:g} points, see the mark scheme."
