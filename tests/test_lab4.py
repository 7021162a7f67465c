"""lab4-lidar end to end: build, release without leaks, grade typical submissions through the pipeline.

One course per module (``labkit.run_lab`` on the session's build); every submission is graded in a
single ``grade_run`` call, on a hidden draw of the lidar generator (the master's ``variants``).
The cohort (the solution and the release are graded in ``test_labs_common.py``): the first half of
the questions, two alternative correct solutions
(numpy loops, a hand-made covariance, logistic regression + an RBF SVM, a Gaussian mixture; and
scikit-learn's radius neighbours with an SVD, a linear SVM + extra trees, agglomerative clustering)
and two typical mistakes: a random forest fitted on all the data (test-set leak), and the scene's
classes given to the core points only (wrong output size).

The feature function, ``barycentric`` and the classifiers are graded by calling the student's
objects on inputs the notebook never uses (the judge's proxies).
"""
from __future__ import annotations

from types import SimpleNamespace

import nbformat
import pytest

from edsgrade.simulate.cohort import solution_of
from labkit import lost, replaced, run_lab, scores

A = "lab4-lidar"

# --- alternative 1: numpy loops, a hand-made covariance, other classifiers and a Gaussian mixture --------
LOOPS = {
    "a1": '''
train_parts, label_parts = [], []
for name in TRAIN_FILES:
    las = laspy.read(DATA + "/" + name)
    train_parts.append(np.column_stack([las.x, las.y, las.z]))
    label_parts.append(np.array(las.classification).astype(np.int64))
train_xyz = np.concatenate(train_parts)
train_labels = np.concatenate(label_parts)
scene = laspy.read(DATA + "/scene.las")
scene_xyz = np.column_stack([scene.x, scene.y, scene.z])
scene_version = f"{scene.header.version.major}.{scene.header.version.minor}"
scene_point_format = scene.header.point_format.id
scene_count = scene.header.point_count
point_fields = [name for name in scene.point_format.dimension_names]
''',
    "a3": '''
order = np.random.default_rng(SEED).permutation(len(train_xyz))
core_idx = order[:N_CORE]
core_xyz = train_xyz[core_idx]
core_labels = train_labels[core_idx]
''',
    "a4": '''
def local_features(cloud, cores, radius, min_neighbours=MIN_NEIGHBOURS):
    cloud = np.asarray(cloud, dtype=float)
    tree = cKDTree(cloud)
    rows = []
    for core in np.asarray(cores, dtype=float):
        idx = tree.query_ball_point(core, radius)
        if len(idx) < min_neighbours:
            rows.append([np.nan, np.nan, np.nan])
            continue
        pts = cloud[idx]
        d = pts - pts.mean(axis=0)
        cov = d.T @ d / len(pts)  # biased: the normalised eigenvalues do not care
        w = np.sort(np.linalg.eigvals(cov).real)[::-1]
        rows.append(list(w / w.sum()))
    return np.array(rows, dtype=float).reshape(-1, 3)


check_features = local_features(check_cloud, check_cores, 1.0)
''',
    "a6": '''
def barycentric(p):
    out = []
    for p1, p2, p3 in np.asarray(p, dtype=float):
        out.append([p1 - p2, 2 * p2 - 2 * p3, 3 * p3])
    return np.array(out).reshape(-1, 3)


bary_1m = barycentric(X_all[:, 3:6])
''',
    "a7": '''
valid = np.isfinite(X_all).all(axis=1)
X = X_all[valid, :]
y = core_labels[valid]
dropped_per_class = {}
for c in CLASS_NAMES:
    dropped_per_class[c] = int(((core_labels == c) & (~valid)).sum())
''',
    "a9": '''
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC
linear_clf = LogisticRegression(max_iter=3000).fit(X_train, y_train)
linear_accuracy = np.mean(linear_clf.predict(X_test) == y_test)
clf = SVC(C=10.0, gamma="scale").fit(X_train, y_train)
train_accuracy = np.mean(clf.predict(X_train) == y_train)
predicted = clf.predict(X_test)
test_accuracy = np.mean(predicted == y_test)
cm = np.array([[np.sum((y_test == a) & (predicted == b)) for b in (2, 3, 5)] for a in (2, 3, 5)])
''',
    "a10": '''
from sklearn.neighbors import NearestNeighbors
scene_core_idx = np.random.default_rng(SEED).permutation(len(scene_xyz))[:N_SCENE_CORE]
cores = scene_xyz[scene_core_idx]
scene_features = np.concatenate([local_features(scene_xyz, cores, r) for r in SCALES], axis=1)
ok = np.isfinite(scene_features).all(axis=1)
core_classes = clf.predict(scene_features[ok])
nn = NearestNeighbors(n_neighbors=1).fit(cores[ok])
nearest = nn.kneighbors(scene_xyz, return_distance=False)[:, 0]
scene_classes = core_classes[nearest].astype(int)
classified = laspy.read(DATA + "/scene.las")
classified.classification = scene_classes.astype(np.uint8)
classified.write("classified_scene.las")
back = laspy.read("classified_scene.las")
written_classes = np.array(back.classification)
written_count = back.header.point_count
''',
    "a11": '''
from sklearn.mixture import GaussianMixture
X_cluster = X
cluster_labels = GaussianMixture(n_components=3, n_init=3, random_state=SEED).fit_predict(X_cluster)
ari = adjusted_rand_score(y, cluster_labels)
silhouette = silhouette_score(X_cluster, cluster_labels)
''',
}

# --- alternative 2: scikit-learn's radius neighbours + SVD, a linear SVM and extra trees, Ward clustering --
SKLEARN = {
    "a4": '''
from sklearn.neighbors import NearestNeighbors

def local_features(cloud, cores, radius, min_neighbours=MIN_NEIGHBOURS):
    cloud = np.asarray(cloud, dtype=float)
    cores = np.asarray(cores, dtype=float)
    neighbourhoods = NearestNeighbors(radius=radius).fit(cloud).radius_neighbors(cores, return_distance=False)
    features = np.full((len(cores), 3), np.nan)
    for i, idx in enumerate(neighbourhoods):
        if len(idx) >= min_neighbours:
            centred = cloud[idx] - cloud[idx].mean(axis=0)
            s = np.linalg.svd(centred, compute_uv=False) ** 2  # singular values squared: the eigenvalues
            features[i] = s / s.sum()
    return features


check_features = local_features(check_cloud, check_cores, 1.0)
''',
    "a9": '''
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.ensemble import ExtraTreesClassifier
linear_clf = make_pipeline(StandardScaler(), LinearSVC(C=1.0, max_iter=20000)).fit(X_train, y_train)
linear_accuracy = linear_clf.score(X_test, y_test)
clf = ExtraTreesClassifier(n_estimators=300, min_samples_leaf=2, random_state=SEED).fit(X_train, y_train)
train_accuracy = clf.score(X_train, y_train)
test_accuracy = clf.score(X_test, y_test)
cm = confusion_matrix(y_test, clf.predict(X_test), labels=[2, 3, 5])
''',
    "a11": '''
from sklearn.cluster import AgglomerativeClustering
from sklearn.preprocessing import StandardScaler
X_cluster = StandardScaler().fit_transform(X)
cluster_labels = AgglomerativeClustering(n_clusters=3, linkage="ward").fit_predict(X_cluster)
ari = adjusted_rand_score(y, cluster_labels)
silhouette = silhouette_score(X_cluster, cluster_labels)
''',
}

ALTERNATIVES = {"alt-loops": LOOPS, "alt-sklearn": SKLEARN}

# the scene's classes computed for the N_SCENE_CORE core points only, and only those written
WRONG_SIZE = '''
rng_scene = np.random.default_rng(SEED)
scene_core_idx = rng_scene.choice(len(scene_xyz), size=N_SCENE_CORE, replace=False)
scene_features = np.hstack([local_features(scene_xyz, scene_xyz[scene_core_idx], r) for r in SCALES])
scene_valid = ~np.isnan(scene_features).any(axis=1)
scene_classes = np.full(len(scene_core_idx), 2)
scene_classes[scene_valid] = clf.predict(scene_features[scene_valid])
out = laspy.LasData(scene.header)
out.points = scene.points[scene_core_idx].copy()
out.classification = scene_classes.astype(np.uint8)
out.write("classified_scene.las")
written = laspy.read("classified_scene.las")
written_classes = np.asarray(written.classification, dtype=int)
written_count = int(written.header.point_count)
'''


def wrong_answers(master) -> dict[str, dict[str, str]]:
    """Typical mistakes, made from the master's own answers."""
    leak = replaced(solution_of(master, "a9"),
                    "clf = RandomForestClassifier(n_estimators=100, random_state=SEED).fit(X_train, y_train)",
                    "clf = RandomForestClassifier(n_estimators=100, random_state=SEED).fit(X, y)")
    return {"wrong-leak": {"a9": leak}, "wrong-size": {"a10": WRONG_SIZE}}


@pytest.fixture(scope="module")
def lab4(lab_builds, tmp_path_factory) -> SimpleNamespace:
    return run_lab(lab_builds, tmp_path_factory.mktemp("lab4"), A, profiles={"partial": "partial"},
                   answers=lambda course, master: {**ALTERNATIVES, **wrong_answers(master)}, cell_timeout=120)


def test_the_master_runs_fast_with_enough_questions(lab4):
    assert lab4.report.master_seconds < 120
    assert lab4.report.questions >= 8
    assert {m.grade_id for m in lab4.master.manual} == {"interp1", "interp2", "interp3"}


def test_data_is_real_las_generated_at_build(lab4):
    # (every lab's release is small: test_labs_common.py)
    import laspy

    data = lab4.course.release_dir(A) / "data"
    files = sorted(p.name for p in data.iterdir())
    assert files == ["scene.las", "train_ground.las", "train_high_vegetation.las", "train_low_vegetation.las"]
    scene = laspy.read(data / "scene.las")
    assert str(scene.header.version) == "1.4" and set(scene.classification.tolist()) == {1}


def test_submissions_are_graded_on_hidden_draws_of_the_data(lab4):
    # the master lists a hidden seed: submissions run on that draw, and `ref` is the master's solution on it
    assert {r.variant for r in lab4.results.values()} == {7}
    released = nbformat.read(lab4.course.release_dir(A) / f"{A}.ipynb", as_version=4)
    assert "variants" not in released.metadata.get("edsgrade", {})


def test_the_first_half_alone_gets_its_points(lab4):
    # (the solution gets every point, the release none: test_labs_common.py)
    assert lab4.master.max_auto == 27
    partial = scores(lab4.results["partial"])
    first_half = lab4.master.questions[: len(lab4.master.questions) // 2]
    assert all(partial[q.grade_id] == q.points for q in first_half), lost(lab4.results["partial"])  # gradable alone
    assert 0 < lab4.results["partial"].score < lab4.master.max_auto


@pytest.mark.parametrize("student", sorted(ALTERNATIVES))
def test_alternative_correct_approaches_get_full_marks(lab4, student):
    result = lab4.results[student]
    assert result.score == lab4.master.max_auto, lost(result)


def test_a_test_set_leak_loses_the_leak_point(lab4):
    got = scores(lab4.results["wrong-leak"])
    assert got["q9"] == 2, lost(lab4.results["wrong-leak"])  # the forest fitted on every core point scores 1.0 on the test set
    assert all(got[q.grade_id] == q.points for q in lab4.master.questions if q.grade_id != "q9"), \
        lost(lab4.results["wrong-leak"])


def test_classes_of_the_core_points_only_lose_the_scene_question(lab4):
    got = scores(lab4.results["wrong-size"])
    assert got["q10"] == 0, lost(lab4.results["wrong-size"])  # wrong size, and a file that misses most points
    assert all(got[q.grade_id] == q.points for q in lab4.master.questions if q.grade_id != "q10"), \
        lost(lab4.results["wrong-size"])


def test_the_release_holds_no_solution_function(lab4):
    # (no solution or hidden line in any lab's release: test_labs_common.py)
    release = lab4.course.release_dir(A)
    everything = "\n".join(p.read_text(errors="replace") for p in release.rglob("*")
                           if p.is_file() and p.suffix != ".las")
    assert "def local_features(" not in everything and "def barycentric(" not in everything


def test_feedback_names_hidden_cases_but_never_shows_their_code(lab4):
    secret = lab4.master.secret_lines()
    for student in lab4.results:
        html = (lab4.root / "feedback" / student / A / f"{A}.html").read_text()
        leaked = [line for line in secret if len(line) > 12 and line in html]
        assert not leaked, (student, leaked[:3])
    html = (lab4.root / "feedback" / "wrong-leak" / A / f"{A}.html").read_text()
    assert "test_set_did_not_leak_into_training" in html
    assert "too good to be true" not in html
