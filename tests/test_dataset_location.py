"""Tests of the lab 3 dataset generator (edsgrade.datasets.location): formats, determinism, physics."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from obspy import read, read_inventory
from obspy.signal.trigger import classic_sta_lta

from edsgrade.datasets import generate
from edsgrade.datasets import location


@pytest.fixture(scope="module")
def draws(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("location")
    for name, seed in (("a", 2019), ("again", 2019), ("other", 2020)):
        generate("location", root / name, seed)
    return {name: root / name for name in ("a", "again", "other")}


def _picks(folder: Path) -> dict[str, float]:
    """P picks (s after the start) with a plain STA/LTA, as a student would make them."""
    out = {}
    for tr in read(str(folder / location.WAVEFORM_FILE)):
        y = tr.copy().detrend("linear").taper(0.01).filter("bandpass", freqmin=2.0, freqmax=10.0).data
        ratio = classic_sta_lta(y, 50, 1000)
        out[tr.stats.station] = np.flatnonzero(ratio > 4.0)[0] / tr.stats.sampling_rate
    return out


def test_same_seed_same_bytes_and_data_is_small(draws):
    for name in (location.WAVEFORM_FILE, location.INVENTORY_FILE, location.INSAR_FILE):
        assert (draws["a"] / name).read_bytes() == (draws["again"] / name).read_bytes(), name
    assert sum(p.stat().st_size for p in draws["a"].iterdir()) < 5e6


def test_obspy_reads_a_stream_whose_traces_have_coordinates(draws):
    st = read(str(draws["a"] / location.WAVEFORM_FILE))
    inv = read_inventory(str(draws["a"] / location.INVENTORY_FILE))
    assert len(st) == len(location.STATIONS) == 11
    assert {tr.stats.sampling_rate for tr in st} == {100.0}
    assert len({str(tr.stats.starttime) for tr in st}) == 1
    for tr in st:
        coords = inv.get_coordinates(tr.id)
        assert (coords["latitude"], coords["longitude"]) == location.STATIONS[tr.stats.station][:2]
        dist = location.great_circle_km(location.PUBLISHED_LAT, location.PUBLISHED_LON, coords["latitude"],
                                        coords["longitude"])
        assert 5 < dist < 150


def test_sta_lta_picks_recover_the_simulated_arrivals(draws):
    sim = location.simulate(2019)
    truth = dict(zip(sim.codes, sim.p_arrival + sim.clock_error))
    picks = _picks(draws["a"])
    assert all(abs(picks[c] - truth[c]) < 0.15 for c in sim.codes), {c: picks[c] - truth[c] for c in sim.codes}
    # the arrivals follow the constant-velocity model up to pick-scale errors, except the faulty clock
    residual = sim.p_arrival - sim.origin_offset - sim.distance_km / sim.vp
    assert np.abs(residual).max() < 0.6
    faulty = np.flatnonzero(sim.clock_error)
    assert faulty.size == 1 and 2.5 <= abs(sim.clock_error[faulty[0]]) <= 4.0
    assert faulty[0] not in np.argsort(sim.distance_km)[:3]


def test_another_seed_is_another_draw_beyond_the_grading_tolerances(draws):
    a, b = _picks(draws["a"]), _picks(draws["other"])
    assert sum(abs(a[c] - b[c]) > 0.3 for c in a) >= 9  # a hard-coded pick list fails on a hidden draw
    s1, s2 = location.simulate(2019), location.simulate(2020)
    assert abs(s1.origin_offset - s2.origin_offset) > 0.25 or s1.epi_lat != s2.epi_lat
    st1 = read(str(draws["a"] / location.WAVEFORM_FILE))
    st2 = read(str(draws["other"] / location.WAVEFORM_FILE))
    assert st1[0].stats.starttime != st2[0].stats.starttime  # the origin time is not guessable


@pytest.mark.parametrize("seed", [2019, 2020, 7])
def test_insar_uplift_lobe_lies_near_the_epicentre(tmp_path, seed):
    generate("location", tmp_path, seed)
    sim = location.simulate(seed)
    grid = np.load(tmp_path / location.INSAR_FILE)
    assert grid["los_cm"].shape == (grid["lat"].size, grid["lon"].size)
    i, j = np.unravel_index(np.argmax(grid["los_cm"]), grid["los_cm"].shape)
    assert 7 < grid["los_cm"][i, j] < 14  # ~10 cm of uplift (Cornou et al. 2021)
    assert location.great_circle_km(sim.epi_lat, sim.epi_lon, grid["lat"][i], grid["lon"][j]) < 3.5
