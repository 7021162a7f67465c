"""Synthetic records of the Le Teil earthquake for lab 3, "Bayesian earthquake location".

The event
---------
On 11 November 2019 at 10:52 UTC a Mw 4.9 earthquake struck the village of Le Teil (Ardèche,
France), in the Rhône valley. It was unusually shallow (about 1 km): the rupture reached the
surface along ~5 km of the Oligocene La Rouvière fault, with up to ~10 cm of reverse slip, and
InSAR interferograms show a lobe of uplift of ~10 cm elongated along the fault's N45-50°E strike
(Ritz et al. 2020; Cornou et al. 2021). Its epicentre is close to 44.52° N, 4.67° E
(Delouis et al. 2021 relocate it with the regional stations and the InSAR displacement).

What is simulated
-----------------
Every random choice comes from ``numpy.random.default_rng(seed)``: one seed always gives
byte-identical files, another seed another draw (epicentre within ~2 km of the published one,
origin time, P velocity, pick-scale errors, noise, the faulty station).

*Stations.* Eleven four-letter station codes at plausible sites near towns of the region, between
~10 and ~115 km from Le Teil. **They are not the coordinates of the real permanent
stations** (RESIF networks FR and RA): they are plausible locations of a regional network, in the
synthetic network ``XX`` (the FDSN code for temporary/test data), channel ``HHZ`` (broadband,
high gain, vertical, 100 Hz).

*Travel times.* Constant P velocity ``vp`` drawn in [5.7, 6.3] km/s (a mean crustal P velocity of
the region), and S velocity ``vp / sqrt(3)`` (Poisson solid), over the great-circle epicentral
distance on a sphere of radius 6371 km; the source depth (~1 km) is neglected. Each station's true
arrival time gets a "model error" drawn from N(0, 0.12 s): what a constant-velocity model misses
of the real 3-D crust, i.e. the scale of picking and model errors of a regional location.

*Origin time.* Within ±30 s of the nominal 10:52:45 UTC, and not written anywhere: the traces start
15-25 s before it.

*Waveforms* (ground velocity, m/s, 100 Hz, 80 s, all starting at the same time):
background noise = ocean microseism (band 0.1-0.4 Hz) + broadband cultural/wind noise (1-15 Hz),
one quiet and one noisy site; P = an impulsive first motion followed by band-limited (2-10 Hz)
scattered coda with a 2-4 s decay; S = 2-3 times larger, lower-frequency, longer coda. Amplitudes
decay with distance as ``r**-1.3``, the geometrical spreading and attenuation of Lg/Pg waves at
regional distances; the P signal-to-noise ratio is above ~20 at every station, as for a
magnitude-5 event in this network. The P polarity varies with azimuth (a four-lobed pattern).

*A faulty clock.* One station (never one of the three nearest) lost its GPS lock: its samples
are time-stamped 2.5-4 s late or early. Its pick is therefore an outlier, which a Gaussian
likelihood follows and a Laplacian likelihood resists.

*InSAR-like map.* Line-of-sight displacement (cm, positive towards the satellite) on a regular
longitude-latitude grid around the epicentre: an uplift lobe of 8-12 cm centred 0.5-1.5 km SE of
the epicentre (on the hanging wall of the SE-dipping reverse fault), elongated along a N50°E
strike (half-length ~2.5 km, half-width ~1.2 km), a small subsidence lobe on the NW side, and
spatially correlated "atmospheric" noise of ~0.3 cm (Gaussian noise smoothed over ~3 km).

References
----------
- Cornou, C., et al. (2021). Rapid response to the Mw 4.9 earthquake of November 11, 2019 in Le
  Teil, Lower Rhône Valley, France. Comptes Rendus Géoscience, 353(S1), 441-463.
- Delouis, B., et al. (2021). Constraining the point source parameters of the 11 November 2019
  Mw 4.9 Le Teil earthquake using multiple relocation approaches, first motion and full waveform
  inversions. Comptes Rendus Géoscience, 353(S1), 493-516.
- Ritz, J.-F., et al. (2020). Surface rupture and shallow fault reactivation during the 2019
  Mw 4.9 Le Teil earthquake, France. Communications Earth & Environment, 1, 10.
- Lay, T., & Wallace, T. C. (1995). Modern Global Seismology, Academic Press (geometrical
  spreading, coda, STA/LTA detection).

File formats
------------
``leteil_2019-11-11.mseed`` (~0.5 MB): one miniSEED trace per station, ``XX.<STA>.00.HHZ``,
float32, ground velocity in m/s; all traces start at the same time. Read with
``obspy.read(path)``.

``stations.xml``: the FDSN StationXML inventory of network ``XX`` (station and channel latitude,
longitude, elevation, sampling rate). Read with ``obspy.read_inventory(path)``; the coordinates of
a trace are ``inventory.get_coordinates(trace.id)``.

``insar_los.npz`` (~100 kB): ``lat`` (n,), ``lon`` (m,) in degrees and ``los_cm`` (n, m), the
line-of-sight displacement in cm on that grid (``los_cm[i, j]`` at ``lat[i], lon[j]``). Read with
``numpy.load(path)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

WAVEFORM_FILE = "leteil_2019-11-11.mseed"
INVENTORY_FILE = "stations.xml"
INSAR_FILE = "insar_los.npz"
NETWORK = "XX"
CHANNEL = "HHZ"
LOCATION = "00"
SAMPLING_RATE = 100.0
DURATION_S = 80.0
EARTH_RADIUS_KM = 6371.0
#: published epicentre (Delouis et al. 2021; Cornou et al. 2021), degrees
PUBLISHED_LAT, PUBLISHED_LON = 44.518, 4.671
#: nominal origin time of the event (UTC)
NOMINAL_ORIGIN = "2019-11-11T10:52:45"
#: plausible station sites (NOT the real permanent stations): code -> (lat, lon, elevation m, town)
STATIONS: dict[str, tuple[float, float, float, str]] = {
    "MTLM": (44.590, 4.790, 150.0, "Montélimar (plateau E of the town)"),
    "AUBN": (44.640, 4.390, 300.0, "Aubenas"),
    "PRIV": (44.760, 4.580, 420.0, "Privas"),
    "NYON": (44.360, 5.140, 310.0, "Nyons"),
    "DIEF": (44.750, 5.370, 480.0, "Die"),
    "ALES": (44.130, 4.080, 180.0, "Alès"),
    "AVIG": (43.950, 4.810, 60.0, "Avignon"),
    "VALC": (44.930, 4.890, 200.0, "Valence"),
    "NIMS": (43.840, 4.360, 90.0, "Nîmes"),
    "PUYV": (45.040, 3.880, 650.0, "Le Puy-en-Velay"),
    "GREN": (45.190, 5.720, 250.0, "Grenoble"),
}
#: the InSAR grid (degrees): latitudes 44.40-44.64 and longitudes 4.52-4.82 by 0.004 deg
INSAR_LAT = np.round(np.arange(44.40, 44.64 + 1e-9, 0.004), 4)
INSAR_LON = np.round(np.arange(4.52, 4.82 + 1e-9, 0.004), 4)


def great_circle_km(lat1, lon1, lat2, lon2):
    """Great-circle distance (km) on a sphere of radius 6371 km (haversine); degrees in, broadcasts."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi, dlmb = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    h = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


@dataclass(frozen=True)
class LeTeilSimulation:
    """One draw: the true source, the stations, arrival times (s after the traces' start) and data."""

    seed: int
    epi_lat: float
    epi_lon: float
    vp: float
    origin_offset: float  # origin time, in s after the common start time of the traces
    codes: list[str]
    distance_km: np.ndarray
    p_arrival: np.ndarray  # true P arrival (model + model error), s after start, on the true clock
    clock_error: np.ndarray  # time-stamp error of each station (0 except the faulty one)
    data: np.ndarray  # (n_stations, n_samples) ground velocity m/s, float32
    los_cm: np.ndarray


def _bandpassed(rng: np.random.Generator, n: int, fmin: float, fmax: float) -> np.ndarray:
    """Unit-variance Gaussian noise band-limited to [fmin, fmax] Hz (FFT mask, smooth edges)."""
    spec = np.fft.rfft(rng.normal(size=n))
    f = np.fft.rfftfreq(n, 1.0 / SAMPLING_RATE)
    mask = 1.0 / (1.0 + (fmin / np.maximum(f, 1e-6)) ** 8) / (1.0 + (f / fmax) ** 8)
    x = np.fft.irfft(spec * mask, n)
    return x / x.std()


def _wave(rng, t, onset, amp, fmin, fmax, decay, first_motion, polarity):
    """A phase arriving at ``onset``: an impulsive first motion, then a decaying band-limited coda."""
    s = t - onset
    after = s >= 0
    env = np.where(after, (1.0 - np.exp(-np.where(after, s, 0) / 0.03)) * np.exp(-np.where(after, s, 0) / decay), 0.0)
    coda = amp * env * _bandpassed(rng, t.size, fmin, fmax)
    period = 1.0 / first_motion
    pulse = np.where(after & (s < period), np.sin(np.pi * np.where(after, s, 0) / period), 0.0)
    return coda + polarity * 1.5 * amp * pulse


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], length_cells: float) -> np.ndarray:
    """Unit-variance Gaussian random field with a Gaussian correlation of ``length_cells``."""
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.fftfreq(shape[1])[None, :]
    filt = np.exp(-2 * (np.pi * length_cells) ** 2 * (kx**2 + ky**2))
    field = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=shape)) * filt))
    return field / field.std()


def simulate(seed: int) -> LeTeilSimulation:
    """Simulate one draw for ``seed`` (see the module docstring for the model)."""
    rng = np.random.default_rng(seed)
    epi_lat = PUBLISHED_LAT + rng.normal(0.0, 0.008)
    epi_lon = PUBLISHED_LON + rng.normal(0.0, 0.010)
    vp = float(rng.uniform(5.7, 6.3))
    vs = vp / np.sqrt(3.0)
    origin_offset = float(np.round(rng.uniform(15.0, 25.0), 2))
    codes = list(STATIONS)
    lat = np.array([STATIONS[c][0] for c in codes])
    lon = np.array([STATIONS[c][1] for c in codes])
    dist = great_circle_km(epi_lat, epi_lon, lat, lon)
    model_error = rng.normal(0.0, 0.12, len(codes))
    p_arrival = origin_offset + dist / vp + model_error
    s_arrival = origin_offset + dist / vs + 1.7 * model_error + rng.normal(0.0, 0.2, len(codes))

    clock_error = np.zeros(len(codes))
    candidates = np.argsort(dist)[3:]
    faulty = int(rng.choice(candidates))
    clock_error[faulty] = rng.choice([-1.0, 1.0]) * rng.uniform(2.5, 4.0)

    n = int(DURATION_S * SAMPLING_RATE)
    t = np.arange(n) / SAMPLING_RATE
    azimuth = np.degrees(np.arctan2(np.radians(lon - epi_lon) * np.cos(np.radians(epi_lat)), np.radians(lat - epi_lat)))
    polarity = np.sign(np.cos(2 * np.radians(azimuth - 50.0)) + 1e-3)
    noise_level = rng.lognormal(np.log(2e-7), 0.3, len(codes))
    noise_level[rng.choice(len(codes), 2, replace=False)] *= [0.5, 2.5]  # a quiet and a noisy site
    data = np.empty((len(codes), n), dtype=np.float32)
    for i in range(len(codes)):
        shift = clock_error[i]  # a late clock stamps everything later
        amp_p = 2.0e-3 * (dist[i] / 10.0) ** -1.3 * rng.lognormal(0.0, 0.25)
        amp_s = amp_p * rng.uniform(2.0, 3.0)
        noise = noise_level[i] * (0.8 * _bandpassed(rng, n, 0.1, 0.4) + 0.6 * _bandpassed(rng, n, 1.0, 15.0))
        p = _wave(rng, t, p_arrival[i] + shift, amp_p, 2.0, 10.0, rng.uniform(2.0, 4.0), 6.0, polarity[i])
        s = _wave(rng, t, s_arrival[i] + shift, amp_s, 1.0, 6.0, rng.uniform(5.0, 9.0), 2.5, rng.choice([-1, 1]))
        data[i] = (noise + p + s).astype(np.float32)

    # InSAR-like line-of-sight map
    glat, glon = np.meshgrid(INSAR_LAT, INSAR_LON, indexing="ij")
    km_n = (glat - epi_lat) * np.radians(1.0) * EARTH_RADIUS_KM
    km_e = (glon - epi_lon) * np.radians(1.0) * EARTH_RADIUS_KM * np.cos(np.radians(epi_lat))
    strike = np.radians(50.0)
    along = km_e * np.sin(strike) + km_n * np.cos(strike)  # along strike (N50E)
    across = km_e * np.cos(strike) - km_n * np.sin(strike)  # positive to the SE
    offset_se = rng.uniform(0.5, 1.5)
    uplift = rng.uniform(8.0, 12.0)
    lobe = uplift * np.exp(-((along - rng.normal(0, 0.4)) / 2.5) ** 2 - ((across - offset_se) / 1.2) ** 2)
    lobe -= 0.2 * uplift * np.exp(-(along / 3.0) ** 2 - ((across + 1.5) / 1.5) ** 2)
    cell_km = 0.004 * np.radians(1.0) * EARTH_RADIUS_KM
    los = lobe + 0.3 * _smooth_noise(rng, glat.shape, 3.0 / cell_km)
    return LeTeilSimulation(seed, float(epi_lat), float(epi_lon), vp, origin_offset, codes, dist, p_arrival,
                            clock_error, data, los.astype(np.float32))


def _inventory(codes: list[str]):
    from obspy import UTCDateTime
    from obspy.core.inventory import Channel, Inventory, Network, Site, Station

    created = UTCDateTime("2019-11-12T00:00:00")
    stations = []
    for code in codes:
        lat, lon, elev, town = STATIONS[code]
        channel = Channel(CHANNEL, LOCATION, latitude=lat, longitude=lon, elevation=elev, depth=0.0,
                          azimuth=0.0, dip=-90.0, sample_rate=SAMPLING_RATE, start_date=UTCDateTime("2015-01-01"))
        stations.append(Station(code, latitude=lat, longitude=lon, elevation=elev, channels=[channel],
                                site=Site(name=f"{town} (synthetic site)"), creation_date=UTCDateTime("2015-01-01"),
                                start_date=UTCDateTime("2015-01-01")))
    network = Network(NETWORK, stations=stations, description="edsgrade synthetic regional network (Le Teil 2019)",
                      start_date=UTCDateTime("2015-01-01"))
    return Inventory(networks=[network], source="edsgrade", sender="edsgrade", created=created,
                     module="edsgrade.datasets.location", module_uri=None)


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    """``numpy.savez_compressed`` with fixed time stamps in the zip, so that files are byte-identical."""
    import io
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(2019, 11, 11, 10, 52, 45)), buf.getvalue(),
                        compress_type=zipfile.ZIP_DEFLATED)


def generate(dest: Path, seed: int) -> list[Path]:
    """Write the waveforms, the station inventory and the InSAR-like map of draw ``seed`` into ``dest``."""
    from obspy import Stream, Trace, UTCDateTime

    sim = simulate(seed)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    start = UTCDateTime(NOMINAL_ORIGIN) - sim.origin_offset + float(np.round(np.random.default_rng(seed + 1).uniform(-30, 30), 2))
    traces = []
    for i, code in enumerate(sim.codes):
        header = {"network": NETWORK, "station": code, "location": LOCATION, "channel": CHANNEL,
                  "sampling_rate": SAMPLING_RATE, "starttime": start}
        traces.append(Trace(data=sim.data[i], header=header))
    order = np.random.default_rng(seed + 2).permutation(len(traces))  # not sorted by distance
    stream = Stream([traces[k] for k in order])
    wave_path, inv_path, insar_path = dest / WAVEFORM_FILE, dest / INVENTORY_FILE, dest / INSAR_FILE
    stream.write(str(wave_path), format="MSEED", encoding="FLOAT32", reclen=4096)
    _inventory(sim.codes).write(str(inv_path), format="STATIONXML")
    _write_npz(insar_path, lat=INSAR_LAT, lon=INSAR_LON, los_cm=sim.los_cm)
    return [wave_path, inv_path, insar_path]
