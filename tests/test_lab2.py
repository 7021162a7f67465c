"""lab2-volcano end to end: build, release without leaks, grade typical submissions through the pipeline.

One course per module (``labkit.run_lab`` on the session's build); every submission is graded in a
single ``grade`` call. What every lab shares (solution full, release 0, no leak, small data) is in
``test_labs_common.py``.
"""
from __future__ import annotations

from types import SimpleNamespace

import nbformat
import pytest

from edsgrade.simulate.cohort import solution_of
from labkit import replaced, run_lab, scores

A = "lab2-volcano"

# --- alternative correct answers: other implementations, another subset, other classifiers ---------------
LOOP_STATION = '''
def best_station(records):
    best, best_amplitude = None, -1.0
    for code in records:
        x = np.asarray(records[code], dtype=float)
        amplitude = np.max(np.abs(x - x.mean()))
        if amplitude > best_amplitude:
            best, best_amplitude = code, amplitude
    return best


catalog_best = pd.Series([best_station(waveforms[e]) for e in catalog["event_id"]], index=catalog["event_id"])
'''

# another seeded balanced subset (numpy's generator, one class after the other)
RNG_SUBSET = '''
n_per_class = min(class_counts.values())
rng = np.random.default_rng(SEED)
parts = []
for label in CLASSES:
    rows = catalog[catalog["label"] == label]
    parts.append(rows.iloc[rng.choice(len(rows), size=n_per_class, replace=False)])
subset = pd.concat(parts)
'''

# features with scipy's periodogram, pandas' (bias-corrected) moments and a rolling-mean envelope
SCIPY_FEATURES = '''
def extract_features(x, fs):
    s = pd.Series(np.asarray(x, dtype=float))
    s = s - s.mean()
    freqs, power = scipy.signal.periodogram(s.to_numpy(), fs=fs, window="boxcar", detrend=False)
    weights = power / power.sum()
    centroid = float(np.dot(freqs, weights))
    cumulative = np.cumsum(weights)
    quantiles = {}
    for name, q in [("f25", 0.25), ("f50", 0.5), ("f75", 0.75)]:
        i = 0
        while cumulative[i] < q:
            i += 1
        quantiles[name] = float(freqs[i])
    envelope = pd.Series(np.abs(scipy.signal.hilbert(s.to_numpy())))
    w = int(fs)
    smooth = envelope.rolling(w, center=True, min_periods=1).mean().to_numpy()[w // 2: len(envelope) - w // 2]
    threshold = 0.25 * smooth.max()
    first = int(np.argmax(smooth > threshold))
    return {"centroid": centroid, "bandwidth": float(np.sqrt(np.dot((freqs - centroid) ** 2, weights))),
            **quantiles, "kurtosis": float(s.kurt()), "skewness": float(s.skew()),
            "duration": float(np.count_nonzero(smooth > threshold) / fs),
            "rise": float((np.argmax(smooth) - first) / fs),
            "snr": float(20 * np.log10(smooth.max() / np.median(smooth[: int(4 * fs)])))}


check_features = extract_features(check_signal, 50.0)
first_id = catalog["event_id"].iloc[0]
first_features = extract_features(waveforms[first_id][catalog_best[first_id]], fs)
'''

LOOP_TABLE = '''
rows = []
for event_id in subset["event_id"]:
    rows.append(extract_features(waveforms[event_id][catalog_best[event_id]], fs))
X = pd.DataFrame(rows, index=subset["event_id"].to_numpy(), columns=FEATURES)
y = pd.Series(subset["label"].to_numpy(), index=X.index)
'''

NUMPY_SCALING = '''
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=SEED)
mu, sigma = X_train.mean(), X_train.std(ddof=0)
X_train_s = (X_train - mu) / sigma
X_test_s = (X_test - mu) / sigma
'''

OTHER_CLASSIFIERS = '''
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
models = {"extra-trees": ExtraTreesClassifier(n_estimators=200, random_state=SEED),
          "lda": LinearDiscriminantAnalysis(),
          "svm": SVC(C=10.0, random_state=SEED)}
folds = StratifiedKFold(5, shuffle=True, random_state=SEED)
cv_accuracy = {}
test_accuracy = {}
predictions = {}
for name, model in models.items():
    cv_accuracy[name] = cross_val_score(model, X_train_s, y_train, cv=folds).mean()
    predictions[name] = model.fit(X_train_s, y_train).predict(X_test_s)
    test_accuracy[name] = (predictions[name] == np.asarray(y_test)).mean()
best_name = max(cv_accuracy, key=cv_accuracy.get)
y_pred = predictions[best_name]
'''

CROSSTAB_CM = '''
table = pd.crosstab(pd.Series(np.asarray(y_test), name="true"), pd.Series(np.asarray(y_pred), name="predicted"))
cm = table.reindex(index=CLASSES, columns=CLASSES, fill_value=0).to_numpy()
recall = {label: cm[i, i] / cm[i].sum() for i, label in enumerate(CLASSES)}
ConfusionMatrixDisplay(cm, display_labels=CLASSES).plot()
'''

PERMUTATION_IMPORTANCE = '''
from sklearn.inspection import permutation_importance
scores = permutation_importance(models[best_name], X_test_s, y_test, n_repeats=10, random_state=SEED)
importance = pd.Series(scores.importances_mean, index=FEATURES).sort_values(ascending=False)
importance.plot.bar()
'''

ALTERNATIVES = {
    "alt-scipy": {"a3": LOOP_STATION, "a6": SCIPY_FEATURES, "a9": OTHER_CLASSIFIERS, "a11": PERMUTATION_IMPORTANCE},
    "alt-loops": {"a3": LOOP_STATION, "a4": RNG_SUBSET, "a7": LOOP_TABLE, "a8": NUMPY_SCALING, "a10": CROSSTAB_CM},
}


def wrong_answers(master) -> dict[str, dict[str, str]]:
    """Typical mistakes, made from the master's own answers."""
    a6 = solution_of(master, "a6")
    units = replaced(replaced(a6, '"duration": above.size / fs,', '"duration": above.size,'),
                     '"rise": (np.argmax(env) - above[0]) / fs,', '"rise": np.argmax(env) - above[0],')
    scaled_on_all = replaced(solution_of(master, "a8"), "StandardScaler().fit(X_train)", "StandardScaler().fit(X)")
    trained_on_all = replaced(solution_of(master, "a9"), "model.fit(X_train_s, y_train)",
                              "model.fit(np.vstack([X_train_s, X_test_s]), pd.concat([y_train, y_test]))")
    return {"wrong-units": {"a6": units}, "wrong-leak": {"a8": scaled_on_all, "a9": trained_on_all}}


@pytest.fixture(scope="module")
def lab2(lab_builds, tmp_path_factory) -> SimpleNamespace:
    return run_lab(lab_builds, tmp_path_factory.mktemp("lab2"), A,
                   answers=lambda course, master: {**ALTERNATIVES, **wrong_answers(master)}, cell_timeout=60)


def test_the_master_runs_within_90_seconds_with_enough_questions(lab2):
    assert lab2.report.master_seconds < 90
    assert lab2.report.questions >= 8
    assert {m.grade_id for m in lab2.master.manual} == {"interp1", "interp2", "interp3"}


def test_data_is_generated_at_build(lab2):
    # (every lab's release is small: test_labs_common.py)
    data = lab2.course.release_dir(A) / "data"
    files = [p for p in data.rglob("*") if p.is_file()]
    assert len([p for p in files if p.suffix == ".mseed"]) > 300


def test_submissions_are_graded_on_hidden_draws_of_the_data(lab2):
    # the master lists hidden seeds: each submission runs on one of them, and `ref` is the master's
    # solution on that draw, so a correct answer passes whatever the draw
    assert {r.variant for r in lab2.results.values()} <= {7, 11}
    assert any(r.variant is not None for r in lab2.results.values())
    released = nbformat.read(lab2.course.release_dir(A) / f"{A}.ipynb", as_version=4)
    assert "variants" not in released.metadata.get("edsgrade", {})


def test_the_lab_has_25_points(lab2):
    assert lab2.master.max_auto == 25  # the solution gets them all, the release none: test_labs_common.py


@pytest.mark.parametrize("student", sorted(ALTERNATIVES))
def test_alternative_correct_approaches_get_full_marks(lab2, student):
    result = lab2.results[student]
    lost = {q.grade_id: [c.message for c in q.cases if not c.passed] for q in result.questions
            if q.points < q.max_points}
    assert result.score == lab2.master.max_auto, lost


def test_a_units_error_loses_the_feature_points(lab2):
    # duration and rise in samples instead of seconds: the features and the feature table are wrong,
    # but standardisation hides the factor 50 from the classifiers, so nothing after q7 is lost
    got = scores(lab2.results["wrong-units"])
    assert got["q6"] == 0.5  # only the public "dictionary of numbers" case passes
    assert got["q7"] == 1  # the public shape check passes, the comparison with the reference fails
    assert all(got[q.grade_id] == q.points for q in lab2.master.questions if q.grade_id not in ("q6", "q7"))


def test_test_data_leaking_into_scaling_and_training_loses_those_points(lab2):
    got = scores(lab2.results["wrong-leak"])
    assert got["q8"] == 0.5  # the split is right; the scaler fitted on all the data is not
    assert got["q9"] == 2  # the models fitted on the test set too score too well on it
    assert all(got[q.grade_id] == q.points for q in lab2.master.questions if q.grade_id not in ("q8", "q9"))


def test_the_release_holds_no_solution_function(lab2):
    # (no solution or hidden line in any lab's release: test_labs_common.py)
    release = lab2.course.release_dir(A)
    everything = "\n".join(p.read_text(errors="replace") for p in release.rglob("*")
                           if p.is_file() and p.suffix != ".mseed")
    assert "def best_station" not in everything and "def extract_features" not in everything


def test_feedback_names_hidden_cases_but_never_shows_their_code(lab2):
    secret = lab2.master.secret_lines()
    for student in lab2.results:
        html = (lab2.root / "feedback" / student / A / f"{A}.html").read_text()
        leaked = [line for line in secret if len(line) > 12 and line in html]
        assert not leaked, (student, leaked[:3])
    html = (lab2.root / "feedback" / "wrong-leak" / A / f"{A}.html").read_text()
    assert "test_set_did_not_leak_into_training" in html
    assert "too good to be true" not in html  # the hidden case's message stays with the instructor
