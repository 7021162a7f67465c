"""Well logs of a sedimentary basin, for lithofacies classification (the final exam, ``exam-hackathon``).

Physical model
--------------
Thirteen vertical wells cross 120–200 m of a mixed siliciclastic–carbonate succession, logged
every 0.25 m. Each well's column of beds comes from a **Markov chain of facies** (Walther's law:
neighbouring beds are neighbouring environments; transition matrix :data:`TRANSITIONS`) with
log-normal bed thicknesses. Six facies:

``sandstone``, ``siltstone``, ``shale``, ``limestone``, ``dolomite``, ``anhydrite``

Each bed draws a mineral composition (quartz, calcite, dolomite, anhydrite, clay; :func:`_composition`)
and a porosity from mechanical compaction, ``phi = phi0 exp(-c z)`` (Athy 1930, with the
coefficients of Sclater & Christie 1980 for sandstone and shale), times a log-normal bed factor
(sorting, cementation). Some sandstone beds hold oil (water saturation 0.15–0.4). The logs are the
standard petrophysical forward models, with the mineral constants of the Schlumberger Log
Interpretation Charts (2009) and Rider & Kennedy (2011):

- ``GR`` (gamma ray, API): volume-weighted mineral radioactivity (clay ~ 150 API); some dolomites
  are uranium-rich ("hot" dolomites); each well's tool has its own calibration gain;
- ``RHOB`` (bulk density, g/cm3): ``(1 - phi) rho_matrix + phi rho_fluid``;
- ``NPHI`` (neutron porosity, limestone units): hydrogen index of the pore fluid plus the
  apparent porosity of the minerals (clay bound water ~ 0.4);
- ``DT`` (sonic slowness, us/ft): Wyllie et al. (1956) time average, ``phi DT_f + (1 - phi) DT_ma``;
- ``PE`` (photoelectric factor, b/e): volume-weighted mineral ``Pe`` (quartz 1.8, calcite 5.1,
  dolomite 3.1, anhydrite 5.1, clay 3.4);
- ``RT`` (deep resistivity, ohm.m): Archie (1942) with a shale term (Simandoux 1963),
  ``1/RT = phi^m Sw^n / (a Rw) + Vclay Sw / Rsh``, with the formation water's resistivity ``Rw`` of each well.

Every log is then smoothed by its tool's vertical resolution (Gaussian, 0.3–0.8 m: thin beds and
bed boundaries are mixed, the "shoulder effect"), and gets realistic noise: counting statistics,
calibration offsets, and **washouts** (an enlarged borehole in some shale beds lowers ``RHOB``,
raises ``NPHI`` and ``DT``). Thin beds, siltstone between sandstone and shale, and limestone versus
dolomite make the problem realistically hard; wells differ (depth, water salinity, tool gain), so
a model must generalise to new wells. The setting follows the SEG 2016 machine-learning contest on
facies from well logs (Hall 2016, *The Leading Edge* 35(10); Dubois et al. 2007, *Computers &
Geosciences* 33).

Files (``generate``, what students get)
---------------------------------------
- ``train.csv``: 8 labelled wells: ``well, depth, GR, RHOB, NPHI, DT, PE, RT, facies``;
- ``test.csv``: 3 other wells, unlabelled: ``id, well, depth, GR, RHOB, NPHI, DT, PE, RT``.

Instructor-only files (``generate_hidden``: the build writes them into ``build/A/hidden``)
-------------------------------------------------------------------------------------------
- ``test_labels.csv``: ``id, facies`` of every row of ``test.csv``;
- ``audit.csv``: 2 more labelled wells (columns of ``train.csv``), on which the judge re-computes
  the scores students report for their models.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

FACIES = ["sandstone", "siltstone", "shale", "limestone", "dolomite", "anhydrite"]
LOGS = ["GR", "RHOB", "NPHI", "DT", "PE", "RT"]
MINERALS = ["quartz", "calcite", "dolomite", "anhydrite", "clay"]
STEP = 0.25  # m between samples
N_TRAIN, N_TEST, N_AUDIT = 8, 3, 2

#: facies -> next facies probabilities (rows in FACIES order; a facies never follows itself)
TRANSITIONS = np.array([
    # sand  silt  shale lime  dolo  anhy
    [0.00, 0.45, 0.35, 0.10, 0.05, 0.05],  # sandstone
    [0.35, 0.00, 0.45, 0.10, 0.05, 0.05],  # siltstone
    [0.30, 0.35, 0.00, 0.25, 0.05, 0.05],  # shale
    [0.10, 0.10, 0.30, 0.00, 0.35, 0.15],  # limestone
    [0.10, 0.00, 0.20, 0.40, 0.00, 0.30],  # dolomite
    [0.00, 0.00, 0.30, 0.25, 0.45, 0.00],  # anhydrite
])
#: median bed thickness (m) of each facies
THICKNESS = {"sandstone": 2.0, "siltstone": 1.5, "shale": 3.0, "limestone": 2.5, "dolomite": 1.8, "anhydrite": 1.2}
#: surface porosity and compaction coefficient (1/km): Sclater & Christie (1980) for sand and shale
COMPACTION = {"sandstone": (0.49, 0.27), "siltstone": (0.56, 0.39), "shale": (0.63, 0.51),
              "limestone": (0.50, 0.60), "dolomite": (0.40, 0.55), "anhydrite": (0.03, 0.5)}

# mineral constants, MINERALS order (Schlumberger 2009; Rider & Kennedy 2011)
GR_MINERAL = np.array([15.0, 10.0, 15.0, 5.0, 150.0])     # API
RHO_MINERAL = np.array([2.65, 2.71, 2.87, 2.98, 2.65])    # g/cm3
NPHI_MINERAL = np.array([-0.03, 0.0, 0.02, -0.01, 0.40])  # apparent neutron porosity, limestone units
DT_MINERAL = np.array([55.5, 47.6, 43.5, 50.0, 100.0])    # us/ft
PE_MINERAL = np.array([1.81, 5.08, 3.14, 5.05, 3.42])      # b/e
DT_WATER, RHO_WATER, RHO_OIL, HI_OIL, PE_FLUID = 189.0, 1.05, 0.80, 0.90, 0.36
#: vertical resolution (Gaussian sigma, m) of each tool
RESOLUTION = {"GR": 0.5, "RHOB": 0.35, "NPHI": 0.5, "DT": 0.6, "PE": 0.3, "RT": 0.8}


def _composition(facies: str, rng: np.random.Generator) -> np.ndarray:
    """Volume fractions of the solid (MINERALS order, sum 1) of one bed of ``facies``."""
    u = rng.uniform
    if facies == "sandstone":
        clay = u(0.02, 0.3)
        v = [1 - clay - (c := u(0, 0.05)), c, 0, 0, clay]
    elif facies == "siltstone":
        clay = u(0.2, 0.55)
        v = [1 - clay - (c := u(0, 0.1)), c, 0, 0, clay]
    elif facies == "shale":
        clay = u(0.45, 0.85)
        v = [1 - clay - (c := u(0, 0.1)), c, 0, 0, clay]
    elif facies == "limestone":
        clay, dol = u(0, 0.2), u(0, 0.35)
        v = [u(0, 0.05), 0, dol, 0, clay]
        v[1] = 1 - sum(v)
    elif facies == "dolomite":
        clay, cal = u(0, 0.15), u(0, 0.4)
        v = [u(0, 0.05), cal, 0, u(0, 0.05), clay]
        v[2] = 1 - sum(v)
    else:  # anhydrite
        v = [0, 0, u(0, 0.1), 0, u(0, 0.03)]
        v[3] = 1 - sum(v)
    return np.clip(np.asarray(v, dtype=float), 0, 1)


def _beds(rng: np.random.Generator, length: float) -> list[tuple[str, float]]:
    """A column of (facies, thickness) beds from the Markov chain, ``length`` m in total."""
    beds, total = [], 0.0
    state = int(rng.integers(len(FACIES)))
    while total < length:
        name = FACIES[state]
        thick = float(np.clip(rng.lognormal(np.log(THICKNESS[name]), 0.5), 0.5, 15.0))
        beds.append((name, thick))
        total += thick
        state = int(rng.choice(len(FACIES), p=TRANSITIONS[state]))
    return beds


def _smooth(values: np.ndarray, sigma_m: float) -> np.ndarray:
    """Convolution with a Gaussian of ``sigma_m`` metres (the tool's vertical resolution)."""
    sigma = sigma_m / STEP
    half = int(np.ceil(4 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values, half, mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def simulate_well(name: str, rng: np.random.Generator) -> pd.DataFrame:
    """One well: depth, the six logs and the true facies of each sample."""
    top = rng.uniform(1200.0, 2800.0)
    length = rng.uniform(120.0, 200.0)
    rw = rng.uniform(0.03, 0.12)  # formation water resistivity at depth (ohm.m)
    rsh = rng.uniform(1.5, 5.0)  # shale resistivity
    gain = rng.normal(1.0, 0.15)  # gamma-ray tool calibration
    offsets = {"RHOB": rng.normal(0, 0.03), "NPHI": rng.normal(0, 0.02), "PE": rng.normal(0, 0.25),
               "DT": rng.normal(0, 3.0)}  # per-well calibration offsets
    depth = top + np.arange(0.0, length, STEP)
    n = depth.size
    facies = np.empty(n, dtype=object)
    mineral = np.zeros((n, len(MINERALS)))
    phi, sw, washout, hot = np.zeros(n), np.ones(n), np.zeros(n), np.zeros(n)
    m_exp = np.full(n, 2.0)
    z = 0.0
    for kind, thick in _beds(rng, length):
        rows = (depth - top >= z) & (depth - top < z + thick)
        z += thick
        if not rows.any():
            continue
        facies[rows] = kind
        mineral[rows] = _composition(kind, rng)
        phi0, c = COMPACTION[kind]
        mid = float(depth[rows].mean()) / 1000.0
        phi[rows] = np.clip(phi0 * np.exp(-c * mid) * rng.lognormal(0.0, 0.35), 0.005, 0.4)
        if kind == "sandstone" and rng.random() < 0.25:
            sw[rows] = rng.uniform(0.15, 0.4)  # an oil-bearing sand
        if kind in ("limestone", "dolomite"):
            m_exp[rows] = rng.uniform(2.0, 2.4)  # vuggy carbonates: higher cementation exponent
        if kind == "shale" and rng.random() < 0.2:
            washout[rows] = rng.uniform(0.3, 1.0)
        if kind == "dolomite" and rng.random() < 0.2:
            hot[rows] = rng.uniform(20.0, 50.0)  # uranium-rich dolomite
        # small variations inside the bed
        phi[rows] *= np.exp(rng.normal(0.0, 0.05, rows.sum()))
    clay = mineral[:, 4]
    solid = 1.0 - phi
    rho_fluid = sw * RHO_WATER + (1 - sw) * RHO_OIL
    logs = {
        "GR": gain * (mineral @ GR_MINERAL + hot),
        "RHOB": solid * (mineral @ RHO_MINERAL) + phi * rho_fluid - 0.25 * washout,
        "NPHI": phi * (sw + (1 - sw) * HI_OIL) + solid * (mineral @ NPHI_MINERAL) + 0.08 * washout,
        "DT": phi * DT_WATER + solid * (mineral @ DT_MINERAL) + 15.0 * washout,
        "PE": solid * (mineral @ PE_MINERAL) + phi * PE_FLUID,
        "RT": np.log10(1.0 / (phi ** m_exp * sw ** 2 / rw + clay * solid * sw / rsh)),  # smoothed in log
    }
    noise = {"GR": lambda v: v + rng.normal(0, 1, n) * (0.04 * np.abs(v) + 2.0),
             "RHOB": lambda v: v + rng.normal(0, 0.025, n),
             "NPHI": lambda v: v + rng.normal(0, 0.02, n),
             "DT": lambda v: v + rng.normal(0, 1.5, n),
             "PE": lambda v: v + rng.normal(0, 0.25, n),
             "RT": lambda v: v + rng.normal(0, 0.04, n)}
    table = {"well": name, "depth": np.round(depth, 2)}
    for log in LOGS:
        table[log] = noise[log](_smooth(logs[log], RESOLUTION[log])) + offsets.get(log, 0.0)
    table["RT"] = np.clip(10 ** table["RT"], 0.2, 2000.0)
    frame = pd.DataFrame(table)
    decimals = {"GR": 2, "RHOB": 3, "NPHI": 4, "DT": 2, "PE": 3, "RT": 3}
    frame = frame.round(decimals)
    frame["facies"] = facies.astype(str)
    return frame


def simulate(seed: int) -> dict[str, pd.DataFrame]:
    """The three sets of wells of draw ``seed``: ``train``, ``test`` (with labels) and ``audit``."""
    rng = np.random.default_rng(seed)
    names = [f"W{i:02d}" for i in range(1, N_TRAIN + N_TEST + N_AUDIT + 1)]
    order = rng.permutation(len(names))
    wells = [simulate_well(names[i], np.random.default_rng([seed, int(i)])) for i in range(len(names))]
    picked = [wells[i] for i in order]
    train = pd.concat(picked[:N_TRAIN], ignore_index=True)
    test = pd.concat(picked[N_TRAIN:N_TRAIN + N_TEST], ignore_index=True)
    audit = pd.concat(picked[N_TRAIN + N_TEST:], ignore_index=True)
    test.insert(0, "id", np.arange(len(test)))
    return {"train": train.sort_values(["well", "depth"], ignore_index=True),
            "test": test, "audit": audit.sort_values(["well", "depth"], ignore_index=True)}


def generate(dest: Path, seed: int) -> list[Path]:
    """Write ``train.csv`` and ``test.csv`` (no labels) into ``dest``."""
    sets = simulate(seed)
    paths = [dest / "train.csv", dest / "test.csv"]
    sets["train"].to_csv(paths[0], index=False)
    sets["test"].drop(columns="facies").to_csv(paths[1], index=False)
    return paths


def generate_hidden(dest: Path, seed: int) -> list[Path]:
    """Write the instructor-only ``test_labels.csv`` (id, facies) and ``audit.csv`` into ``dest``."""
    sets = simulate(seed)
    paths = [dest / "test_labels.csv", dest / "audit.csv"]
    sets["test"][["id", "facies"]].to_csv(paths[0], index=False)
    sets["audit"].to_csv(paths[1], index=False)
    return paths
