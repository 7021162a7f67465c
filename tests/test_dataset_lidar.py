"""Tests of the lab 4 dataset generator (edsgrade.datasets.lidar): LAS files, determinism, physics."""
from __future__ import annotations

from pathlib import Path

import laspy
import numpy as np
import pytest
from scipy.spatial import cKDTree
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.model_selection import StratifiedKFold, cross_val_score

from edsgrade.datasets import generate, lidar


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("lidar")
    generate("lidar", dest, 2025)
    return dest


@pytest.fixture(scope="module")
def plots() -> tuple[dict, dict]:
    return lidar.make_training_and_scene(2025)


def _features(cloud: np.ndarray, cores: np.ndarray, radius: float) -> np.ndarray:
    """Normalised eigenvalues of the neighbourhoods (the lab's question 4), NaN under 5 neighbours."""
    out = np.full((len(cores), 3), np.nan)
    for i, idx in enumerate(cKDTree(cloud).query_ball_point(cores, r=radius)):
        if len(idx) >= 5:
            lam = np.linalg.eigvalsh(np.cov(cloud[idx].T))[::-1]
            out[i] = lam / lam.sum()
    return out


def test_files_are_las_1_4_read_with_laspy(data):
    names = sorted(p.name for p in data.iterdir())
    assert names == sorted([*lidar.TRAIN_FILES.values(), lidar.SCENE_FILE])
    assert sum(p.stat().st_size for p in data.iterdir()) < 3e6
    for code, name in lidar.TRAIN_FILES.items():
        las = laspy.read(data / name)
        assert str(las.header.version) == "1.4" and las.header.point_format.id == 6
        assert set(np.unique(las.classification).tolist()) == {code}
        assert las.header.point_count == len(las.points) > 1000
        assert np.allclose(las.header.scales, 0.001)
    scene = laspy.read(data / lidar.SCENE_FILE)
    assert set(np.unique(scene.classification).tolist()) == {lidar.UNCLASSIFIED}
    assert 15_000 < len(scene.points) < 40_000
    for field in ("return_number", "number_of_returns", "intensity", "gps_time", "scan_angle"):
        assert field in scene.point_format.dimension_names
    returns, n_returns = np.asarray(scene.return_number), np.asarray(scene.number_of_returns)
    assert (returns >= 1).all() and (returns <= n_returns).all() and n_returns.max() <= 4
    assert np.all(np.diff(scene.gps_time) >= 0)


def test_same_seed_same_bytes_other_seed_other_draw(data, tmp_path):
    generate("lidar", tmp_path / "again", 2025)
    for p in data.iterdir():
        assert (tmp_path / "again" / p.name).read_bytes() == p.read_bytes(), p.name
    generate("lidar", tmp_path / "other", 7)
    assert (tmp_path / "other" / lidar.SCENE_FILE).read_bytes() != (data / lidar.SCENE_FILE).read_bytes()


def test_density_and_occlusion_under_crowns(plots):
    train, _ = plots
    ground = train["classification"] == lidar.GROUND
    area = 24.0 * 24.0
    density = len(train["x"]) / area
    assert 15 < density < 60, density  # UAV lidar: tens of points per m²
    # ground points per m² in the open vs right under the trees (within half a crown radius of a trunk)
    rng = np.random.default_rng(2025)
    plot = lidar.make_plot(rng, 24.0, 24.0, n_trees=6, n_shrubs=0, n_boulders=0)
    pts = lidar.simulate(plot, rng)
    g = pts["classification"] == lidar.GROUND
    x, y = pts["x"][g] - lidar.ORIGIN[0], pts["y"][g] - lidar.ORIGIN[1]
    trees = plot.trees
    d = np.min(np.hypot(x[:, None] - trees[:, 0], y[:, None] - trees[:, 1]) / (0.5 * trees[:, 4]), axis=1)
    under = (d < 1).sum() / np.sum(np.pi * (0.5 * trees[:, 4]) ** 2)
    open_ = (d > 2.5).sum()
    grid = np.stack(np.meshgrid(np.linspace(0, 24, 200), np.linspace(0, 24, 200)), -1).reshape(-1, 2)
    open_area = 24.0 * 24.0 * np.mean(np.min(np.hypot(grid[:, :1] - trees[:, 0], grid[:, 1:] - trees[:, 1])
                                             / (0.5 * trees[:, 4]), axis=1) > 2.5)
    assert under < 0.5 * open_ / open_area  # crowns hide the ground below them


def test_vegetation_gives_multiple_returns_and_trees_are_tall(plots):
    train, _ = plots
    cls, n = train["classification"], train["number_of_returns"]
    assert np.mean(n[cls == lidar.HIGH_VEGETATION] > 1) > 0.5
    assert np.mean(n[(cls == lidar.GROUND)] == 1) > 0.6
    z0 = train["z"].min()
    height = {c: np.percentile(train["z"][cls == c] - z0, 95) for c in lidar.CLASSES}
    assert height[lidar.HIGH_VEGETATION] > height[lidar.GROUND] + 4


def test_dimensionality_follows_the_objects_and_classes_overlap(plots):
    train, _ = plots
    xyz = np.column_stack([train["x"], train["y"], train["z"]])
    labels = train["classification"]
    core = np.random.default_rng(0).choice(len(xyz), 1500, replace=False)
    feats = np.hstack([_features(xyz, xyz[core], r) for r in (0.5, 1.0, 2.0, 3.0)])
    ok = ~np.isnan(feats).any(axis=1)
    X, y = feats[ok], labels[core][ok]
    p3 = {c: np.median(X[y == c][:, 2::3], axis=0) for c in lidar.CLASSES}  # "3D-ness" p3 at each scale
    assert (p3[lidar.GROUND] < 0.03).all()  # a surface at every scale
    assert p3[lidar.LOW_VEGETATION][0] > 0.08 and p3[lidar.LOW_VEGETATION][2] < 0.04  # 3D at 0.5 m, flat at 2 m
    assert (p3[lidar.HIGH_VEGETATION] > 0.08).all()  # crowns are metres thick: 3D at every scale
    accuracy = cross_val_score(LinearDiscriminantAnalysis(), X, y, cv=StratifiedKFold(5, shuffle=True, random_state=0)).mean()
    assert 0.8 < accuracy < 0.97, accuracy  # good, not perfect: the classes overlap


def test_bad_arguments_say_what_to_do():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="positive size"):
        lidar.make_plot(rng, 0.0, 10.0)
    with pytest.raises(ValueError, match="pulses per m²"):
        lidar.simulate(lidar.make_plot(rng, 5.0, 5.0), rng, density=0.0)
