"""Tests of the lab 1 dataset generator (edsgrade.datasets.river): formats, determinism, physics."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from edsgrade.datasets import generate
from edsgrade.datasets import river

SEEDS = [0, 7, 2025]


def _read_sensor(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, comment="#", na_values=[river.MISSING_CODE], parse_dates=["timestamp"],
                     index_col="timestamp")
    return df.rename(columns={"turbidity_ntu": "turbidity", "level_cm": "level"})


def _read_lab(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, sep=";", decimal=",")
    df.index = pd.to_datetime(df["date"] + " " + df["time"], format="%d/%m/%Y %H:%M")
    return df


def _calibration(sensor: pd.DataFrame, lab: pd.DataFrame) -> pd.DataFrame:
    """Lab samples with the nearest sensor reading (within 10 min) and the level change over 1 h."""
    sensor = sensor.assign(dlevel=sensor["level"].diff(4))
    calib = pd.merge_asof(lab, sensor, left_index=True, right_index=True, direction="nearest",
                          tolerance=pd.Timedelta("10min"))
    return calib.dropna(subset=["turbidity", "level", "dlevel"])


@pytest.fixture(scope="module", params=SEEDS)
def files(request, tmp_path_factory) -> tuple[int, Path, Path]:
    dest = tmp_path_factory.mktemp(f"river{request.param}")
    sensor, lab = generate("river", dest, request.param)
    return request.param, sensor, lab


@pytest.fixture(scope="module")
def data(files) -> tuple[int, pd.DataFrame, pd.DataFrame]:
    seed, sensor, lab = files
    return seed, _read_sensor(sensor), _read_lab(lab)


def test_same_seed_gives_byte_identical_files(tmp_path):
    first = generate("river", tmp_path / "a", 11)
    second = generate("river", tmp_path / "b", 11)
    assert [p.name for p in first] == [p.name for p in second] == [river.SENSOR_FILE, river.LAB_FILE]
    for p, q in zip(first, second):
        assert p.read_bytes() == q.read_bytes(), p.name


def test_other_seed_gives_another_draw(tmp_path):
    first = generate("river", tmp_path / "a", 11)
    second = generate("river", tmp_path / "b", 12)
    for p, q in zip(first, second):
        assert p.read_bytes() != q.read_bytes(), p.name
    assert river.simulate(11).b != river.simulate(12).b


def test_generation_is_fast_and_small(tmp_path):
    start = time.perf_counter()
    paths = generate("river", tmp_path, 3)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"generation took {elapsed:.2f} s"
    total = sum(p.stat().st_size for p in paths)
    assert total < 5e6, f"{total} bytes"


def test_sensor_file_format(files):
    _, sensor, _ = files
    lines = sensor.read_text(encoding="utf-8").splitlines()
    header = [l for l in lines if l.startswith("#")]
    assert lines[: len(header)] == header, "header lines come first"
    assert any(str(river.MISSING_CODE) in l for l in header), "the header documents the missing-value code"
    assert lines[len(header)] == "timestamp,turbidity_ntu,level_cm"
    assert len(lines) - len(header) - 1 == river.N_STEPS == 3 * 365 * 96
    assert lines[len(header) + 1].startswith("2021-01-01 00:00:00,")
    assert lines[-1].startswith("2023-12-31 23:45:00,")
    assert all(l.count(",") == 2 for l in lines[len(header):]), "comma-delimited, three columns"


def test_sensor_regular_grid(data):
    _, sensor, _ = data
    steps = np.diff(sensor.index.values).astype("timedelta64[m]").astype(int)
    assert (steps == 15).all()


def test_missing_code_in_runs_and_isolated(files):
    _, sensor, _ = files
    raw = pd.read_csv(sensor, comment="#")
    code = str(river.MISSING_CODE)
    assert not raw.isna().any().any(), "missing values are coded, never left empty"
    for column in ("turbidity_ntu", "level_cm"):
        missing = (raw[column] == river.MISSING_CODE).to_numpy()
        assert 0.001 < missing.mean() < 0.1, column
        edges = np.flatnonzero(np.diff(np.concatenate([[0], missing.astype(int), [0]])))
        runs = edges[1::2] - edges[::2]
        assert runs.max() >= 96, f"{column}: no gap of a day or more"
        assert (runs == 1).sum() >= 10, f"{column}: no isolated missing values"
    text = sensor.read_text(encoding="utf-8")
    assert f",{code}," in text or f",{code}\n" in text
    assert "nan" not in text.lower().split("timestamp", 1)[1]


def test_lab_file_semicolon_decimal_comma(files):
    _, _, lab = files
    lines = lab.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "sample_id;date;time;sampling;ssc_mg_l"
    assert all(l.count(";") == 4 for l in lines), "semicolon-delimited, five columns"
    assert all("." not in l.split(";")[4] and "," in l.split(";")[4] for l in lines[1:]), "decimal comma"
    df = _read_lab(lab)
    assert df["ssc_mg_l"].dtype == float
    assert 200 <= len(df) <= 400
    assert df.index.is_monotonic_increasing
    assert set(df["sampling"]) == {"manual", "automatic"}
    assert (df["ssc_mg_l"] > 0).all()
    # times are not on the logger's 15-minute grid
    assert (df.index.minute % 15 != 0).mean() > 0.5
    # French day-first dates: some days are > 12, so a month-first parse would fail
    assert (df.index.day > 12).any()


def test_storms_present_with_turbidity_leading_level(data):
    _, sensor, _ = data
    level = sensor["level"].interpolate(limit_direction="both")
    turbidity = sensor["turbidity"]
    baseline = level.rolling("5D", center=True).quantile(0.1)
    excess = (level - baseline).to_numpy()
    above = excess > 20.0
    starts = np.flatnonzero(above[1:] & ~above[:-1])
    assert 10 * 3 <= starts.size <= 40 * 3, f"{starts.size} storms above 20 cm in 3 years"
    assert np.nanmax(excess) > 80.0, "at least one large flood"
    # the 10 largest storms: sharp rise, slower recession, turbidity peak before the level peak
    leads, ratios, seen = [], [], []
    order = np.argsort(np.where(np.isnan(excess), -1.0, excess))[::-1]
    for peak in order:
        if len(seen) >= 10:
            break
        if any(abs(peak - p) < 3 * 96 for p in seen):
            continue  # same storm as a larger peak already seen
        seen.append(peak)
        window = slice(max(peak - 48, 0), peak + 1)  # the 12 hours before the level peak
        t_window = turbidity.iloc[window].to_numpy()
        if np.isnan(t_window).any() or not (excess[:peak] < excess[peak] / 2).any():
            continue
        leads.append(peak - (window.start + int(np.argmax(t_window))))
        half = excess[peak] / 2
        rise = peak - np.flatnonzero(excess[:peak] < half)[-1]
        below_after = np.flatnonzero(excess[peak:] < half)
        fall = below_after[0] if below_after.size else excess.size - peak
        ratios.append(fall / max(rise, 1))
    assert len(leads) >= 5
    assert np.median(leads) >= 1, f"turbidity should peak before the level, lead (steps) = {leads}"
    assert np.median(ratios) > 2, f"recession should be slower than the rise, ratios = {ratios}"


def test_baseflow_seasonality(data):
    _, sensor, _ = data
    monthly = sensor["level"].groupby(sensor.index.month).median()
    assert monthly.loc[[1, 2, 3]].mean() > monthly.loc[[7, 8, 9]].mean() + 10


def test_event_based_sampling_oversamples_storms(data):
    _, sensor, lab = data
    calib = _calibration(sensor, lab)
    auto = calib["sampling"] == "automatic"
    assert 0.3 < auto.mean() < 0.9
    assert calib.loc[auto, "level"].median() > calib.loc[~auto, "level"].median() + 10
    assert calib["level"].median() > sensor["level"].median()


def _loglog_fit(calib: pd.DataFrame) -> tuple[float, float, np.ndarray]:
    """Least-squares fit of ln SSC = ln a + b ln T, refitted once without the >3-MAD residuals."""
    x, y = np.log(calib["turbidity"].to_numpy()), np.log(calib["ssc_mg_l"].to_numpy())
    keep = np.ones(x.size, bool)
    for _ in range(2):
        b, ln_a = np.polyfit(x[keep], y[keep], 1)
        resid = y - (ln_a + b * x)
        mad = np.median(np.abs(resid - np.median(resid)))
        keep = np.abs(resid) < 3 * 1.4826 * mad
    return float(np.exp(ln_a)), float(b), resid


def test_power_law_recoverable(data):
    seed, sensor, lab = data
    sim = river.simulate(seed)
    calib = _calibration(sensor, lab)
    a, b, resid = _loglog_fit(calib)
    assert abs(b - sim.b) < 0.12, f"fitted b = {b:.3f}, true b = {sim.b:.3f}"
    assert 0.6 < a / sim.a < 1.6, f"fitted a = {a:.3f}, true a = {sim.a:.3f}"
    assert 0.85 <= sim.b / 1.0 <= 1.2
    # the relation explains most of the variance in log space
    y = np.log(calib["ssc_mg_l"].to_numpy())
    assert 1 - np.var(resid) / np.var(y) > 0.8


def test_gross_outliers_present(data):
    seed, sensor, lab = data
    sim = river.simulate(seed)
    assert 1 <= sim.sample_outlier.sum() <= 0.06 * sim.sample_outlier.size
    _, _, resid = _loglog_fit(_calibration(sensor, lab))
    assert (np.abs(resid) > 0.8).sum() >= 1, "some samples far off the power law"


def test_clockwise_hysteresis(data):
    seed, sensor, lab = data
    calib = _calibration(sensor, lab)
    _, _, resid = _loglog_fit(calib)
    rising = (calib["dlevel"] > 1).to_numpy()
    falling = (calib["dlevel"] < -1).to_numpy()
    assert rising.sum() >= 20 and falling.sum() >= 15
    gap = np.median(resid[rising]) - np.median(resid[falling])
    assert gap > 0.1, f"rising-limb residuals should exceed falling-limb ones, gap = {gap:.3f}"
    sim = river.simulate(seed)
    assert (sim.sample_limb > 0.5).sum() >= 20 and (sim.sample_limb < -0.1).sum() >= 10


def test_fouling_biases_turbidity_upward_then_resets(data):
    seed, _, _ = data
    sim = river.simulate(seed)
    fouled = sim.fouling > 0
    assert 0.02 < fouled.mean() < 0.4
    ok = fouled & ~np.isnan(sim.turbidity)
    ratio = np.median(sim.turbidity[ok] / sim.turbidity_true[ok])
    assert ratio > 1.1, f"fouled readings should be biased upward, median ratio {ratio:.2f}"
    # resets: the bias drops back to zero from one step to the next (cleaning)
    drops = np.flatnonzero((sim.fouling[:-1] > 1.0) & (sim.fouling[1:] == 0))
    assert drops.size >= 2
