"""Tests of lab 5's data (edsgrade.datasets.deeplearning and .picking): formats, determinism, physics."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.signal

from edsgrade.datasets import deeplearning, generate, picking, volcano


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("deeplearning")
    generate("deeplearning", dest, 2025)
    return dest


def test_files_hold_the_arrays_the_lab_reads(data):
    assert sorted(p.name for p in data.iterdir()) == [deeplearning.PICKING_FILE, deeplearning.EVENTS_FILE]
    events = np.load(data / deeplearning.EVENTS_FILE)
    assert events["X"].shape == (5 * deeplearning.EVENTS_PER_CLASS, 3, 2000) and events["X"].dtype == np.float32
    assert np.bincount(events["y"]).tolist() == [deeplearning.EVENTS_PER_CLASS] * 5
    assert list(events["classes"]) == list(volcano.CLASSES) and float(events["fs"]) == volcano.FS
    windows = np.load(data / deeplearning.PICKING_FILE)
    assert windows["X"].shape == (deeplearning.PICKING_RECORDS, 3, picking.N_SAMPLES)
    assert windows["picks"].shape == (deeplearning.PICKING_RECORDS, 2)
    assert list(windows["components"]) == ["Z", "N", "E"] and float(windows["fs"]) == picking.FS
    assert sum(p.stat().st_size for p in data.iterdir()) < 12e6


def test_same_seed_same_bytes_other_seed_other_draw(data, tmp_path):
    generate("deeplearning", tmp_path / "again", 2025)
    for name in (deeplearning.EVENTS_FILE, deeplearning.PICKING_FILE):
        assert (tmp_path / "again" / name).read_bytes() == (data / name).read_bytes()
    other, _ = picking.make_arrays(3, seed=1)
    again, _ = picking.make_arrays(3, seed=2)
    assert not np.allclose(other, again)


def test_arrivals_lie_in_the_window_p_before_s():
    _, picks = picking.make_arrays(200, seed=3)
    p, s = picks[:, 0] / picking.FS, picks[:, 1] / picking.FS
    assert (p >= 2.0).all() and (p <= 9.0).all()
    assert (s > p).all() and (s < picking.N_SAMPLES / picking.FS - 3.0 + 1e-9).all()
    # S-P times of local earthquakes 5-70 km away and 4-20 km deep: r (1/vs - 1/vp), about r / 8 s
    sp = s - p
    r_min, r_max = np.hypot(5.0, 4.0), np.hypot(70.0, 20.0)
    factor = 1 / picking.VS - 1 / picking.VP
    assert sp.min() >= r_min * factor - 1e-9 and sp.max() <= r_max * factor + 1e-9


def test_the_waves_start_at_the_picks_with_the_right_polarisation():
    X, picks = picking.make_arrays(150, seed=4)
    fs = picking.FS
    # above 1 Hz, as an analyst filters before picking: the microseism hides nothing there
    highpass = scipy.signal.butter(4, 1.0, "highpass", fs=fs, output="sos")
    filtered = scipy.signal.sosfiltfilt(highpass, X.astype(float), axis=2)
    ratios_p, ratios_s, jumps = [], [], []
    for x, (p, s) in zip(filtered, picks):
        p, s = int(round(p)), int(round(s))
        noise = x[:, : p - 10].std(axis=1)
        after_p = np.abs(x[:, p: p + int(0.5 * fs)]).max(axis=1)
        after_s = np.abs(x[:, s: s + int(1.0 * fs)]).max(axis=1)
        jumps.append(x[:, p: p + int(0.5 * fs)].std(axis=1).max() / noise.max())  # RMS after P over before
        ratios_p.append(after_p[0] / after_p[1:].max())  # P: vertical over the larger horizontal
        ratios_s.append(after_s[0] / after_s[1:].max())  # S: the same ratio, smaller
    # the P onset stands out of the noise on most records (the weakest ones barely do, as on real data)
    assert np.median(jumps) > 2.5 and np.mean(np.asarray(jumps) > 1.5) > 0.7
    # P is longitudinal (steep incidence: mostly vertical), S transverse (mostly horizontal)
    assert np.median(ratios_p) > 1.0 > np.median(ratios_s)


def test_gaussian_labels_peak_at_the_picks_and_sum_to_one():
    picks = np.array([[100.0, 300.0], [50.5, 60.0]])
    labels = picking.gaussian_labels(picks, n=400, sigma=8.0)
    assert labels.shape == (2, 3, 400) and labels.dtype == np.float32
    assert labels[0, 0].argmax() == 100 and labels[0, 1].argmax() == 300
    assert np.isclose(labels[0, 0, 108], np.exp(-0.5), atol=1e-6)  # one sigma away
    assert np.allclose(labels[0].sum(axis=0), 1.0, atol=1e-6)  # P, S and noise are probabilities
    assert (labels[1, 2] >= 0).all()  # overlapping P and S: noise clipped at 0
    with pytest.raises(ValueError, match="shape"):
        picking.gaussian_labels(np.zeros(4))


def test_bad_sizes_are_refused_clearly():
    with pytest.raises(ValueError, match="at least 1"):
        picking.make_arrays(0, seed=1)
