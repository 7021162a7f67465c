"""Synthetic seismo-volcanic signals for lab 2, "classification of seismo-volcanic signals".

A small seismic network on an ice-capped stratovolcano records five classes of events that
volcano observatories tell apart every day (McNutt 2005; Chouet & Matoza 2013). Each event is
synthesised at its source, propagated to three vertical stations (geometric spreading, anelastic
attenuation, travel-time delay) and added to realistic background noise. Every random choice
comes from ``numpy.random.default_rng(seed)``, so one seed always gives byte-identical files.

Source models
-------------
All amplitudes are ground velocity in digitizer counts; ``t = 0`` is the onset at the source.

*VT, volcano-tectonic earthquakes* (brittle failure of rock, McNutt 2005): a P and an S wave
train, each band-limited noise with the velocity spectrum of a Brune (1970) source,
``f / (1 + (f / fc)**2)`` with a corner frequency ``fc`` of 4-16 Hz (small earthquakes, M < 2),
so that most energy lies above ~5 Hz. Impulsive onsets (rise 0.02-0.1 s) followed by an
exponential coda (decay 0.4-2.5 s; Aki & Chouet 1975). S is 1.5-4 times larger than P and
arrives ``r (1/vs - 1/vp)`` later (vp = 3.5 km/s, vs = 2.0 km/s). Hypocentres 1-7 km deep,
within 4 km of the summit.

*LP, long-period events* (resonance of a fluid-filled crack excited by a pressure transient;
Chouet 1996; Kumagai & Chouet 1999): a damped sinusoid at a dominant frequency of 0.7-3.5 Hz
with one weaker overtone, with the decay of a resonator of quality factor Q = 8-60 (decay time
``Q / (pi f0)``), an emergent onset (0.3-1.5 s) and a little band-limited noise (0.5-5 Hz).
15 % are *hybrid* events (a VT-like high-frequency onset followed by the LP coda; Lahr et al.
1994), which are labelled LP as most observatories do. Sources 0.2-1.5 km deep under the summit.

*TR, volcanic tremor* (sustained resonance or unsteady flow; Chouet & Matoza 2013): lasts for the
whole window or starts emergently in it and lasts longer than 25 s. Half are *harmonic* (a
fundamental of 0.8-3 Hz and 2-4 integer overtones, gliding by up to 10 % and slowly amplitude
modulated), half *spasmodic* (band-limited noise of 0.7-5 Hz with a randomly modulated envelope).
Amplitudes are small: weak tremor barely emerges from the noise.

*AV, avalanches and rockfalls* (Hibert et al. 2011, 2014): a spindle-shaped envelope
``t**a exp(-t / b)`` (peak after 2-10 s, total duration 10-40 s) modulating broadband noise of
1-20 Hz (peak 3-10 Hz) with random impacts (short high-frequency bursts) of blocks on the slope.
Sources on the flanks, 0.5-3.5 km from the summit, at the surface.

*IC, icequakes* (fracturing in the summit glacier; Podolskiy & Walter 2016): short (0.3-2 s),
impulsive, high-frequency bursts (Brune corner frequency 10-22 Hz), with no distinct S wave,
within 1.5 km of the summit and shallow. Icequakes are small: often only the summit station
records them well.

Propagation and noise
---------------------
Amplitudes at hypocentral distance ``r`` (km) are multiplied by ``(r0 / r)**n`` (body waves
``n = 1`` for VT and IC, surface waves ``n = 0.5`` for LP, TR and AV, as used for the
amplitude-based location of volcanic sources by Battaglia & Aki 2003; ``r0 = 1`` km) and each
frequency ``f`` by ``exp(-pi f r / (Q v))`` with Q = 40 and v = 2 km/s (strong attenuation of
volcanic edifices), so that distant stations see weaker and lower-frequency signals. The delay is
``r / v`` (P and S velocities for VT and IC, 2 km/s otherwise, with 0.05 s of random
static delay per station).

The noise of each station is coloured: a secondary microseism peak (0.15-0.35 Hz, the dominant
ambient noise worldwide; Peterson 1993), a 1/f-like background up to 20 Hz whose level differs
between stations (wind, site), and a DC offset of the digitizer (up to a few hundred counts).
Classes overlap on purpose (weak or distant events, hybrid events, spasmodic tremor and small
rockfalls, distant VTs and icequakes), so that feature-based classifiers reach ~75-90 %
accuracy with the lab's ten features, as on real catalogues, where richer feature sets (Malfante
et al. 2018) do better but never perfectly: analysts' labels are themselves uncertain.

References
----------
- Aki, K., & Chouet, B. (1975). Origin of coda waves: source, attenuation, and scattering effects.
  Journal of Geophysical Research, 80(23), 3322-3342.
- Battaglia, J., & Aki, K. (2003). Location of seismic events and eruptive fissures on the Piton de
  la Fournaise volcano using seismic amplitudes. Journal of Geophysical Research, 108(B8), 2364.
- Brune, J. N. (1970). Tectonic stress and the spectra of seismic shear waves from earthquakes.
  Journal of Geophysical Research, 75(26), 4997-5009.
- Chouet, B. A. (1996). Long-period volcano seismicity: its source and use in eruption
  forecasting. Nature, 380, 309-316.
- Chouet, B. A., & Matoza, R. S. (2013). A multi-decadal view of seismic methods for detecting
  precursors of magma movement and eruption. Journal of Volcanology and Geothermal Research, 252,
  108-175.
- Hibert, C., Mangeney, A., Grandjean, G., & Shapiro, N. M. (2011). Slope instabilities in Dolomieu
  crater, Réunion Island: from seismic signals to rockfall characteristics. Journal of Geophysical
  Research, 116, F04032.
- Hibert, C., Mangeney, A., Grandjean, G., et al. (2014). Automated identification, location, and
  volume estimation of rockfalls at Piton de la Fournaise volcano. Journal of Geophysical
  Research: Earth Surface, 119, 1082-1105.
- Kumagai, H., & Chouet, B. A. (1999). The complex frequencies of long-period seismic events as
  probes of fluid composition beneath volcanoes. Geophysical Journal International, 138, F7-F12.
- Lahr, J. C., Chouet, B. A., Stephens, C. D., Power, J. A., & Page, R. A. (1994). Earthquake
  classification, location, and error analysis in a volcanic environment: implications for the
  magmatic system of the 1989-1990 eruptions at Redoubt Volcano, Alaska. Journal of Volcanology
  and Geothermal Research, 62, 137-151.
- Malfante, M., Dalla Mura, M., Métaxian, J.-P., Mars, J. I., Macedo, O., & Inza, A. (2018).
  Machine learning for volcano-seismic signals: challenges and perspectives. IEEE Signal
  Processing Magazine, 35(2), 20-30.
- McNutt, S. R. (2005). Volcanic seismology. Annual Review of Earth and Planetary Sciences, 33,
  461-491.
- Peterson, J. (1993). Observations and modeling of seismic background noise. USGS Open-File
  Report 93-322.
- Podolskiy, E. A., & Walter, F. (2016). Cryoseismology. Reviews of Geophysics, 54, 708-758.

File formats
------------
``catalog.csv``: one row per event, sorted by time: ``event_id`` (``ev0001``...), ``time`` (origin
time, ISO 8601 UTC), ``label`` (``VT``, ``LP``, ``TR``, ``AV`` or ``IC``) and ``file`` (the event's
miniSEED file, relative to ``data/``). Classes are unbalanced, as in a real catalogue.

``stations.csv``: ``network, station, x_km, y_km, elevation_m`` (east and north of the summit).

``waveforms/<event_id>.mseed``: one miniSEED file per event (Steim-2 compressed integer counts),
read with ``obspy.read``: three traces ``XV.<station>.00.BHZ`` (vertical velocity, 50 Hz), each
40 s long, starting 5 s before the origin time.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLASSES: tuple[str, ...] = ("VT", "LP", "TR", "AV", "IC")
FS = 50.0            # sampling rate (Hz)
WINDOW = 40.0        # length of each record (s)
PRE_EVENT = 5.0      # record start before the origin time (s)
NETWORK = "XV"
CHANNEL = "BHZ"
LOCATION = "00"
CATALOG_FILE = "catalog.csv"
STATIONS_FILE = "stations.csv"
WAVEFORM_DIR = "waveforms"
#: events per class in a catalogue (before a small random variation per seed): unbalanced on purpose
CLASS_SIZES: dict[str, int] = {"VT": 75, "LP": 100, "TR": 55, "AV": 50, "IC": 48}
Q_PATH, V_SURF, VP, VS = 40.0, 2.0, 3.5, 2.0
SUMMIT_M = 2700.0  # depths are below the summit


@dataclass(frozen=True)
class Station:
    """A vertical seismometer: code, position (km east and north of the summit), elevation, noise."""

    code: str
    x_km: float
    y_km: float
    elevation_m: float
    noise_level: float  # standard deviation of the 1/f background (counts)


STATIONS: tuple[Station, ...] = (
    Station("SUM", 0.3, 0.2, 2650.0, 25.0),
    Station("FLK", 3.4, -2.1, 1720.0, 18.0),
    Station("BAS", -6.2, 5.6, 640.0, 30.0),
)


def _freqs(n: int, fs: float) -> np.ndarray:
    return np.fft.rfftfreq(n, 1.0 / fs)


def _shaped_noise(rng: np.random.Generator, n: int, fs: float, amplitude: np.ndarray | None = None,
                  band: tuple[float, float] | None = None) -> np.ndarray:
    """Gaussian noise with the amplitude spectrum ``amplitude`` (or a band), unit standard deviation."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = _freqs(n, fs)
    if amplitude is None:
        lo, hi = band
        amplitude = np.exp(-0.5 * (np.log(np.maximum(f, 1e-3) / np.sqrt(lo * hi)) / (0.5 * np.log(hi / lo))) ** 2)
    out = np.fft.irfft(spec * amplitude, n)
    std = out.std()
    return out / std if std > 0 else out


def _brune(f: np.ndarray, fc: float) -> np.ndarray:
    """Velocity spectrum of a Brune (1970) source, with the instrument's 1 Hz high-pass."""
    return (f / (1.0 + (f / fc) ** 2)) * (f**2 / (f**2 + 1.0))


def _burst(rng: np.random.Generator, t: np.ndarray, fs: float, fc: float, rise: float, decay: float) -> np.ndarray:
    """An impulsive wave train: Brune-spectrum noise, fast rise, exponential coda (0 before t = 0)."""
    carrier = _shaped_noise(rng, t.size, fs, _brune(_freqs(t.size, fs), fc))
    env = np.where(t >= 0, (1.0 - np.exp(-np.maximum(t, 0) / rise)) * np.exp(-np.maximum(t, 0) / decay), 0.0)
    return carrier * env


def source_signal(kind: str, rng: np.random.Generator, n: int, fs: float = FS) -> tuple[np.ndarray, dict]:
    """One event of class ``kind`` at its source: a signal of ``n`` samples starting at sample 0.

    Returns the signal (peak amplitude ~1) and its parameters (source position, phase delays...).
    See the module docstring for the models.
    """
    if kind not in CLASSES:
        raise ValueError(f"unknown event class {kind!r}; use one of {', '.join(CLASSES)}")
    t = np.arange(n) / fs
    info: dict = {"kind": kind}
    if kind == "VT":
        fc = rng.uniform(4.0, 16.0)
        p = _burst(rng, t, fs, fc, rng.uniform(0.02, 0.1), rng.uniform(0.4, 1.5))
        s_amp, s_decay = rng.uniform(1.5, 4.0), rng.uniform(0.8, 2.5)
        s_carrier = _shaped_noise(rng, n, fs, _brune(_freqs(n, fs), 0.75 * fc))
        info.update(depth=rng.uniform(1.0, 7.0), phases="PS",
                    s_amp=s_amp, s_decay=s_decay, s_carrier=s_carrier, rise=rng.uniform(0.02, 0.1))
        sig = p
    elif kind == "IC":
        fc = rng.uniform(10.0, 22.0)
        sig = _burst(rng, t, fs, fc, rng.uniform(0.01, 0.05), rng.uniform(0.1, 0.6))
        info.update(depth=rng.uniform(0.0, 0.1), phases="P")
    elif kind == "LP":
        f0 = rng.uniform(0.7, 3.5)
        q = rng.uniform(8.0, 60.0)
        decay = q / (np.pi * f0)
        rise = rng.uniform(0.3, 1.5)
        env = (1.0 - np.exp(-t / rise)) * np.exp(-t / decay)
        ratio = rng.uniform(1.6, 2.6)
        sig = env * (np.sin(2 * np.pi * f0 * t + rng.uniform(0, 2 * np.pi))
                     + rng.uniform(0.1, 0.5) * np.sin(2 * np.pi * ratio * f0 * t + rng.uniform(0, 2 * np.pi)))
        sig += 0.25 * env * _shaped_noise(rng, n, fs, band=(0.5, 5.0))
        if rng.random() < 0.15:  # hybrid: a high-frequency, VT-like onset
            sig += rng.uniform(0.5, 1.5) * _burst(rng, t, fs, rng.uniform(5.0, 12.0), 0.03, rng.uniform(0.3, 1.0))
            info["hybrid"] = True
        info.update(depth=rng.uniform(0.2, 1.5), f0=f0, q=q, phases="surface")
    elif kind == "TR":
        ongoing = rng.random() < 0.6
        start = -rng.uniform(0, 30.0) if ongoing else rng.uniform(0.0, 8.0)
        rise = rng.uniform(2.0, 8.0)
        tt = t - start
        env = np.where(tt >= 0, 1.0 - np.exp(-np.maximum(tt, 0) / rise), 0.0)
        env *= 1.0 + 0.3 * _shaped_noise(rng, n, fs, band=(0.02, 0.2))
        if rng.random() < 0.5:  # harmonic, gliding
            f0 = rng.uniform(0.8, 3.0)
            glide = 1.0 + rng.uniform(-0.1, 0.1) * t / t[-1]
            phase = 2 * np.pi * np.cumsum(f0 * glide) / fs
            sig = sum(rng.uniform(0.2, 0.8) ** (k - 1) * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
                      for k in range(1, int(rng.integers(3, 6))))
            sig = sig + 0.2 * _shaped_noise(rng, n, fs, band=(0.5, 6.0))
            info["style"] = "harmonic"
        else:
            sig = _shaped_noise(rng, n, fs, band=(0.7, 5.0)) * (1.0 + 0.6 * np.abs(_shaped_noise(rng, n, fs, band=(0.1, 1.0))))
            info["style"] = "spasmodic"
        sig = env * sig
        info.update(depth=rng.uniform(0.3, 2.0), phases="surface", start=start)
    else:  # AV
        peak = rng.uniform(2.0, 10.0)
        total = rng.uniform(max(10.0, 2.2 * peak), 40.0)
        a = rng.uniform(1.5, 3.0)
        b = peak / a
        env = np.where(t > 0, (np.maximum(t, 1e-9) / peak) ** a * np.exp(-(t - peak) / b), 0.0)
        env *= np.clip((total - t) / (0.3 * total), 0.0, 1.0)  # tail ends with the last blocks
        fpk = rng.uniform(3.0, 10.0)
        carrier = _shaped_noise(rng, n, fs, band=(fpk / 3.0, min(fpk * 3.0, 22.0)))
        impacts = np.zeros(n)
        for t_imp in rng.uniform(0, total, int(rng.integers(3, 15))):
            impacts += rng.uniform(0.5, 2.0) * np.interp(t_imp, t, env) * _burst(
                rng, t - t_imp, fs, rng.uniform(8.0, 18.0), 0.01, rng.uniform(0.05, 0.3))
        sig = env * carrier + 0.6 * impacts
        info.update(depth=0.0, phases="surface", surface_source=True)
    peak_abs = np.abs(sig).max()
    return (sig / peak_abs if peak_abs > 0 else sig), info


def _source_position(kind: str, rng: np.random.Generator, info: dict) -> tuple[float, float, float]:
    """Epicentre (km from the summit) and depth (km) of an event of class ``kind``."""
    radius = {"VT": 4.0, "LP": 1.0, "TR": 1.0, "IC": 1.5}.get(kind)
    if kind == "AV":
        r = rng.uniform(0.5, 3.5)
    else:
        r = radius * np.sqrt(rng.random())
    az = rng.uniform(0, 2 * np.pi)
    return r * np.cos(az), r * np.sin(az), float(info["depth"])


def _magnitude_scale(kind: str, rng: np.random.Generator) -> float:
    """Source amplitude at 1 km (counts), log-uniform: from barely visible to large."""
    lo, hi = {"VT": (1e3, 1e5), "LP": (500.0, 2e4), "TR": (150.0, 3e3), "AV": (400.0, 1e4),
              "IC": (300.0, 8e3)}[kind]
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _propagate(sig: np.ndarray, fs: float, r_km: float, delay_s: float, n: int, spreading: float) -> np.ndarray:
    """Attenuate (spreading + anelastic, per frequency) and delay a source signal to a station."""
    m = 2 * n
    padded = np.zeros(m)
    padded[: sig.size] = sig
    f = _freqs(m, fs)
    spec = np.fft.rfft(padded) * np.exp(-np.pi * f * r_km / (Q_PATH * V_SURF))
    spec *= np.exp(-2j * np.pi * f * delay_s)  # delay, sub-sample accurate
    out = np.fft.irfft(spec, m)[:n]
    return out * (1.0 / max(r_km, 0.3)) ** spreading


def station_noise(rng: np.random.Generator, n: int, fs: float, level: float) -> np.ndarray:
    """Coloured background noise (counts): microseism peak + 1/f-like background, no offset."""
    f = _freqs(n, fs)
    fm = rng.uniform(0.15, 0.35)
    micro = np.exp(-0.5 * (np.log(np.maximum(f, 1e-3) / fm) / 0.25) ** 2)
    # 1/f-like background, through the digitizer's anti-alias filter (corner at 0.8 x Nyquist)
    background = np.where(f > 0, 1.0 / np.sqrt(np.maximum(f, 0.05)), 0.0) / np.sqrt(1.0 + (f / (0.4 * fs)) ** 16)
    micro_n = _shaped_noise(rng, n, fs, micro) * level * rng.uniform(1.0, 2.5)
    back_n = _shaped_noise(rng, n, fs, background) * level
    return micro_n + back_n


def synth_event(kind: str, rng: np.random.Generator, *, fs: float = FS, duration: float = WINDOW,
                pre_event: float = PRE_EVENT, stations: tuple[Station, ...] = STATIONS,
                noise: bool = True, offsets: bool = True) -> dict[str, np.ndarray]:
    """Synthesise one event of class ``kind`` as recorded by ``stations``.

    Parameters
    ----------
    kind:
        One of :data:`CLASSES` (``"VT"``, ``"LP"``, ``"TR"``, ``"AV"``, ``"IC"``).
    rng:
        The random generator (``numpy.random.default_rng(seed)``): the only source of randomness.
    fs, duration, pre_event:
        Sampling rate (Hz), record length (s) and time of the origin after the record start (s).
    stations:
        The stations (positions and noise levels).
    noise, offsets:
        Add the background noise, and the digitizer's DC offset, to the records.

    Returns
    -------
    dict
        station code -> record (float64 array of ``round(fs * duration)`` samples, in counts).

    Examples
    --------
    >>> rec = synth_event("LP", np.random.default_rng(0))
    >>> sorted(rec), rec["SUM"].shape
    (['BAS', 'FLK', 'SUM'], (2000,))
    """
    n = int(round(fs * duration))
    sig, info = source_signal(kind, rng, n, fs)
    x0, y0, depth = _source_position(kind, rng, info)
    amp = _magnitude_scale(kind, rng)
    spreading = 1.0 if kind in ("VT", "IC") else 0.5
    out: dict[str, np.ndarray] = {}
    for st in stations:
        r = float(np.sqrt((st.x_km - x0) ** 2 + (st.y_km - y0) ** 2 + (depth + (SUMMIT_M - st.elevation_m) / 1000.0) ** 2))
        static = rng.normal(0.0, 0.05)
        v = VP if kind in ("VT", "IC") else V_SURF
        delay = pre_event + r / v + static
        trace = _propagate(sig, fs, r, delay, n, spreading)
        if kind == "VT":
            t = np.arange(n) / fs - (pre_event + r / VS + static)
            s_wave = info["s_carrier"] * np.where(
                t >= 0, (1.0 - np.exp(-np.maximum(t, 0) / info["rise"])) * np.exp(-np.maximum(t, 0) / info["s_decay"]), 0.0)
            s_wave /= max(np.abs(s_wave).max(), 1e-12)
            trace = trace + _propagate(s_wave, fs, r, 0.0, n, spreading) * info["s_amp"]
        trace = amp * trace
        if noise:
            trace = trace + station_noise(rng, n, fs, st.noise_level * rng.uniform(0.7, 1.4))
        if offsets:
            trace = trace + rng.uniform(-300.0, 300.0)
        out[st.code] = trace
    return out


def make_arrays(n_per_class: int, seed: int, *, fs: float = FS, duration: float = WINDOW,
                classes: tuple[str, ...] = CLASSES, noise: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A balanced, shuffled set of events as arrays, for training models directly (e.g. a 1D CNN).

    Returns ``X`` of shape ``(n_events, n_stations, n_samples)`` (float32, counts, DC offset
    removed, stations in the order of :data:`STATIONS`) and ``y`` of shape ``(n_events,)``, the
    index of each event's class in ``classes``.

    >>> X, y = make_arrays(2, seed=0)
    >>> X.shape, sorted(set(y.tolist()))
    ((10, 3, 2000), [0, 1, 2, 3, 4])
    """
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be at least 1, got {n_per_class}")
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(classes)), n_per_class)
    rng.shuffle(labels)
    X = np.empty((labels.size, len(STATIONS), int(round(fs * duration))), dtype=np.float32)
    for i, k in enumerate(labels):
        rec = synth_event(classes[k], rng, fs=fs, duration=duration, noise=noise, offsets=False)
        X[i] = np.stack([rec[s.code] for s in STATIONS])
    return X, labels


def _class_sizes(rng: np.random.Generator) -> dict[str, int]:
    return {k: int(v + rng.integers(-4, 5)) for k, v in CLASS_SIZES.items()}


def generate(dest: Path, seed: int) -> list[Path]:
    """Write the catalogue, the station list and one miniSEED file per event into ``dest``."""
    import obspy
    import pandas as pd

    dest = Path(dest)
    (dest / WAVEFORM_DIR).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sizes = _class_sizes(rng)
    labels = np.concatenate([[k] * sizes[k] for k in CLASSES])
    rng.shuffle(labels)
    start = np.datetime64("2023-03-01T00:00:00", "s")
    span = 120 * 86400
    seconds = np.sort(rng.choice(span, labels.size, replace=False))
    written: list[Path] = []
    rows = []
    for i, (label, sec) in enumerate(zip(labels, seconds)):
        event_id = f"ev{i + 1:04d}"
        origin = start + np.timedelta64(int(sec), "s")
        records = synth_event(str(label), rng)
        t0 = obspy.UTCDateTime(str(origin)) - PRE_EVENT
        traces = []
        for st in STATIONS:
            data = np.round(records[st.code]).astype(np.int32)
            header = {"network": NETWORK, "station": st.code, "location": LOCATION, "channel": CHANNEL,
                      "sampling_rate": FS, "starttime": t0}
            traces.append(obspy.Trace(data=data, header=header))
        path = dest / WAVEFORM_DIR / f"{event_id}.mseed"
        obspy.Stream(traces).write(str(path), format="MSEED", encoding="STEIM2", reclen=512)
        written.append(path)
        rows.append({"event_id": event_id, "time": str(origin) + "Z", "label": str(label),
                     "file": f"{WAVEFORM_DIR}/{event_id}.mseed"})
    catalog = dest / CATALOG_FILE
    pd.DataFrame(rows).to_csv(catalog, index=False)
    stations = dest / STATIONS_FILE
    pd.DataFrame([{"network": NETWORK, "station": s.code, "x_km": s.x_km, "y_km": s.y_km,
                   "elevation_m": s.elevation_m} for s in STATIONS]).to_csv(stations, index=False)
    return [catalog, stations, *written]
