"""The data of lab 5, "deep learning": seismo-volcanic events and phase-picking windows as arrays.

The handwritten digits of the lab come with scikit-learn (``sklearn.datasets.load_digits``: 1797
8x8 images of digits written by 43 people, from the UCI "optical recognition of handwritten
digits" set) and are not written here. This generator writes the two seismological data sets,
both synthetic and seeded (one seed always gives byte-identical files):

``volcano_events.npz``
    The events of lab 2's generator (:func:`edsgrade.datasets.volcano.make_arrays`, see that
    module for the physical models of the five classes), balanced: ``X`` float32 of shape
    ``(n_events, 3, 2000)`` (stations SUM, FLK, BAS; 40 s of vertical velocity at 50 Hz, counts,
    DC offset removed), ``y`` the class index of each event, ``classes`` the class names, ``stations``
    and ``fs``.
``picking.npz``
    Three-component windows of local earthquakes with their P and S arrivals
    (:func:`edsgrade.datasets.picking.make_arrays`): ``X`` float32 ``(n_records, 3, 1024)``
    (components Z, N, E at 40 Hz), ``picks`` ``(n_records, 2)`` (P and S arrival, in samples),
    ``components`` and ``fs``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edsgrade.datasets import picking, volcano

EVENTS_FILE = "volcano_events.npz"
PICKING_FILE = "picking.npz"
EVENTS_PER_CLASS = 50
PICKING_RECORDS = 300


def generate(dest: Path, seed: int) -> list[Path]:
    """Write ``volcano_events.npz`` and ``picking.npz`` into ``dest`` (see the module docstring)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    X, y = volcano.make_arrays(EVENTS_PER_CLASS, seed)
    events = dest / EVENTS_FILE
    np.savez_compressed(events, X=X, y=y, classes=np.array(volcano.CLASSES),
                        stations=np.array([s.code for s in volcano.STATIONS]), fs=volcano.FS)
    Xp, picks = picking.make_arrays(PICKING_RECORDS, seed + 1)
    windows = dest / PICKING_FILE
    np.savez_compressed(windows, X=Xp, picks=picks, components=np.array(picking.COMPONENTS), fs=picking.FS)
    return [events, windows]
