"""Synthetic river gauging station for lab 1, "river sensor calibration".

The question of the lab: can a cheap optical turbidity sensor replace laboratory measurements of
suspended sediment concentration (SSC)? The generator simulates three years of a small river at a
15-minute time step, as seen by an in-situ probe (turbidity and water level), and a few hundred
water samples whose SSC was measured in the laboratory. Every random choice comes from
``numpy.random.default_rng(seed)``, so one seed always gives byte-identical files.

Physical model
--------------
*Water level* (stage, cm) = seasonal baseflow + storm hydrographs.

- Baseflow: a cosine with its maximum in late winter and its minimum in late summer (pluvial
  regime of a western European lowland river) plus a slow random (Ornstein-Uhlenbeck)
  component of ~20 days memory.
- Storms: a Poisson process of ~24 events per year whose rate peaks in late autumn. Each storm
  raises the stage by a lognormal height (median ~35 cm, up to 2.5 m) along a half-cosine rising
  limb of 2-8 h, followed by an exponential recession of 10-40 h (a sharp rise and a slow
  recession, the shape of a flashy catchment's hydrograph).

*True turbidity* (NTU) = baseflow turbidity (a few NTU, increasing with baseflow) + one pulse per
storm. The pulse rises faster and recedes ~3 times faster than the stage, so that the turbidity
peak comes before the level peak: fine sediment is flushed from the channel and nearby sources
early in the event, then the supply runs out (first flush, supply exhaustion; Williams 1989).
Its height grows with the storm's stage rise (power 1.4), is reduced when the previous storm was
recent (depleted sediment stores) and is larger in autumn.

*True SSC* (mg/L) follows the power law used to calibrate turbidity probes,
``SSC = a * T**b``, with ``a`` drawn in [1.2, 2.5] mg/L/NTU**b and ``b`` in [0.9, 1.15].
Field calibrations give ``b`` close to 1 and ``a`` of order 1-3 for mineral sediment (Gippel 1995;
Lewis 1996; Rasmussen et al. 2009; Landers & Sturm 2013). The departure from the power law is a
clockwise hysteresis, due to the particle-size distribution changing during events, to which
optical turbidity is very sensitive (coarse grains scatter little light per unit mass): SSC is
multiplied by ``exp(delta * f)`` where ``f = tanh((dh/dt) / 4 cm/h)`` of the storm hydrograph is
~+1 on steep rising limbs, slightly negative on recessions and 0 at baseflow, with ``delta`` in
[0.18, 0.30]. For the same turbidity, the rising limb carries coarser, heavier sediment, hence more
SSC (Landers & Sturm 2013): the SSC-turbidity loop is clockwise, in the terms Williams (1989)
uses for SSC-discharge loops.

*Measured turbidity* = true turbidity degraded as by a real probe: 3 % multiplicative noise,
rare single-point spikes (debris in the optical window), and biofouling: in some intervals
between two maintenance visits (more often in the warm season) the reading drifts upward
(offset 0.1-0.5 NTU/day and gain 0.3-1 %/day) until the optics are cleaned at the next visit,
when it drops back to the truth. The level sensor has 0.3 cm noise.

*Missing data* are coded -30000, as many loggers do: logger outages of 1-8 days (both columns),
one turbidity-probe failure of 10-25 days, 15-45 minutes of turbidity at each maintenance visit
(probe out of the water) and isolated transmission errors (~0.1 % of each column).

*Laboratory samples*: manual grab samples every two weeks during working hours (the maintenance
visits are made on some of these days), and automatic-sampler series of 3-6 bottles 1-3 h apart,
triggered early in the rising limb of ~60 % of the storms, so storms are over-represented (as in
event-based sampling, Lewis 1996). The lab SSC has a lognormal scatter (sigma 0.10-0.15 in ln,
sampling + analysis) and ~2 % gross errors (at least two; factor 3-10, e.g. bed sand in a bottle or a loss
while filtering). Samples are taken at any minute, not on the logger's 15-minute grid; samples
taken while the sensor was off are kept (the lab does not know).

A stage-discharge rating curve is given in the logger header, ``Q = 0.01 * (h - 5)**1.6`` (Q in
m3/s, h in cm), so that students can turn SSC into a sediment load.

References
----------
- Gippel, C. J. (1995). Potential of turbidity monitoring for measuring the transport of suspended
  solids in streams. Hydrological Processes, 9(1), 83-97.
- Landers, M. N., & Sturm, T. W. (2013). Hysteresis in suspended sediment to turbidity relations
  due to changing particle size distributions. Water Resources Research, 49(9), 5487-5500.
- Lewis, J. (1996). Turbidity-controlled suspended sediment sampling for runoff-event load
  estimation. Water Resources Research, 32(7), 2299-2310.
- Rasmussen, P. P., Gray, J. R., Glysson, G. D., & Ziegler, A. C. (2009). Guidelines and
  procedures for computing time-series suspended-sediment concentrations and loads from in-stream
  turbidity-sensor and streamflow data. USGS Techniques and Methods 3-C4.
- Williams, G. P. (1989). Sediment concentration versus water discharge during single
  hydrologic events in rivers. Journal of Hydrology, 111, 89-106.

File formats
------------
``river_sensor.csv`` (~3 MB): comma-delimited logger export. Seven header lines starting with
``#`` (station, probe, time step, time zone UTC, missing-value code, rating curve...), then the
column names ``timestamp,turbidity_ntu,level_cm`` and one row per 15 minutes from
2021-01-01 00:00:00 to 2023-12-31 23:45:00 (105 120 rows). Timestamps are ``YYYY-MM-DD HH:MM:SS``,
values have one decimal, missing values are the integer ``-30000``. Read with
``pd.read_csv(path, comment="#", na_values=[-30000], parse_dates=["timestamp"], index_col="timestamp")``.

``river_lab_ssc.csv`` (~10 kB): semicolon-delimited, decimal comma (French laboratory export),
columns ``sample_id;date;time;sampling;ssc_mg_l`` with ``date`` as ``DD/MM/YYYY`` and ``time`` as
``HH:MM`` (UTC), ``sampling`` either ``manual`` or ``automatic``, sorted by time. Read with
``pd.read_csv(path, sep=";", decimal=",")`` and build the time with
``pd.to_datetime(df.date + " " + df.time, format="%d/%m/%Y %H:%M")``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SENSOR_FILE = "river_sensor.csv"
LAB_FILE = "river_lab_ssc.csv"
MISSING_CODE = -30000
START = np.datetime64("2021-01-01T00:00", "m")
N_DAYS = 3 * 365
STEP_MIN = 15
N_STEPS = N_DAYS * 24 * 60 // STEP_MIN
#: stage-discharge rating Q = RATING_COEF * (h - RATING_H0) ** RATING_EXP (m3/s, h in cm)
RATING_COEF, RATING_H0, RATING_EXP = 0.01, 5.0, 1.6


@dataclass(frozen=True)
class RiverSimulation:
    """The simulated station: true and measured series (15-min grid) and the lab samples.

    Times are in hours since 2021-01-01 00:00 UTC. ``turbidity`` and ``level`` are the logger's
    values with NaN where the file holds the missing-value code. ``sample_*`` arrays describe the
    lab samples in time order; ``sample_limb`` is the hysteresis factor f in [-1, 1] (positive on
    rising limbs) and ``sample_outlier`` flags the gross lab errors.
    """

    seed: int
    a: float
    b: float
    delta: float
    sigma: float
    hours: np.ndarray
    level_true: np.ndarray
    turbidity_true: np.ndarray
    level: np.ndarray
    turbidity: np.ndarray
    fouling: np.ndarray
    storm_start_hours: np.ndarray
    storm_rise_cm: np.ndarray
    sample_hours: np.ndarray
    sample_ssc: np.ndarray
    sample_automatic: np.ndarray
    sample_limb: np.ndarray
    sample_outlier: np.ndarray


def _pulse(s: np.ndarray, rise: float, recession: float) -> np.ndarray:
    """Unit hydrograph shape: half-cosine rise to 1 at ``s = rise``, then exponential recession."""
    out = np.zeros_like(s)
    up = (s >= 0) & (s < rise)
    out[up] = 0.5 * (1.0 - np.cos(np.pi * s[up] / rise))
    down = s >= rise
    out[down] = np.exp(-(s[down] - rise) / recession)
    return out


def _ou(rng: np.random.Generator, n: int, tau: float, sigma: float) -> np.ndarray:
    """Ornstein-Uhlenbeck series of ``n`` unit steps, memory ``tau`` steps, stationary std ``sigma``."""
    phi = np.exp(-1.0 / tau)
    eps = rng.normal(0.0, sigma * np.sqrt(1.0 - phi**2), n)
    x = np.empty(n)
    x[0] = rng.normal(0.0, sigma)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + eps[i]
    return x


def simulate(seed: int) -> RiverSimulation:
    """Simulate the station for ``seed`` (see the module docstring for the model)."""
    rng = np.random.default_rng(seed)
    hours = np.arange(N_STEPS) * (STEP_MIN / 60.0)
    days = hours / 24.0
    doy = days % 365.0

    # --- parameters of this draw
    a = float(rng.uniform(1.2, 2.5))
    b = float(rng.uniform(0.90, 1.15))
    delta = float(rng.uniform(0.18, 0.30))
    sigma = float(rng.uniform(0.10, 0.15))
    h0 = rng.uniform(35.0, 45.0)
    h_amp = rng.uniform(10.0, 18.0)
    t0_ntu = rng.uniform(3.0, 7.0)

    # --- baseflow stage and turbidity
    slow = np.interp(days, np.arange(N_DAYS + 1), _ou(rng, N_DAYS + 1, 20.0, 3.0))
    season = np.cos(2 * np.pi * (doy - 50.0) / 365.0)  # maximum late February
    h_base = h0 + h_amp * season + slow
    t_base = t0_ntu * (h_base / h0) ** 1.5 * (1.0 + 0.2 * np.cos(2 * np.pi * (doy - 110.0) / 365.0))

    # --- storms: Poisson process with a late-autumn maximum
    rate = (24.0 / 365.0) * (1.0 + 0.6 * np.cos(2 * np.pi * (np.arange(N_DAYS) - 330.0) / 365.0))
    storm_days = np.flatnonzero(rng.random(N_DAYS) < rate)
    starts = storm_days * 24.0 + rng.uniform(0.0, 24.0, storm_days.size)
    n_storms = starts.size
    rise_cm = np.clip(rng.lognormal(np.log(35.0), 0.6, n_storms), 8.0, 250.0)
    rise_h = rng.uniform(2.0, 8.0, n_storms)
    recess_h = rng.uniform(10.0, 40.0, n_storms)
    gaps = np.diff(np.concatenate([[starts[0] - 30 * 24.0], starts])) / 24.0 if n_storms else np.array([])
    supply = 0.4 + 0.6 * (1.0 - np.exp(-gaps / 15.0))
    autumn = 1.0 + 0.3 * np.cos(2 * np.pi * ((starts / 24.0) % 365.0 - 290.0) / 365.0)
    peak_ntu = 0.5 * rise_cm**1.4 * supply * autumn * rng.lognormal(0.0, 0.3, n_storms)

    h_storm = np.zeros(N_STEPS)
    t_storm = np.zeros(N_STEPS)
    dt = STEP_MIN / 60.0
    for k in range(n_storms):
        i0 = int(np.ceil(starts[k] / dt))
        i1 = min(N_STEPS, int((starts[k] + rise_h[k] + 10 * recess_h[k]) / dt) + 2)
        if i0 >= N_STEPS:
            continue
        s = hours[i0:i1] - starts[k]
        h_storm[i0:i1] += rise_cm[k] * _pulse(s, rise_h[k], recess_h[k])
        t_storm[i0:i1] += peak_ntu[k] * _pulse(s, 0.7 * rise_h[k], 0.35 * recess_h[k])

    level_true = h_base + h_storm
    turbidity_true = t_base + t_storm
    limb = np.tanh(np.gradient(h_storm, dt) / 4.0)

    # --- sampling plan: fortnightly manual grabs (working hours) and automatic storm series
    grab_days = np.arange(rng.integers(2, 9), N_DAYS, 14)
    grab_days = grab_days + rng.integers(-1, 2, grab_days.size)
    weekday = (grab_days + 4) % 7  # 2021-01-01 is a Friday (weekday 4)
    grab_days = grab_days + np.where(weekday == 5, 2, 0) + np.where(weekday == 6, 1, 0)
    grab_days = np.unique(np.clip(grab_days, 0, N_DAYS - 1))
    grab_hours = grab_days * 24.0 + rng.integers(9 * 60, 16 * 60, grab_days.size) / 60.0

    auto = []
    for k in range(n_storms):
        if rise_cm[k] < 15.0 or rng.random() > 0.6:
            continue
        trigger = starts[k] + rng.uniform(0.15, 0.4) * rise_h[k]
        n_bottles = rng.integers(3, 7)
        interval = rng.uniform(1.0, 3.0)
        auto.extend(trigger + np.arange(n_bottles) * interval + rng.integers(0, 5, n_bottles) / 60.0)
    auto_hours = np.asarray(auto)
    if auto_hours.size + grab_hours.size > 380:
        keep = np.sort(rng.choice(auto_hours.size, 380 - grab_hours.size, replace=False))
        auto_hours = auto_hours[keep]
    sample_hours = np.concatenate([grab_hours, auto_hours])
    sample_automatic = np.concatenate([np.zeros(grab_hours.size, bool), np.ones(auto_hours.size, bool)])
    sample_hours = np.round(sample_hours * 60.0) / 60.0  # whole minutes
    inside = sample_hours < hours[-1]
    sample_hours, sample_automatic = sample_hours[inside], sample_automatic[inside]
    order = np.argsort(sample_hours, kind="stable")
    sample_hours, sample_automatic = sample_hours[order], sample_automatic[order]

    # --- laboratory SSC at the exact sampling minute
    t_at = np.interp(sample_hours, hours, turbidity_true)
    f_at = np.interp(sample_hours, hours, limb)
    n_s = sample_hours.size
    ssc = a * t_at**b * np.exp(delta * f_at + rng.normal(0.0, sigma, n_s))
    outlier = rng.random(n_s) < 0.02
    if outlier.sum() < 2:  # always a few lab errors to find
        outlier[rng.choice(n_s, 2, replace=False)] = True
    sign = np.where(rng.random(n_s) < 0.7, 1.0, -1.0)
    ssc = np.where(outlier, ssc * np.exp(sign * rng.uniform(np.log(3.0), np.log(10.0), n_s)), ssc)

    # --- maintenance visits (on some grab days) and biofouling between them
    visit_hours = grab_hours[:: 3] if grab_hours.size else grab_hours
    fouling_add = np.zeros(N_STEPS)
    fouling_gain = np.zeros(N_STEPS)
    bounds = np.concatenate([[0.0], visit_hours, [hours[-1] + dt]])
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        mid_doy = ((lo + hi) / 48.0) % 365.0
        warm = 0.5 * (1.0 - np.cos(2 * np.pi * (mid_doy - 15.0) / 365.0))  # 1 in mid-July
        if rng.random() > 0.1 + 0.5 * warm:
            continue
        start = lo + rng.uniform(0.3, 0.8) * (hi - lo)
        i0, i1 = int(np.ceil(start / dt)), int(np.ceil(hi / dt))
        age = (hours[i0:i1] - start) / 24.0
        fouling_add[i0:i1] = rng.uniform(0.1, 0.5) * age
        fouling_gain[i0:i1] = rng.uniform(0.003, 0.01) * age

    noise = rng.lognormal(0.0, 0.03, N_STEPS)
    turbidity = turbidity_true * (1.0 + fouling_gain) * noise + fouling_add
    spikes = rng.random(N_STEPS) < 3e-4
    turbidity = np.where(spikes, turbidity * rng.uniform(2.0, 6.0, N_STEPS), turbidity)
    turbidity = np.maximum(np.round(turbidity, 1), 0.1)
    level = np.round(level_true + rng.normal(0.0, 0.3, N_STEPS), 1)
    fouling = turbidity_true * fouling_gain + fouling_add

    # --- missing values
    miss_both = np.zeros(N_STEPS, bool)
    for _ in range(rng.integers(2, 4)):
        i0 = rng.integers(0, N_STEPS)
        miss_both[i0:i0 + int(rng.uniform(1.0, 8.0) * 96)] = True
    miss_turb = miss_both.copy()
    i0 = rng.integers(0, N_STEPS)
    miss_turb[i0:i0 + int(rng.uniform(10.0, 25.0) * 96)] = True
    for v in visit_hours:  # probe out of the water for cleaning, just after the visit's sample
        i0 = int(np.ceil(v / dt)) + 1
        miss_turb[i0:i0 + rng.integers(1, 4)] = True
    miss_turb |= rng.random(N_STEPS) < 1e-3
    miss_level = miss_both | (rng.random(N_STEPS) < 1e-3)
    turbidity = np.where(miss_turb, np.nan, turbidity)
    level = np.where(miss_level, np.nan, level)

    return RiverSimulation(
        seed=seed, a=a, b=b, delta=delta, sigma=sigma, hours=hours,
        level_true=level_true, turbidity_true=turbidity_true, level=level, turbidity=turbidity,
        fouling=fouling, storm_start_hours=starts, storm_rise_cm=rise_cm,
        sample_hours=sample_hours, sample_ssc=ssc, sample_automatic=sample_automatic,
        sample_limb=f_at, sample_outlier=outlier,
    )


def _fmt(values: np.ndarray) -> list[str]:
    """One-decimal strings, with the logger's missing-value code for NaN."""
    return [str(MISSING_CODE) if v != v else f"{v:.1f}" for v in values.tolist()]


def _write_sensor(sim: RiverSimulation, path: Path) -> None:
    stamps = np.datetime_as_string(START + (sim.hours * 60).astype("timedelta64[m]"), unit="s")
    header = [
        "# Station: Riviere synthetique at Moulin-Neuf (edsgrade lab 1, synthetic data)",
        "# Probe: multi-parameter sonde, optical turbidity ISO 7027 (860 nm, NTU) + relative pressure level (cm)",
        "# Time step: 15 min, time stamps in UTC",
        f"# Missing value code: {MISSING_CODE}",
        f"# Rating curve (hydrometric service): Q [m3/s] = {RATING_COEF} * (h [cm] - {RATING_H0:g}) ** {RATING_EXP}",
        "# Maintenance: probe cleaned during some of the fortnightly sampling visits",
        "# Columns: time stamp, turbidity (NTU), water level (cm)",
        "timestamp,turbidity_ntu,level_cm",
    ]
    turb, lev = _fmt(sim.turbidity), _fmt(sim.level)
    rows = [f"{s.replace('T', ' ')},{t},{h}" for s, t, h in zip(stamps.tolist(), turb, lev)]
    path.write_text("\n".join(header + rows) + "\n", encoding="utf-8")


def _write_lab(sim: RiverSimulation, path: Path) -> None:
    minutes = np.round(sim.sample_hours * 60).astype("int64").astype("timedelta64[m]")
    stamps = np.datetime_as_string(START + minutes, unit="m").tolist()
    lines = ["sample_id;date;time;sampling;ssc_mg_l"]
    for i, (stamp, auto, ssc) in enumerate(zip(stamps, sim.sample_automatic.tolist(), sim.sample_ssc.tolist())):
        day, clock = stamp.split("T")
        yyyy, mm, dd = day.split("-")
        value = f"{ssc:.1f}".replace(".", ",")
        lines.append(f"S{i + 1:04d};{dd}/{mm}/{yyyy};{clock};{'automatic' if auto else 'manual'};{value}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def generate(dest: Path, seed: int) -> list[Path]:
    """Write the lab's two files into ``dest`` and return their paths.

    Parameters
    ----------
    dest
        Directory to write into (created if needed).
    seed
        Seed of the draw: the same seed gives byte-identical files, another one another station
        history and another calibration law.

    Returns
    -------
    list[Path]
        ``[dest / "river_sensor.csv", dest / "river_lab_ssc.csv"]`` (formats in the module docstring).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    sim = simulate(int(seed))
    sensor, lab = dest / SENSOR_FILE, dest / LAB_FILE
    _write_sensor(sim, sensor)
    _write_lab(sim, lab)
    return [sensor, lab]
