"""lab0-python (the self-evaluation lab) end to end: build, release without leaks, instant checks, grading.

One course per module (``labkit.run_lab`` on the session's build); every submission (two other
correct solutions and two typical wrong ones) is graded in a single ``grade_run`` call. What
every lab shares (solution full, release 0, no leak, small data) is in ``test_labs_common.py``.
"""
from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import nbformat
import pytest
from nbclient import NotebookClient

from edsgrade.simulate.cohort import answer, solution_of
from labkit import lost, replaced, run_lab, scores

A = "lab0-python"

# --- other correct solutions: loops, another formula, scikit-learn, categoricals, query, stairs... -------
LOOPS_AND_LIBRARIES = {
    "a1": '''
names = []
mw_by_name = {}
strong_names = []
for event in catalog:
    names.append(event["name"])
    mw_by_name[event["name"]] = event["mw"]
    if event["mw"] >= 7.0:
        strong_names.append(event["name"])
''',
    "a2": '''
    import math
    if np.ndim(mw) == 0:
        return math.pow(10, 1.5 * mw + 9.1)
    return np.power(10.0, 1.5 * np.asarray(mw) + 9.1)
''',
    "a3": '''
mw = np.array([float(e["mw"]) for e in catalog])
moments = seismic_moment(mw)
total_moment = 0.0
for m0 in moments:
    total_moment += m0
largest_share = sorted(moments)[-1] / total_moment
''',
    "a4": '''
from sklearn.preprocessing import StandardScaler
X_std = StandardScaler().fit_transform(X)
''',
    "a5": '''
n_long_petals = np.count_nonzero(X[:, 2] > 5)
mean_sepal_width = np.bincount(y, weights=X[:, 1]) / np.bincount(y)
''',
    "a6": '''
flowers = iris_frame.iloc[:, :4].copy()
flowers["species"] = pd.Categorical.from_codes(iris_frame["target"], iris.target_names)
''',
    "a7": '''
species_means = flowers.pivot_table(index="species", values=list(flowers.columns[:4]), aggfunc="mean",
                                    observed=True)
largest_petals = species_means["petal length (cm)"].idxmax()
''',
    "a8": '''
big = flowers.query("`petal length (cm)` > 5 and `sepal width (cm)` > 3")
big_species = dict(big.groupby("species", observed=False).size())  # a categorical: zero counts too
''',
    "a9": '''
fig_scatter, ax_scatter = plt.subplots()
for code, name in enumerate(iris.target_names):
    ax_scatter.scatter(X[y == code, 2], X[y == code, 3], label=name)
ax_scatter.set(xlabel="Petal length (cm)", ylabel="Petal width (cm)")
ax_scatter.legend()
''',
    "a10": '''
hist_counts, hist_edges = np.histogram(X[:, 2], bins=20)
fig_hist, ax_hist = plt.subplots()
ax_hist.stairs(hist_counts, hist_edges, fill=True)
ax_hist.set_xlabel("Petal length (cm)")
ax_hist.set_ylabel("Count")
''',
}

FUNCTIONAL_AND_PANDAS = {
    "a1": '''
names = list(map(lambda e: e["name"], catalog))
mw_by_name = dict(zip(names, (e["mw"] for e in catalog)))
strong_names = [n for n in names if mw_by_name[n] >= 7]
''',
    "a2": '''
    return np.exp(np.log(10.0) * (1.5 * np.asarray(mw) + 9.1))
''',
    "a3": '''
mw = pd.DataFrame(catalog)["mw"].to_numpy()
moments = seismic_moment(mw)
total_moment = float(np.sum(moments))
largest_share = float(moments[np.argmax(mw)] / total_moment)
''',
    "a4": '''
centred = X - X.mean(axis=0, keepdims=True)
X_std = centred / np.sqrt((centred ** 2).mean(axis=0))
''',
    "a5": '''
n_long_petals = len(X[X[:, 2] > 5])
mean_sepal_width = pd.Series(X[:, 1]).groupby(y).mean().to_numpy()
''',
    "a6": '''
flowers = iris_frame.copy()
flowers["species"] = [iris.target_names[code] for code in flowers["target"]]
flowers = flowers.drop(columns=["target"])
''',
    "a7": '''
species_means = flowers.groupby("species").agg("mean")
largest_petals = str(species_means.index[np.argmax(species_means["petal length (cm)"])])
''',
    "a8": '''
mask = (flowers["petal length (cm)"] > 5) & (flowers["sepal width (cm)"] > 3)
big = flowers.loc[mask]
big_species = {name: int((big["species"] == name).sum()) for name in big["species"].unique()}
''',
    "a9": '''
fig_scatter, ax_scatter = plt.subplots()
for name in ["setosa", "versicolor", "virginica"]:
    rows = flowers[flowers["species"] == name]
    ax_scatter.plot(rows["petal length (cm)"], rows["petal width (cm)"], "o", label=name)
ax_scatter.set_xlabel("petal length [cm]")
ax_scatter.set_ylabel("petal width [cm]")
ax_scatter.legend()
''',
    "a10": '''
fig_hist, ax_hist = plt.subplots()
bins = np.linspace(X[:, 2].min(), X[:, 2].max(), 21)
hist_counts, hist_edges, bars = ax_hist.hist(X[:, 2], bins=bins)
ax_hist.set(xlabel="Petal length (cm)", ylabel="Number of flowers")
''',
}

ALTERNATIVES = {"alt-loops": LOOPS_AND_LIBRARIES, "alt-pandas": FUNCTIONAL_AND_PANDAS}

SWAPPED_SCATTER = '''
fig_scatter, ax_scatter = plt.subplots()
for name, group in flowers.groupby("species"):
    ax_scatter.scatter(group["petal width (cm)"], group["petal length (cm)"], s=15, label=name)
ax_scatter.set_xlabel("petal width (cm)")
ax_scatter.set_ylabel("petal length (cm)")
ax_scatter.legend()
'''


def wrong_answers(master) -> dict[str, dict[str, str]]:
    """Typical mistakes, made from the master's own answers."""
    # operator precedence: 10 ** 1.5 * mw + 9.1; standardising with the mean and std of the whole array
    precedence = replaced(solution_of(master, "a2"), "10.0 ** (1.5 * np.asarray(mw, dtype=float) + 9.1)",
                          "10.0 ** 1.5 * np.asarray(mw, dtype=float) + 9.1")
    no_axis = replaced(solution_of(master, "a4"), "(X - X.mean(axis=0)) / X.std(axis=0)", "(X - X.mean()) / X.std()")
    # `|` for `&` in a selection; the axes of the scatter plot swapped
    either = replaced(solution_of(master, "a8"), ") & (", ") | (")
    return {"wrong-numpy": {"a2": precedence, "a4": no_axis}, "wrong-select": {"a8": either, "a9": SWAPPED_SCATTER}}


@pytest.fixture(scope="module")
def lab0(lab_builds, tmp_path_factory) -> SimpleNamespace:
    return run_lab(lab_builds, tmp_path_factory.mktemp("lab0"), A,
                   answers=lambda course, master: {**ALTERNATIVES, **wrong_answers(master)}, cell_timeout=30)


def test_the_master_is_short_fast_and_weighs_nothing(lab0):
    # (the solution gets every point and the release none: test_labs_common.py)
    assert lab0.report.master_seconds < 20
    assert lab0.report.questions == 10 and lab0.master.max_auto == 20
    assert lab0.master.manual == []
    assert lab0.master.settings["weight"] == 0  # informs, does not count in the course total
    # a self-evaluation: most points come from the checks students run themselves
    public = sum(c.points for q in lab0.master.questions for c in q.cases if not c.hidden)
    assert public / lab0.master.max_auto >= 0.7


@pytest.mark.parametrize("student", sorted(ALTERNATIVES))
def test_alternative_correct_solutions_get_full_marks(lab0, student):
    result = lab0.results[student]
    assert result.score == lab0.master.max_auto, lost(result)


def test_numpy_mistakes_lose_the_right_points(lab0):
    got = scores(lab0.results["wrong-numpy"])
    assert got["q2"] == 0.5  # 10 ** 1.5 * mw + 9.1: it still takes arrays and grows, nothing else is right
    assert got["q3"] == 1.5  # the catalogue's moments come from that function: only the reference check fails
    assert got["q4"] == 0.5  # whole-array mean and std: the shape is right, the column statistics are not
    assert all(got[q.grade_id] == q.points for q in lab0.master.questions if q.grade_id not in ("q2", "q3", "q4"))


def test_selection_and_plot_mistakes_lose_the_right_points(lab0):
    got = scores(lab0.results["wrong-select"])
    assert got["q8"] == 1  # `|` instead of `&`: a selection whose counts add up, but of the wrong rows
    assert got["q9"] == 0.5  # axes swapped: three colours, but the wrong labels, ranges and points
    assert all(got[q.grade_id] == q.points for q in lab0.master.questions if q.grade_id not in ("q8", "q9"))
    q9 = next(q for q in lab0.results["wrong-select"].questions if q.grade_id == "q9")
    failed = {c.name: c.message for c in q9.cases if not c.passed}
    assert set(failed) == {"scatter_axes_are_labelled", "scatter_shows_petal_width_against_length",
                           "every_flower_is_plotted"}
    assert "petal length" in failed["scatter_axes_are_labelled"]


def test_the_release_keeps_the_function_header_and_drops_the_weight(lab0):
    # (no solution or hidden line in any lab's release: test_labs_common.py)
    release = lab0.course.release_dir(A)
    everything = "\n".join(p.read_text(errors="replace") for p in release.rglob("*") if p.is_file())
    assert "def seismic_moment" in everything and "10.0 ** (1.5" not in everything
    released = nbformat.read(release / f"{A}.ipynb", as_version=4)
    assert "weight" not in released.metadata.get("edsgrade", {})


def test_instant_checks_work_in_the_student_notebook(lab0, tmp_path):
    """The released notebook run as a student would: the checks pass where the solution is filled in, and
    name the failing case where it is not (question 1 left unanswered; one run keeps the test short)."""
    work = tmp_path / "student"
    shutil.copytree(lab0.course.release_dir(A), work)
    release = nbformat.read(work / f"{A}.ipynb", as_version=4)
    nb = answer(release, lab0.master, [q.grade_id for q in lab0.master.questions if q.grade_id != "q1"])
    NotebookClient(nb, timeout=60, allow_errors=True, resources={"metadata": {"path": str(work)}}).execute()
    outputs = {c.metadata["nbgrader"]["grade_id"]: json.dumps(c.outputs) for c in nb.cells
               if c.source.startswith("grader.check")}
    assert sorted(outputs) == sorted(q.grade_id for q in lab0.master.questions)
    for gid, out in outputs.items():
        if gid != "q1":
            assert f"{gid} results: All test cases passed!" in out, (gid, out[:1500])
    assert "q1 results:" in outputs["q1"] and "All test cases passed" not in outputs["q1"]
    assert "names_is_a_list_of_every_name" in outputs["q1"]  # the failing public case is named
    assert "catalog_lists_match_reference" not in outputs["q1"]  # hidden cases never run there


def test_feedback_names_hidden_cases_but_never_shows_their_code(lab0):
    secret = lab0.master.secret_lines()
    for student in lab0.results:
        html = (lab0.root / "feedback" / student / A / f"{A}.html").read_text()
        leaked = [line for line in secret if len(line) > 12 and line in html]
        assert not leaked, (student, leaked[:3])
    html = (lab0.root / "feedback" / "wrong-numpy" / A / f"{A}.html").read_text()
    assert "moments_on_other_magnitudes" in html  # a hidden case, by name
    assert "is wrong on magnitudes other than 5-8" not in html  # ... but not its message
    assert "1.26e18 N m expected" in html  # a public case's message helps the student
