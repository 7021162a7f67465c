"""The well-log generator of the exam: seeded, physical, labels of the blind wells only on the hidden side."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from edsgrade import datasets
from edsgrade.datasets import welllogs
from edsgrade.datasets.welllogs import FACIES, LOGS


@pytest.fixture(scope="module")
def draw():
    return welllogs.simulate(2026)


def test_same_seed_same_bytes_other_seed_other_draw(tmp_path):
    a = datasets.generate("welllogs", tmp_path / "a", 5)
    b = datasets.generate("welllogs", tmp_path / "b", 5)
    c = datasets.generate("welllogs", tmp_path / "c", 6)
    assert [p.name for p in a] == ["train.csv", "test.csv"]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b))
    assert a[0].read_bytes() != c[0].read_bytes()


def test_students_files_have_no_test_labels_and_hidden_files_do(tmp_path):
    datasets.generate("welllogs", tmp_path / "data", 5)
    hidden = datasets.generate_hidden("welllogs", tmp_path / "hidden", 5)
    train = pd.read_csv(tmp_path / "data" / "train.csv")
    test = pd.read_csv(tmp_path / "data" / "test.csv")
    labels = pd.read_csv(tmp_path / "hidden" / "test_labels.csv")
    audit = pd.read_csv(tmp_path / "hidden" / "audit.csv")
    assert [p.name for p in hidden] == ["test_labels.csv", "audit.csv"]
    assert list(test.columns) == ["id", "well", "depth", *LOGS]
    assert list(train.columns) == ["well", "depth", *LOGS, "facies"]
    assert list(labels["id"]) == list(test["id"]) and test["id"].is_unique
    wells = [set(train["well"]), set(test["well"]), set(audit["well"])]
    assert [len(w) for w in wells] == [8, 3, 2]
    assert not (wells[0] & wells[1] or wells[0] & wells[2] or wells[1] & wells[2])
    assert set(labels["facies"]) <= set(FACIES) and set(train["facies"]) == set(FACIES)
    assert datasets.generate_hidden("river", tmp_path / "none", 5) == []  # a dataset with no hidden side


def test_logs_follow_petrophysics(draw):
    med = draw["train"].groupby("facies")[LOGS].median()
    assert med.loc["shale", "GR"] > med.loc["siltstone", "GR"] > med.loc["sandstone", "GR"] > med.loc["limestone", "GR"]
    assert med.loc["anhydrite", "RHOB"] == med["RHOB"].max()  # densest mineral, tight
    assert med.loc["anhydrite", "RT"] == med["RT"].max()  # no porosity: resistive
    assert med.loc["limestone", "PE"] > med.loc["dolomite", "PE"] > med.loc["sandstone", "PE"]
    assert med.loc["shale", "NPHI"] == med["NPHI"].max()  # clay-bound water
    assert med.loc["dolomite", "DT"] < med.loc["sandstone", "DT"]
    train = draw["train"]
    assert train["RT"].min() > 0 and train["RHOB"].between(1.5, 3.2).all()
    assert 0.2 < (train["facies"] == "shale").mean() < 0.45 and (train["facies"] == "anhydrite").mean() > 0.02


def test_compaction_lowers_porosity_with_depth():
    rng = np.random.default_rng(0)
    wells = [welllogs.simulate_well(f"X{i}", rng) for i in range(12)]
    shale = pd.concat(wells).query("facies == 'shale'")
    # deeper shales are more compacted: denser
    assert np.corrcoef(shale["depth"], shale["RHOB"])[0, 1] > 0.2


def test_depth_is_regular_and_beds_are_thicker_than_one_sample(draw):
    for _, well in draw["train"].groupby("well"):
        assert np.allclose(np.diff(well["depth"]), welllogs.STEP, atol=0.011)
        changes = (well["facies"] != well["facies"].shift()).sum()
        assert len(well) / changes > 4  # beds of several samples
