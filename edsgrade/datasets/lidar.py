"""Synthetic airborne lidar of an alpine slope for lab 4, "lidar point-cloud classification".

A drone (UAV) lidar survey of a mountain slope at the tree line: bare ground with boulders, dwarf
shrubs (dwarf pine, juniper, rhododendron) and scattered conifers (spruce, larch). The generator
simulates the survey pulse by pulse and writes real LAS 1.4 files with ``laspy``: labelled training
clouds, one per class (as an operator would segment them by hand from a training plot), and an
unlabelled scene of the same slope to classify. Every random choice comes from
``numpy.random.default_rng(seed)``, so one seed always gives byte-identical files; another seed gives
another draw of the same model.

The slope
---------
Ground elevation ``z(x, y) = z0 + tan(slope) * y + undulations + roughness``: a mean slope of 20-30°
facing south (elevation rising northwards), a few random smooth undulations (wavelengths 8-40 m,
amplitudes 0.2-0.8 m: gullies and ridges), and centimetre roughness (scree, soil). Boulders are
half-ellipsoids (0.3-1.2 m across, 0.2-0.8 m high) lying on it, labelled ground as ASPRS does.

Vegetation (ASPRS classes, LAS 1.4 specification, ASPRS 2019)
--------------------------------------------------------------
- ``2`` *ground*: the terrain and the boulders.
- ``3`` *low vegetation*: dwarf shrubs, half-ellipsoids 0.8-2.6 m across and 0.3-1 m high,
  of dense foliage (extinction coefficient 2.5 per metre).
- ``5`` *high vegetation*: conifers 6-16 m tall, a conical crown from 20-40 % of the height to the
  top, of radius 15-22 % of the height (allometry of subalpine spruce and larch; Pretzsch 2009),
  foliage extinction 0.8 per metre, and a trunk of 0.1-0.25 m radius.

The survey (Beer-Lambert discrete returns)
------------------------------------------
Pulses hit the slope at random positions (a Poisson process) with a density of ~16 pulses/m²,
doubled in the overlap band of two flight strips, as in UAV surveys (Wallace et al. 2012). Each pulse
is traced vertically. Inside foliage, returns occur as a Poisson process along the beam with the rate
of the foliage's extinction coefficient (the discrete-return form of the Beer-Lambert law of canopy
gap fraction; Morsdorf et al. 2006): the first return lies a random depth below the crown's surface,
and a pulse gives at most three vegetation returns. The ground returns with probability
``exp(-0.6 tau)``, ``tau`` the optical depth of the foliage above it: dense crowns and shrubs
**occlude** the ground below them. Trunks, nearly invisible to vertical beams, are seen by oblique
beams of the strips' edges: ~5 returns per metre of trunk below the crown, on its surface.

Noise: ranging noise of 3 cm (vertical, 1 sigma) and 2 cm of horizontal position noise (GNSS/INS
and beam footprint), typical of UAV lidar (Wallace et al. 2012). Intensity: a reflectance per class
(ground 0.35, shrubs 0.5, trees 0.45 at 905 nm, with 25 % scatter), divided by the number of returns
of the pulse (the energy is shared), as 16-bit integers.

At ~20 returns per m², a sphere of 0.5 m radius around a point of bare ground holds ~15 points, but
under a dense crown the ground is seen by few pulses: multi-scale features of small neighbourhoods are
sometimes undefined, which the lab handles. The classes overlap geometrically on purpose (a boulder
looks like a shrub at 0.5 m, a small tree like a large shrub, a sparse crown edge like ground), so that
features in the spirit of Brodu & Lague (2012) classify ~85-95 % of the points right, not all.

References
----------
- ASPRS (2019). LAS specification 1.4 - R15. American Society for Photogrammetry and Remote Sensing.
- Brodu, N., & Lague, D. (2012). 3D terrestrial lidar data classification of complex natural scenes
  using a multi-scale dimensionality criterion: applications in geomorphology. ISPRS Journal of
  Photogrammetry and Remote Sensing, 68, 121-134.
- Morsdorf, F., Kötz, B., Meier, E., Itten, K. I., & Allgöwer, B. (2006). Estimation of LAI and
  fractional cover from small footprint airborne laser scanning data based on gap fraction. Remote
  Sensing of Environment, 104, 50-61.
- Pretzsch, H. (2009). Forest Dynamics, Growth and Yield. Springer (crown allometry).
- Wallace, L., Lucieer, A., Watson, C., & Turner, D. (2012). Development of a UAV-LiDAR system with
  application to forest inventory. Remote Sensing, 4, 1519-1543.

Files
-----
All LAS 1.4, point data record format 6, coordinates in metres (a local projected frame, east,
north, elevation) stored with a scale of 1 mm, with the fields ``return_number``,
``number_of_returns``, ``classification``, ``intensity``, ``gps_time`` and ``scan_angle``.

- ``train_ground.las``, ``train_low_vegetation.las``, ``train_high_vegetation.las``: the points of a
  24 m x 24 m training plot, one file per class (classification 2, 3 and 5); together they form the
  whole plot.
- ``scene.las``: a 30 m x 30 m plot further along the slope, every point with classification 1
  ("unclassified"): the scene to classify.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GROUND, LOW_VEGETATION, HIGH_VEGETATION, UNCLASSIFIED = 2, 3, 5, 1
#: ASPRS code -> the name used in file names
CLASSES: dict[int, str] = {GROUND: "ground", LOW_VEGETATION: "low_vegetation", HIGH_VEGETATION: "high_vegetation"}
TRAIN_FILES: dict[int, str] = {code: f"train_{name}.las" for code, name in CLASSES.items()}
SCENE_FILE = "scene.las"
PULSE_DENSITY = 16.0        # pulses per m² outside the strip overlap
MAX_VEGETATION_RETURNS = 3  # a pulse gives at most 4 returns: 3 in foliage + the ground
GROUND_OCCLUSION = 0.6      # ground return probability exp(-GROUND_OCCLUSION * optical depth)
RANGE_NOISE, POSITION_NOISE = 0.03, 0.02  # m (1 sigma)
TRUNK_RETURNS_PER_M = 5.0
EXTINCTION = {LOW_VEGETATION: 2.5, HIGH_VEGETATION: 0.8}  # per metre of foliage
REFLECTANCE = {GROUND: 0.35, LOW_VEGETATION: 0.5, HIGH_VEGETATION: 0.45}
ORIGIN = (342_000.0, 5_094_000.0, 1_850.0)  # east, north, elevation of the plots' frame (m)
SURVEY_DATE = datetime.date(2024, 7, 16)


@dataclass(frozen=True)
class Plot:
    """What stands on one plot of the slope: ground model, boulders, shrubs and trees (metres)."""

    width: float
    height: float
    x0: float
    y0: float
    slope: float                 # tan of the slope angle, elevation rising to the north
    waves: np.ndarray            # (k, 4): wavenumber x, wavenumber y, phase, amplitude
    boulders: np.ndarray         # (n, 5): x, y, semi-axis a, semi-axis b, height
    shrubs: np.ndarray           # (n, 5): x, y, semi-axis a, semi-axis b, height
    trees: np.ndarray            # (n, 5): x, y, total height, crown base height, crown radius
    trunk_radius: np.ndarray     # (n,)

    def ground(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Terrain elevation (m, without boulders nor roughness) at ``(x, y)``."""
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        z = ORIGIN[2] + self.slope * (y + self.y0)
        for kx, ky, phase, amp in self.waves:
            z = z + amp * np.sin(kx * x + ky * y + phase)
        return z


def _place(rng: np.random.Generator, n: int, width: float, height: float, min_dist: float,
           avoid: np.ndarray | None = None, avoid_dist: np.ndarray | None = None) -> np.ndarray:
    """Up to ``n`` random positions at least ``min_dist`` apart and away from ``avoid`` (dart throwing)."""
    pts: list[tuple[float, float]] = []
    for _ in range(50 * n):
        if len(pts) == n:
            break
        p = rng.uniform([0.0, 0.0], [width, height])
        if pts and np.min(np.hypot(*(np.asarray(pts) - p).T)) < min_dist:
            continue
        if avoid is not None and len(avoid) and np.any(np.hypot(*(avoid - p).T) < avoid_dist):
            continue
        pts.append((float(p[0]), float(p[1])))
    return np.asarray(pts, dtype=float).reshape(-1, 2)


def make_plot(rng: np.random.Generator, width: float, height: float, x0: float = 0.0, y0: float = 0.0,
              n_trees: int = 8, n_shrubs: int = 30, n_boulders: int = 8) -> Plot:
    """Draw a plot of the slope: terrain, boulders, shrubs and trees (see the module docstring)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"a plot needs a positive size, got {width} x {height} m")
    slope = float(np.tan(np.radians(rng.uniform(20.0, 30.0))))
    k = int(rng.integers(3, 6))
    wavelength = rng.uniform(8.0, 40.0, k)
    direction = rng.uniform(0.0, np.pi, k)
    waves = np.column_stack([2 * np.pi / wavelength * np.cos(direction), 2 * np.pi / wavelength * np.sin(direction),
                             rng.uniform(0.0, 2 * np.pi, k), rng.uniform(0.2, 0.8, k)])
    xy_trees = _place(rng, n_trees, width, height, 4.0)
    h = rng.uniform(6.0, 16.0, len(xy_trees))
    trees = np.column_stack([xy_trees, h, h * rng.uniform(0.2, 0.4, len(h)), h * rng.uniform(0.15, 0.22, len(h))])
    xy_shrubs = _place(rng, n_shrubs, width, height, 1.2, xy_trees, 0.8 * trees[:, 4])
    shrubs = np.column_stack([xy_shrubs, rng.uniform(0.4, 1.3, (len(xy_shrubs), 2)), rng.uniform(0.3, 1.0, len(xy_shrubs))])
    xy_boulders = _place(rng, n_boulders, width, height, 2.0, np.vstack([xy_trees, xy_shrubs]),
                         np.concatenate([0.5 * trees[:, 4], shrubs[:, 2:4].max(axis=1) + 0.3]))
    boulders = np.column_stack([xy_boulders, rng.uniform(0.15, 0.6, (len(xy_boulders), 2)),
                                rng.uniform(0.2, 0.8, len(xy_boulders))])
    return Plot(width, height, x0, y0, slope, waves, boulders, shrubs, trees, rng.uniform(0.1, 0.25, len(trees)))


def _ellipsoid_tops(px: np.ndarray, py: np.ndarray, blobs: np.ndarray, plot: Plot):
    """For half-ellipsoids ``blobs`` on the ground: (pulse index, blob index, base, top) of the pulses inside."""
    hits = []
    for j, (bx, by, a, b, c) in enumerate(blobs):
        q = ((px - bx) / a) ** 2 + ((py - by) / b) ** 2
        inside = np.flatnonzero(q < 1.0)
        base = float(plot.ground(bx, by))
        hits.append((inside, np.full(inside.size, j), np.full(inside.size, base),
                     base + c * np.sqrt(1.0 - q[inside])))
    if not hits:
        return (np.zeros(0, int),) * 2 + (np.zeros(0),) * 2
    return tuple(np.concatenate(parts) for parts in zip(*hits))


def simulate(plot: Plot, rng: np.random.Generator, density: float = PULSE_DENSITY) -> dict[str, np.ndarray]:
    """Fly the survey over ``plot``: one record per return (see the module docstring).

    Returns a dictionary of arrays of the same length: ``x``, ``y``, ``z`` (m, in the plot's frame
    shifted by ``ORIGIN``), ``classification`` (ASPRS code), ``return_number``, ``number_of_returns``,
    ``intensity``, ``gps_time`` (s), ``scan_angle`` (degrees).

    >>> rng = np.random.default_rng(0)
    >>> pts = simulate(make_plot(rng, 10.0, 10.0, n_trees=1, n_shrubs=3, n_boulders=1), rng)
    >>> sorted(set(pts["classification"].tolist())) == [2, 3, 5]
    True
    """
    if density <= 0:
        raise ValueError(f"the pulse density must be positive (pulses per m²), got {density}")
    area = plot.width * plot.height
    n = int(rng.poisson(density * area))
    px, py = rng.uniform(0, plot.width, n), rng.uniform(0, plot.height, n)
    band = rng.uniform(0.3, 0.6) * plot.width  # overlap of two strips: twice the pulses
    m = int(rng.poisson(density * (plot.width - band) * plot.height))
    px = np.concatenate([px, rng.uniform(band, plot.width, m)])
    py = np.concatenate([py, rng.uniform(0, plot.height, m)])
    order = np.argsort(py + 1e-3 * px, kind="stable")  # the scan sweeps the plot line by line
    px, py = px[order], py[order]
    n = px.size
    # vegetation segments crossed by each vertical pulse: (pulse, bottom, top, class)
    seg_p, seg_lo, seg_hi, seg_c = [], [], [], []
    for j, (tx, ty, h, base, radius) in enumerate(plot.trees):
        r = np.hypot(px - tx, py - ty)
        inside = np.flatnonzero(r < radius)
        g = float(plot.ground(tx, ty))
        seg_p.append(inside)
        seg_lo.append(np.full(inside.size, g + base))
        seg_hi.append(g + base + (h - base) * (1.0 - r[inside] / radius))
        seg_c.append(np.full(inside.size, HIGH_VEGETATION))
    sp, _, sbase, stop = _ellipsoid_tops(px, py, plot.shrubs, plot)
    seg_p += [sp]
    seg_lo += [sbase]
    seg_hi += [stop]
    seg_c += [np.full(sp.size, LOW_VEGETATION)]
    seg_p, seg_lo, seg_hi, seg_c = (np.concatenate(a) for a in (seg_p, seg_lo, seg_hi, seg_c))
    k = np.array([EXTINCTION[c] for c in seg_c]) if seg_c.size else np.zeros(0)
    length = seg_hi - seg_lo
    tau = np.bincount(seg_p, weights=k * length, minlength=n)
    # Poisson returns in each segment, at uniform heights in it
    counts = rng.poisson(k * length)
    ret_p = np.repeat(seg_p, counts)
    ret_z = np.repeat(seg_lo, counts) + rng.random(counts.sum()) * np.repeat(length, counts)
    ret_c = np.repeat(seg_c, counts)
    # keep the first MAX_VEGETATION_RETURNS of each pulse (highest first: the beam comes from above)
    order = np.lexsort((-ret_z, ret_p))
    ret_p, ret_z, ret_c = ret_p[order], ret_z[order], ret_c[order]
    first = np.r_[True, ret_p[1:] != ret_p[:-1]]
    rank = np.arange(ret_p.size) - np.maximum.accumulate(np.where(first, np.arange(ret_p.size), 0))
    keep = rank < MAX_VEGETATION_RETURNS
    ret_p, ret_z, ret_c, rank = ret_p[keep], ret_z[keep], ret_c[keep], rank[keep]
    # the ground (terrain, roughness, boulders), occluded by the foliage above it
    gz = plot.ground(px, py) + 0.02 * rng.standard_normal(n)
    bp, _, _, btop = _ellipsoid_tops(px, py, plot.boulders, plot)
    np.maximum.at(gz, bp, btop)
    sees_ground = rng.random(n) < np.exp(-GROUND_OCCLUSION * tau)
    n_veg = np.bincount(ret_p, minlength=n)
    g_idx = np.flatnonzero(sees_ground)
    all_p = np.concatenate([ret_p, g_idx])
    all_z = np.concatenate([ret_z, gz[g_idx]])
    all_c = np.concatenate([ret_c, np.full(g_idx.size, GROUND)])
    all_rank = np.concatenate([rank, n_veg[g_idx]])
    n_returns = n_veg + sees_ground
    x, y = px[all_p], py[all_p]
    # trunks, seen by oblique beams: points on the trunk's surface below the crown
    tx, ty, tz = [], [], []
    for (cx, cy, h, base, _), rad in zip(plot.trees, plot.trunk_radius):
        m = int(rng.poisson(TRUNK_RETURNS_PER_M * base))
        angle = rng.uniform(0, 2 * np.pi, m)
        tx.append(cx + rad * np.cos(angle))
        ty.append(cy + rad * np.sin(angle))
        tz.append(plot.ground(cx, cy) + rng.uniform(0.0, base, m))
    tx, ty, tz = (np.concatenate(a) if a else np.zeros(0) for a in (tx, ty, tz))
    n_trunk = tx.size
    x = np.concatenate([x, tx])
    y = np.concatenate([y, ty])
    z = np.concatenate([all_z, tz])
    cls = np.concatenate([all_c, np.full(n_trunk, HIGH_VEGETATION)])
    return_number = np.concatenate([all_rank + 1, np.ones(n_trunk, int)])
    number_of_returns = np.concatenate([n_returns[all_p], np.ones(n_trunk, int)])
    pulse_time = 1e-5 * np.arange(n) + 1000.0 * rng.random()
    gps_time = np.concatenate([pulse_time[all_p], pulse_time[rng.integers(0, n, n_trunk)]])
    scan_angle = np.concatenate([np.zeros(all_p.size), rng.choice([-1.0, 1.0], n_trunk) * rng.uniform(15, 30, n_trunk)])
    # noise: ranging (vertical) and position (horizontal)
    x = x + POSITION_NOISE * rng.standard_normal(x.size)
    y = y + POSITION_NOISE * rng.standard_normal(y.size)
    z = z + RANGE_NOISE * rng.standard_normal(z.size)
    reflectance = np.array([REFLECTANCE[c] for c in cls]) * (1.0 + 0.25 * rng.standard_normal(cls.size))
    intensity = np.clip(reflectance / number_of_returns * 40000.0, 0, 65535).astype(np.uint16)
    order = np.argsort(gps_time, kind="stable")
    out = {"x": x + plot.x0 + ORIGIN[0], "y": y + plot.y0 + ORIGIN[1], "z": z,
           "classification": cls.astype(np.uint8), "return_number": return_number.astype(np.uint8),
           "number_of_returns": number_of_returns.astype(np.uint8), "intensity": intensity,
           "gps_time": gps_time, "scan_angle": scan_angle}
    return {key: value[order] for key, value in out.items()}


def write_las(path: Path, points: dict[str, np.ndarray]) -> Path:
    """Write ``points`` (the dictionary of :func:`simulate`) as a LAS 1.4 file, point format 6."""
    import laspy

    header = laspy.LasHeader(point_format=6, version="1.4")
    header.scales = np.array([0.001, 0.001, 0.001])
    header.offsets = np.floor([points["x"].min(), points["y"].min(), points["z"].min()])
    header.creation_date = SURVEY_DATE
    header.system_identifier = "UAV lidar (edsgrade synthetic)"
    header.generating_software = "edsgrade.datasets.lidar"
    las = laspy.LasData(header)
    las.x, las.y, las.z = points["x"], points["y"], points["z"]
    for field in ("classification", "return_number", "number_of_returns", "intensity", "gps_time"):
        setattr(las, field, points[field])
    las.scan_angle = np.round(points["scan_angle"] / 0.006).astype(np.int16)  # units of 0.006 degree
    las.write(str(path))
    return Path(path)


def _subset(points: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {key: value[mask] for key, value in points.items()}


def make_training_and_scene(seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The labelled training plot and the scene (with its true classes), as dictionaries of arrays."""
    rng = np.random.default_rng(seed)
    train_plot = make_plot(rng, 24.0, 24.0, n_trees=int(rng.integers(6, 9)), n_shrubs=int(rng.integers(55, 66)),
                           n_boulders=int(rng.integers(6, 10)))
    train = simulate(train_plot, rng)
    scene_plot = make_plot(rng, 30.0, 30.0, x0=60.0, y0=20.0, n_trees=int(rng.integers(8, 13)),
                           n_shrubs=int(rng.integers(70, 90)), n_boulders=int(rng.integers(8, 14)))
    scene = simulate(scene_plot, rng)
    return train, scene


def generate(dest: Path, seed: int) -> list[Path]:
    """Write the three labelled training files and the unlabelled scene into ``dest``."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    train, scene = make_training_and_scene(seed)
    written = [write_las(dest / TRAIN_FILES[code], _subset(train, train["classification"] == code))
               for code in CLASSES]
    scene = dict(scene, classification=np.full(scene["x"].size, UNCLASSIFIED, dtype=np.uint8))
    written.append(write_las(dest / SCENE_FILE, scene))
    return written
