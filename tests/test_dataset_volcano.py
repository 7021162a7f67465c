"""Tests of the lab 2 dataset generator (edsgrade.datasets.volcano): formats, determinism, physics."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import obspy
import pandas as pd
import pytest
import scipy.signal
import scipy.stats
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_score

from edsgrade.datasets import generate, volcano


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("volcano")
    generate("volcano", dest, 2025)
    return dest


def _features(x: np.ndarray, fs: float) -> list[float]:
    """The lab's features (question 6 of the master notebook)."""
    x = x - x.mean()
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / fs)
    centroid = (freqs * power).sum() / power.sum()
    cumulative = np.cumsum(power) / power.sum()
    w = int(fs)
    env = np.convolve(np.abs(scipy.signal.hilbert(x)), np.ones(w) / w, mode="same")[w // 2: -(w // 2)]
    above = np.flatnonzero(env > 0.25 * env.max())
    return [centroid, np.sqrt(((freqs - centroid) ** 2 * power).sum() / power.sum()),
            *(freqs[np.searchsorted(cumulative, q)] for q in (0.25, 0.5, 0.75)),
            scipy.stats.kurtosis(x), scipy.stats.skew(x), above.size / fs, (env.argmax() - above[0]) / fs,
            20 * np.log10(env.max() / np.median(env[: int(4 * fs)]))]


def test_files_read_with_obspy_and_pandas(data):
    catalog = pd.read_csv(data / "catalog.csv", parse_dates=["time"])
    assert list(catalog.columns) == ["event_id", "time", "label", "file"]
    assert catalog["event_id"].is_unique and catalog["time"].is_monotonic_increasing
    assert set(catalog["label"]) == set(volcano.CLASSES)
    counts = catalog["label"].value_counts()
    assert counts.max() >= 1.5 * counts.min()  # unbalanced, like a real catalogue
    stream = obspy.read(str(data / catalog["file"].iloc[0]))
    assert [tr.id for tr in stream] == ["XV.SUM.00.BHZ", "XV.FLK.00.BHZ", "XV.BAS.00.BHZ"]
    assert all(tr.stats.sampling_rate == 50.0 and tr.stats.npts == 2000 for tr in stream)
    origin = obspy.UTCDateTime(catalog["time"].iloc[0].isoformat())
    assert stream[0].stats.starttime == origin - volcano.PRE_EVENT
    stations = pd.read_csv(data / "stations.csv")
    assert list(stations["station"]) == ["SUM", "FLK", "BAS"]
    size = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    assert size < 5e6


def test_same_seed_same_bytes_other_seed_other_draw(data, tmp_path):
    again = tmp_path / "again"
    generate("volcano", again, 2025)
    for name in ("catalog.csv", "waveforms/ev0001.mseed", "waveforms/ev0100.mseed"):
        assert (again / name).read_bytes() == (data / name).read_bytes(), name
    other = tmp_path / "other"
    generate("volcano", other, 7)
    assert (other / "catalog.csv").read_bytes() != (data / "catalog.csv").read_bytes()


def test_classes_have_their_physical_signature():
    rng = np.random.default_rng(1)
    feats = {k: np.array([_features(volcano.synth_event(k, rng, noise=False, offsets=False)["SUM"], 50.0)
                          for _ in range(20)]) for k in volcano.CLASSES}
    median = {k: np.median(v, axis=0) for k, v in feats.items()}  # columns as in _features
    centroid, duration, kurt = 0, 7, 5
    # high-frequency VT and icequakes, low-frequency LP and tremor
    assert min(median["VT"][centroid], median["IC"][centroid]) > max(median["LP"][centroid], median["TR"][centroid])
    assert 0.5 < median["LP"][3] < 5 and 0.5 < median["TR"][3] < 5  # f50 in the LP band
    # icequakes are the shortest, tremor the longest; rockfalls last tens of seconds
    assert median["IC"][duration] < median["VT"][duration] < median["AV"][duration] < median["TR"][duration]
    assert median["AV"][duration] > 8
    assert median["VT"][kurt] > median["TR"][kurt]  # impulsive vs sustained


def test_distance_attenuates_amplitude_and_high_frequencies():
    rng = np.random.default_rng(3)
    ratios, centroids = [], []
    for _ in range(10):
        rec = volcano.synth_event("VT", rng, noise=False, offsets=False)
        ratios.append(np.abs(rec["SUM"]).max() / np.abs(rec["BAS"]).max())
        centroids.append([_features(rec[s], 50.0)[0] for s in ("SUM", "BAS")])
    assert np.median(ratios) > 3  # the summit station is much closer than the base one
    centroids = np.array(centroids)
    assert (centroids[:, 0] > centroids[:, 1]).mean() >= 0.9  # attenuation removes high frequencies
    rec = volcano.synth_event("LP", np.random.default_rng(0), noise=False, offsets=False)
    onset = {s: np.argmax(np.abs(rec[s]) > 0.05 * np.abs(rec[s]).max()) for s in rec}
    assert onset["SUM"] < onset["BAS"]  # and arrives later


def test_classes_overlap_a_good_classifier_is_not_perfect(data):
    catalog = pd.read_csv(data / "catalog.csv")
    X, y = [], []
    for file, label in zip(catalog["file"], catalog["label"]):
        stream = obspy.read(str(data / file))
        best = max(stream, key=lambda tr: np.abs(tr.data - tr.data.mean()).max())
        X.append(_features(best.data.astype(float), best.stats.sampling_rate))
        y.append(label)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    accuracy = cross_val_score(RandomForestClassifier(200, random_state=0), np.array(X), np.array(y), cv=folds).mean()
    assert 0.72 <= accuracy <= 0.92, accuracy


def test_make_arrays_is_balanced_and_seeded():
    X, y = volcano.make_arrays(3, seed=5)
    assert X.shape == (15, 3, 2000) and X.dtype == np.float32
    assert np.bincount(y).tolist() == [3] * 5
    X2, y2 = volcano.make_arrays(3, seed=5)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    assert np.allclose(X.mean(axis=-1), 0, atol=0.05 * np.abs(X).max())  # no DC offset


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="use one of VT, LP, TR, AV, IC"):
        volcano.synth_event("EQ", np.random.default_rng(0))
    with pytest.raises(ValueError, match="at least 1"):
        volcano.make_arrays(0, seed=0)
