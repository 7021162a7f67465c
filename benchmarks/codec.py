"""How long values take to cross from a submission's process to the judge, and what it costs in memory.

For each value: encode it as the sandbox does (``plaindata.encode`` with attachments), send it over
a real Unix socket pair from another process (the ``.npy`` frames of ``protocol.send``), read it with
the grader's bounded reader (``protocol.receive_message``) and decode it (``plaindata.decode``). The
time printed is the median of several crossings, from encode to decoded value, measured in the
receiving process; the sender encodes each time. For comparison, the former codec (JSON with base64
arrays inside, one JSON frame) is timed on the same values.

    .venv/bin/python benchmarks/codec.py            # a few seconds
"""
from __future__ import annotations

import base64
import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edsgrade.grading.sandbox import plaindata  # noqa: E402
from edsgrade.grading.sandbox import protocol  # noqa: E402

REPEAT = 7


def values() -> dict[str, object]:
    rng = np.random.default_rng(0)
    n = 3 * 365 * 96  # three years of 15-minute data, as in lab1
    idx = pd.date_range("2020-01-01", periods=n, freq="15min", tz="Europe/Paris", name="time")
    frame = pd.DataFrame({"level": rng.normal(size=n), "turbidity": rng.gamma(2, size=n),
                          "flag": pd.Categorical(rng.choice(["ok", "gap", "spike"], size=n)),
                          "count": pd.array(rng.integers(0, 9, size=n), dtype="Int64")}, index=idx)
    return {"float64 array, 32 MB": rng.normal(size=4 << 20),
            "lab1-like frame (105k rows, 4 columns)": frame,
            "list of 10 000 floats": rng.normal(size=10_000).tolist(),
            "small dict": {"a": 1.5, "b": [1, 2, 3], "c": "text"}}


def old_encode(value: object) -> bytes:
    """The former wire form: arrays as base64 inside one JSON document."""
    tree = plaindata.encode(value)  # without ``arrays``: base64 inline
    return json.dumps({"value": tree}, separators=(",", ":")).encode()


def cross(value: object, old: bool) -> float:
    """Seconds for one crossing (child encodes and sends; this process reads and decodes)."""
    a, b = socket.socketpair()
    start_r, start_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        a.close()
        os.read(start_r, 1)
        if old:
            body = old_encode(value)
            b.sendall(protocol.PREAMBLE.pack(len(body), 0) + body)
        else:
            arrays: list = []
            tree = plaindata.encode(value, arrays=arrays)
            protocol.send(b, {"value": tree}, arrays)
        os._exit(0)
    b.close()
    started = time.perf_counter()
    os.write(start_w, b"x")
    message, frames = protocol.receive_message(a, protocol.Bounds(), timeout=60)
    plaindata.decode(plaindata.bind_frames(message["value"], frames))
    seconds = time.perf_counter() - started
    os.waitpid(pid, 0)
    a.close()
    os.close(start_r)
    os.close(start_w)
    return seconds


def main() -> None:
    print(f"{'value':42s} {'now (ms)':>10s} {'before (ms)':>12s}")
    for name, value in values().items():
        cross(value, False)  # warm up imports
        now = statistics.median(cross(value, False) for _ in range(REPEAT))
        before = statistics.median(cross(value, True) for _ in range(REPEAT))
        print(f"{name:42s} {now * 1000:10.1f} {before * 1000:12.1f}")


if __name__ == "__main__":
    main()
