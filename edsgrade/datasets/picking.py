"""Synthetic three-component seismograms of local earthquakes, for phase picking (lab 5, "go further").

PhaseNet (Zhu & Beroza 2019) learns to pick the P and S arrivals of earthquakes from
three-component records: a 1D U-Net maps a window of the three components to three probability
traces (P, S, noise), trained against Gaussian-shaped labels centred on the analysts' picks. This
module makes windows of that kind with known arrival times, so that a small picker can be trained
in a notebook, without downloads and without pretrained weights. Every random choice comes from
``numpy.random.default_rng(seed)``.

Physical model
--------------
A small local earthquake (hypocentre 4-20 km deep, 5-70 km from the station) is recorded by a
three-component station (Z, N, E velocity, ``FS`` = 40 Hz). In a homogeneous crust with
``VP`` = 6.0 km/s and ``VS`` = VP / sqrt(3) (a Poisson solid), the P and S waves arrive after
``r / VP`` and ``r / VS``, so that the S-P time grows with the hypocentral distance ``r``
(``r ≈ 8 km/s × (ts - tp)``, the rule of thumb of local seismology; Lay & Wallace 1995).

- Each phase is a wave train of band-limited noise with the velocity spectrum of a Brune (1970)
  source (corner frequency 2-10 Hz for P, 0.7 times that for S, since S waves are richer in low
  frequencies) with an impulsive onset and an exponential coda (decay 0.5-3 s for P; 1-6 s for S,
  whose coda also holds the scattered energy of the whole event; Aki & Chouet 1975).
- Polarisation: P is longitudinal, so it is strongest on the vertical component for steep
  incidence (Z ∝ cos i, horizontals ∝ sin i, split by the back-azimuth); S is transverse, hence
  strongest on the horizontal components. S is 1.5-5 times larger than P (the ratio of their
  radiated energies, Boatwright & Fletcher 1984, varies with the radiation pattern).
- Anelastic attenuation ``exp(-pi f t / Q)`` with Q = 300 for P and 200 for S, at travel time ``t``,
  so that distant events are poorer in high frequencies.
- Background noise of each component: a secondary microseism peak (0.15-0.35 Hz) and a 1/f-like
  background (the model of :func:`edsgrade.datasets.volcano.station_noise`, Peterson 1993), at a
  signal-to-noise ratio drawn log-uniformly between 1.5 and 60 (peak over noise standard
  deviation), so that some events are barely visible, as on real records.

The P arrival lies between 2 s and 9 s into the window, and the window is long enough
(``N_SAMPLES`` = 1024 samples, 25.6 s) to contain the S arrival of every event.

References
----------
- Aki, K., & Chouet, B. (1975). Origin of coda waves: source, attenuation, and scattering effects.
  Journal of Geophysical Research, 80(23), 3322-3342.
- Boatwright, J., & Fletcher, J. B. (1984). The partition of radiated energy between P and S waves.
  Bulletin of the Seismological Society of America, 74(2), 361-376.
- Brune, J. N. (1970). Tectonic stress and the spectra of seismic shear waves from earthquakes.
  Journal of Geophysical Research, 75(26), 4997-5009.
- Lay, T., & Wallace, T. C. (1995). Modern Global Seismology. Academic Press.
- Peterson, J. (1993). Observations and modeling of seismic background noise. USGS Open-File
  Report 93-322.
- Zhu, W., & Beroza, G. C. (2019). PhaseNet: a deep-neural-network-based seismic arrival-time
  picking method. Geophysical Journal International, 216(1), 261-273.
"""
from __future__ import annotations

import numpy as np

from edsgrade.datasets.volcano import _brune, _freqs, _shaped_noise, station_noise

FS = 40.0                 # sampling rate (Hz)
N_SAMPLES = 1024          # samples per window (25.6 s)
COMPONENTS = ("Z", "N", "E")
VP = 6.0                  # km/s
VS = VP / np.sqrt(3.0)    # km/s, Poisson solid
Q_P, Q_S = 300.0, 200.0


def _wave(rng: np.random.Generator, n: int, fs: float, onset: float, fc: float, decay: float,
          travel: float, q: float) -> np.ndarray:
    """A wave train starting at ``onset`` (s): attenuated Brune-spectrum noise, fast rise, exponential coda."""
    f = _freqs(n, fs)
    carrier = _shaped_noise(rng, n, fs, _brune(f, fc) * np.exp(-np.pi * f * travel / q))
    t = np.arange(n) / fs - onset
    rise = rng.uniform(0.02, 0.15)
    env = np.where(t >= 0, (1.0 - np.exp(-np.maximum(t, 0) / rise)) * np.exp(-np.maximum(t, 0) / decay), 0.0)
    return carrier * env


def synth_record(rng: np.random.Generator, *, fs: float = FS, n: int = N_SAMPLES) -> tuple[np.ndarray, float, float]:
    """One three-component record of a local earthquake.

    Returns ``(x, p, s)``: ``x`` of shape ``(3, n)`` (components Z, N, E; counts, noise included)
    and the P and S arrival times in **samples** from the start of the window (floats).

    >>> x, p, s = synth_record(np.random.default_rng(0))
    >>> x.shape, bool(0 < p < s < 1024)
    ((3, 1024), True)
    """
    duration = n / fs
    while True:
        dist, depth = rng.uniform(5.0, 70.0), rng.uniform(4.0, 20.0)
        r = float(np.hypot(dist, depth))
        tp, ts = r / VP, r / VS
        p_onset = rng.uniform(2.0, 9.0)
        s_onset = p_onset + (ts - tp)
        if s_onset < duration - 3.0:
            break
    fc = rng.uniform(2.0, 10.0)
    p_wave = _wave(rng, n, fs, p_onset, fc, rng.uniform(0.5, 3.0), tp, Q_P)
    s_wave = _wave(rng, n, fs, s_onset, 0.7 * fc, rng.uniform(1.0, 6.0), ts, Q_S)
    p_wave /= max(np.abs(p_wave).max(), 1e-12)
    s_wave /= max(np.abs(s_wave).max(), 1e-12)
    incidence = np.arctan2(dist, depth) * rng.uniform(0.3, 0.7)  # rays bend towards the vertical near the surface
    baz = rng.uniform(0, 2 * np.pi)
    s_ratio = rng.uniform(1.5, 5.0)
    sv_share = rng.uniform(0.1, 0.4)  # part of the S energy on the vertical
    p_gain = np.array([np.cos(incidence), np.sin(incidence) * np.cos(baz), np.sin(incidence) * np.sin(baz)])
    s_gain = s_ratio * np.array([sv_share, np.abs(np.sin(baz)) + 0.2, np.abs(np.cos(baz)) + 0.2])
    signal = p_gain[:, None] * p_wave + s_gain[:, None] * s_wave
    snr = float(np.exp(rng.uniform(np.log(1.5), np.log(60.0))))
    noise = np.stack([station_noise(rng, n, fs, 1.0) for _ in COMPONENTS])
    noise /= noise.std()
    amplitude = 100.0 * snr
    x = amplitude * signal / np.abs(signal).max() + 100.0 * noise
    return x, p_onset * fs, s_onset * fs


def make_arrays(n_records: int, seed: int, *, fs: float = FS, n: int = N_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """``n_records`` windows as arrays, for training a picker.

    Returns ``X``, float32 of shape ``(n_records, 3, n)`` (components Z, N, E, counts), and
    ``picks``, float64 of shape ``(n_records, 2)``: the P and S arrival of each window, in samples.

    >>> X, picks = make_arrays(4, seed=1)
    >>> X.shape, picks.shape, bool((picks[:, 0] < picks[:, 1]).all())
    ((4, 3, 1024), (4, 2), True)
    """
    if n_records < 1:
        raise ValueError(f"n_records must be at least 1, got {n_records}")
    rng = np.random.default_rng(seed)
    X = np.empty((n_records, len(COMPONENTS), n), dtype=np.float32)
    picks = np.empty((n_records, 2))
    for i in range(n_records):
        X[i], picks[i, 0], picks[i, 1] = synth_record(rng, fs=fs, n=n)
    return X, picks


def gaussian_labels(picks: np.ndarray, n: int = N_SAMPLES, sigma: float = 8.0) -> np.ndarray:
    """PhaseNet's targets: P, S and noise probability traces, shape ``(n_records, 3, n)``.

    P and S are Gaussians of standard deviation ``sigma`` samples centred on the picks; noise is
    ``1 - P - S`` (clipped at 0).
    """
    picks = np.asarray(picks, dtype=float)
    if picks.ndim != 2 or picks.shape[1] != 2:
        raise ValueError(f"picks must have the shape (n_records, 2), got {picks.shape}")
    t = np.arange(n)[None, :]
    p = np.exp(-0.5 * ((t - picks[:, :1]) / sigma) ** 2)
    s = np.exp(-0.5 * ((t - picks[:, 1:]) / sigma) ** 2)
    return np.stack([p, s, np.clip(1.0 - p - s, 0.0, 1.0)], axis=1).astype(np.float32)
