"""lab3-location through the whole pipeline: build, release, submissions, grading, feedback.

One module-scoped course (``labkit.run_lab`` on the session's build), every submission graded in a
single ``grade_run`` call, each on a hidden draw of the data (the master's ``variants``). The
cohort (the solution and the release are graded in ``test_labs_common.py``): two alternative correct solutions (own STA/LTA and loops everywhere; ObsPy's recursive
STA/LTA and ``locations2degrees``), three typical mistakes (distances in metres, sigma not squared in
the Gaussian, degrees fed to ``np.sin``) and picks typed by hand from the released data.

The forward operator and the likelihoods (q4, q5, q8) are graded by calling the student's functions
on inputs the notebook never uses, which needs the grading engine's function proxies.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from edsgrade.simulate.cohort import solution_of
from edsgrade.course import Course
from edsgrade.grading.sandbox.plaindata import decode_names
from labkit import replaced, run_lab, scores

A = "lab3-location"

# Alternative 1: a hand-written STA/LTA, scalar functions with the math module, loops over the grid.
ALTERNATIVE_LOOPS = {
    "a3": '''
picks = {}
for tr in st:
    y = tr.copy().detrend("linear").taper(0.01).filter("bandpass", freqmin=2.0, freqmax=10.0).data
    fs = tr.stats.sampling_rate
    ns, nl = int(1.0 * fs), int(10.0 * fs)
    energy = np.concatenate([[0.0], np.cumsum(y.astype(float) ** 2)])
    k = np.arange(nl + ns, len(y))
    sta = (energy[k] - energy[k - ns]) / ns
    lta = (energy[k - ns] - energy[k - ns - nl]) / nl
    picks[tr.stats.station] = k[np.flatnonzero(sta / lta > 5.0)[0]] / fs
picks = pd.Series(picks)
''',
    "a4": '''
import math

def travel_time(lat, lon, sta_lat, sta_lon, v):
    out = []
    for la, lo in zip(sta_lat, sta_lon):
        p1, p2 = math.radians(lat), math.radians(la)
        h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lo - lon) / 2) ** 2
        out.append(2 * 6371.0 * math.asin(math.sqrt(h)) / v)
    return np.array(out)
''',
    "a5": '''
def log_likelihood_gaussian(lat, lon, picks, sta_lat, sta_lon, v, sigma):
    tt = travel_time(lat, lon, sta_lat, sta_lon, v)
    r = [p - t for p, t in zip(picks, tt)]
    t0 = sum(r) / len(r)
    n = len(r)
    return -n / 2 * math.log(2 * math.pi * sigma ** 2) - sum((x - t0) ** 2 for x in r) / (2 * sigma ** 2)
''',
    "a6": '''
def grid_of(func, codes, v, scale):
    t = [picks[c] for c in codes]
    la = [stations.loc[c, "latitude"] for c in codes]
    lo = [stations.loc[c, "longitude"] for c in codes]
    out = np.zeros((len(grid_lat), len(grid_lon)))
    for i in range(len(grid_lat)):
        for j in range(len(grid_lon)):
            out[i, j] = func(grid_lat[i], grid_lon[j], t, la, lo, v, scale)
    return out

def argmax_of(m):
    best = (0, 0)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if m[i, j] > m[best]:
                best = (i, j)
    return grid_lat[best[0]], grid_lon[best[1]]

closest3 = list(epi_dist_km.index[:3])
loglik3 = grid_of(log_likelihood_gaussian, closest3, V_P, SIGMA)
loglik_all = grid_of(log_likelihood_gaussian, list(picks.index), V_P, SIGMA)
ml_lat, ml_lon = argmax_of(loglik_all)
''',
    "a7": '''
tt = travel_time(ml_lat, ml_lon, stations.loc[picks.index, "latitude"], stations.loc[picks.index, "longitude"], V_P)
r = picks - tt
residuals = r - r.mean()
worst_station = residuals.abs().sort_values().index[-1]
''',
    "a8": '''
def log_likelihood_laplace(lat, lon, picks, sta_lat, sta_lon, v, b):
    tt = travel_time(lat, lon, sta_lat, sta_lon, v)
    r = sorted(p - t for p, t in zip(picks, tt))
    t0 = float(np.median(r))
    return -len(r) * math.log(2 * b) - sum(abs(x - t0) for x in r) / b
''',
    "a9": '''
import math

def km_between(lat1, lon1, lat2, lon2):
    return travel_time(lat1, lon1, [lat2], [lon2], 1.0)[0]

loglik_laplace = grid_of(log_likelihood_laplace, list(picks.index), V_P, B_LAPLACE)
laplace_lat, laplace_lon = argmax_of(loglik_laplace)
others = [c for c in picks.index if c != worst_station]
g = argmax_of(grid_of(log_likelihood_gaussian, others, V_P, SIGMA))
l = argmax_of(grid_of(log_likelihood_laplace, others, V_P, B_LAPLACE))
shift_gauss_km = km_between(ml_lat, ml_lon, g[0], g[1])
shift_laplace_km = km_between(laplace_lat, laplace_lon, l[0], l[1])
''',
    "a10": '''
uplift = np.where(los > 0, los, 0.0) + 0.1
prior = uplift / np.sum(uplift)
''',
    "a11": '''
lp = loglik_laplace + np.log(prior)
posterior = np.exp(lp - np.max(lp))
posterior /= posterior.sum()
map_lat, map_lon = argmax_of(posterior)
tt = travel_time(map_lat, map_lon, stations.loc[picks.index, "latitude"], stations.loc[picks.index, "longitude"], V_P)
origin_time = str(t_start + float(np.median(picks.to_numpy() - tt)))
flat = np.sort(posterior.ravel())[::-1]
threshold = flat[np.flatnonzero(np.cumsum(flat) >= 0.9)[0]]
credible_mask = posterior >= threshold
dy = 0.004 * math.pi / 180 * 6371.0
credible_area_km2 = float(sum(dy * dy * math.cos(math.radians(grid_lat[i])) for i, j in zip(*np.nonzero(credible_mask))))
''',
    "a12": '''
table = []
for v in VELOCITIES:
    lpv = grid_of(log_likelihood_laplace, list(picks.index), v, B_LAPLACE) + np.log(prior)
    la, lo = argmax_of(lpv)
    tt = travel_time(la, lo, stations.loc[picks.index, "latitude"], stations.loc[picks.index, "longitude"], v)
    r = picks.to_numpy() - tt
    table.append({"v": v, "map_lat": la, "map_lon": lo, "misfit_s": np.median(np.abs(r - np.median(r)))})
velocity_table = pd.DataFrame(table).set_index("v")
best_velocity = velocity_table["misfit_s"].idxmin()
''',
}

# Alternative 2: ObsPy's recursive STA/LTA with trigger_onset, distances with obspy.geodetics, vectorised.
ALTERNATIVE_OBSPY = {
    "a2": '''
from obspy.geodetics import locations2degrees
epi_dist_km = pd.Series(locations2degrees(LE_TEIL_LAT, LE_TEIL_LON, stations["latitude"].to_numpy(),
                                          stations["longitude"].to_numpy()) * 111.195, index=stations.index)
epi_dist_km = epi_dist_km.sort_values()
''',
    "a3": '''
picks = pd.Series(dtype=float)
for tr in st:
    f = tr.copy()
    f.detrend("linear")
    f.taper(0.01)
    f.filter("bandpass", freqmin=2.0, freqmax=10.0)
    fs = f.stats.sampling_rate
    cft = recursive_sta_lta(f.data, int(0.5 * fs), int(10 * fs))
    cft[: int(10 * fs)] = 0.0
    on_off = trigger_onset(cft, 5.0, 1.0)
    picks[f.stats.station] = on_off[0][0] / fs
''',
    "a4": '''
from obspy.geodetics import locations2degrees

def travel_time(lat, lon, sta_lat, sta_lon, v):
    return locations2degrees(lat, lon, np.asarray(sta_lat), np.asarray(sta_lon)) * 111.195 / v
''',
}

WRONG_UNITS = {  # gps2dist_azimuth gives metres: the distances are not converted to km
    "a2": '''
from obspy.geodetics import gps2dist_azimuth
epi_dist_km = pd.Series({c: gps2dist_azimuth(LE_TEIL_LAT, LE_TEIL_LON, r.latitude, r.longitude)[0]
                         for c, r in stations.iterrows()}).sort_values()
''',
}
WRONG_SIGMA = "sigma**2"  # replaced by `sigma` in the master's a5: the square of sigma forgotten
WRONG_RADIANS = 'np.radians(np.asarray(sta_lon, dtype=float)) - np.radians(lon)'  # -> degrees in np.sin


def hard_coded_picks(course: Course, master) -> str:
    """Answer a3 as a student who typed the picks they read on the released data."""
    picks = decode_names(course.assignment(master.assignment).reference()["q3"])["picks"]
    return "picks = pd.Series(" + repr({k: round(float(v), 2) for k, v in picks.items()}) + ")"


def own_answers(course, master) -> dict[str, dict[str, str]]:
    return {
        "loops": ALTERNATIVE_LOOPS,
        "obspy": ALTERNATIVE_OBSPY,
        "metres": WRONG_UNITS,
        "sigma": {"a5": replaced(solution_of(master, "a5"), WRONG_SIGMA, "sigma")},
        "degrees": {"a4": replaced(solution_of(master, "a4"), WRONG_RADIANS, "np.asarray(sta_lon, dtype=float) - lon")
                    .replace("dphi = phi2 - phi1", "dphi = np.asarray(sta_lat, dtype=float) - lat")},
        "hardcoded": {"a3": hard_coded_picks(course, master)},
    }


@pytest.fixture(scope="module")
def lab3(lab_builds, tmp_path_factory) -> SimpleNamespace:
    return run_lab(lab_builds, tmp_path_factory.mktemp("lab3"), A, answers=own_answers, cell_timeout=60)


def test_the_master_runs_top_to_bottom_within_90_seconds(lab3):
    assert lab3.report.master_seconds < 90
    assert lab3.report.questions >= 8
    assert lab3.report.manual_points > 0  # interpretation graded by hand


def test_data_is_generated_at_build(lab3):
    # (every lab's release is small: test_labs_common.py)
    data = lab3.course.release_dir(A) / "data"
    files = sorted(p.name for p in data.iterdir())
    assert files == ["insar_los.npz", "leteil_2019-11-11.mseed", "stations.xml"]


def test_hidden_draws_are_not_released(lab3):
    release_nb = (lab3.course.release_dir(A) / f"{A}.ipynb").read_text()
    assert "variants" not in release_nb and "4901" not in release_nb


@pytest.mark.parametrize("student", ["loops", "obspy"])
def test_alternative_correct_solutions_get_full_marks(lab3, student):
    got = scores(lab3.results[student])
    lost = {q: p for q, p in got.items() if p != lab3.master.question(q).points}
    assert not lost, (student, lost, lab3.results[student].message)


def test_distances_in_metres_lose_exactly_the_distance_question(lab3):
    got = scores(lab3.results["metres"])
    assert got["q2"] == 0
    assert all(got[q.grade_id] == q.points for q in lab3.master.questions if q.grade_id != "q2")


def test_a_forgotten_square_on_sigma_loses_the_likelihood_points(lab3):
    got = scores(lab3.results["sigma"])
    assert got["q5"] == 1  # the public check (ordering) passes, the values on hidden inputs do not
    assert got["q6"] == 2  # the maximum is unchanged, the likelihood map is too flat
    untouched = [q for q in lab3.master.questions if q.grade_id not in ("q5", "q6")]
    assert all(got[q.grade_id] == q.points for q in untouched)


def test_degrees_in_the_trigonometry_lose_the_forward_operator(lab3):
    got = scores(lab3.results["degrees"])
    assert got["q4"] == 0
    for q in ("q1", "q2", "q3", "q10"):  # what comes before or does not use travel times
        assert got[q] == lab3.master.question(q).points
    assert lab3.results["degrees"].score < lab3.master.max_auto - 6


def test_every_submission_is_graded_on_a_hidden_draw(lab3):
    seeds = lab3.master.settings["variants"]
    assert all(r.variant in seeds for r in lab3.results.values() if r.status == "graded")


def test_picks_typed_from_the_released_data_fail_on_the_hidden_draw(lab3):
    got = scores(lab3.results["hardcoded"])
    assert got["q3"] == 1  # the public format check passes; the picks are not those of the graded data
    assert lab3.results["hardcoded"].score < lab3.master.max_auto - 8  # everything built on them is off too
    assert got["q4"] == got["q5"] == got["q8"] == 3  # the functions do not depend on the picks


def test_the_release_holds_no_solution_function(lab3):
    # (no solution or hidden line in any lab's release: test_labs_common.py)
    release = lab3.course.release_dir(A)
    text = (release / f"{A}.ipynb").read_text()
    assert "classic_sta_lta(filtered.data" not in text and "def travel_time" not in text


def test_feedback_names_hidden_cases_without_their_code(lab3):
    html = (lab3.root / "feedback" / "sigma" / A / f"{A}.html").read_text()
    assert "gaussian_likelihood_on_new_inputs" in html
    assert "haversine" not in html and "def expected" not in html
