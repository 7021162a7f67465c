"""Plain-data codec: the only way values travel from a student's process to the judge.

The grader never unpickles anything a student built. Values are turned into JSON made of plain
types (numbers, strings, lists, dicts) plus tagged forms for numpy arrays and pandas objects, and
rebuilt on the judge's side from that description only. Anything else (functions, fitted models,
arbitrary classes) is reported as *unsupported*: the judge then reaches it only through a proxy
(:class:`edsgrade.grading.judge.Proxy`) that calls it inside the sandbox and gets plain data back.

This file must stay importable on its own (standard library + numpy/pandas only): the Otter
export embeds its source text to decode the reference values it carries.

Example
-------
>>> import numpy as np
>>> decode(encode({"a": np.arange(3), "b": 1.5}))["a"].tolist()
[0, 1, 2]
"""
from __future__ import annotations

import base64
import json
import math
from typing import Any

TAG = "__plain__"
MAX_DEPTH = 20


class UnsupportedValue(TypeError):
    """Raised by :func:`encode` for a value that is not plain data."""


class Unavailable:
    """Placeholder the judge receives instead of a value it cannot have.

    ``reason`` is ``"missing"`` (the name is not defined in the student's notebook at that point)
    or ``"unsupported"`` (the value exists but is not plain data); ``detail`` says more.
    """

    def __init__(self, name: str, reason: str, detail: str = "") -> None:
        self.name, self.reason, self.detail = name, reason, detail

    def message(self) -> str:
        """A sentence for the student explaining why the value could not be checked."""
        if self.reason == "missing":
            return f"`{self.name}` is not defined when this question is checked: answer the question and run its cell."
        return f"`{self.name}` could not be checked: {self.detail}"

    def __repr__(self) -> str:
        return f"Unavailable({self.name!r}, {self.reason!r})"


def _encode_array(arr: Any) -> Any:
    import numpy as np

    arr = np.asarray(arr)
    kind = arr.dtype.kind
    if kind in "biufcmM":
        data = np.ascontiguousarray(arr)
        return {TAG: "ndarray", "dtype": data.dtype.str, "shape": list(data.shape),
                "data": base64.b64encode(data.tobytes()).decode("ascii")}
    if kind in "USO":
        return {TAG: "ndarray-list", "shape": list(arr.shape),
                "items": [_encode(v, 1) for v in arr.ravel().tolist()]}
    raise UnsupportedValue(f"numpy arrays of dtype {arr.dtype} are not supported")


def _encode(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise UnsupportedValue("value is nested too deeply")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return {TAG: "float", "repr": repr(value)}
    module = type(value).__module__ or ""
    if module.startswith("numpy"):
        import numpy as np

        if isinstance(value, np.ndarray):
            return _encode_array(value)
        if isinstance(value, np.generic):
            if isinstance(value, (np.datetime64, np.timedelta64)):
                return _encode_array(np.asarray(value))
            return _encode(value.item(), depth + 1)
    if module.startswith("pandas"):
        import pandas as pd

        if isinstance(value, pd.DataFrame):
            return {TAG: "dataframe", "columns": _encode(list(value.columns), depth + 1),
                    "index": _encode(value.index, depth + 1),
                    "data": [_encode_array(value.iloc[:, i].to_numpy()) for i in range(value.shape[1])]}
        if isinstance(value, pd.Series):
            return {TAG: "series", "name": _encode(value.name, depth + 1),
                    "index": _encode(value.index, depth + 1),
                    "values": _encode_array(value.to_numpy())}
        if isinstance(value, pd.Index):
            return {TAG: "index", "name": _encode(value.name, depth + 1),
                    "values": _encode_array(value.to_numpy())}
        if isinstance(value, pd.Timestamp):
            return {TAG: "timestamp", "iso": value.isoformat()}
    if isinstance(value, (list, tuple)):
        items = [_encode(v, depth + 1) for v in value]
        return items if isinstance(value, list) else {TAG: "tuple", "items": items}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {TAG: "dict", "items": {k: _encode(v, depth + 1) for k, v in value.items()}}
        return {TAG: "dict-pairs",
                "items": [[_encode(k, depth + 1), _encode(v, depth + 1)] for k, v in value.items()]}
    if isinstance(value, (set, frozenset)):
        return {TAG: "set", "items": [_encode(v, depth + 1) for v in value]}
    kind = f"{type(value).__module__}.{type(value).__qualname__}".removeprefix("builtins.")
    if callable(value):
        raise UnsupportedValue(f"it is a callable {kind}")
    raise UnsupportedValue(f"it is a {kind} object")


def encode(value: Any) -> Any:
    """Encode ``value`` as JSON-compatible plain data, or raise :class:`UnsupportedValue`."""
    return _encode(value, 0)


def encode_names(namespace: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Encode the values of ``names`` from ``namespace``; missing or unsupported names are tagged."""
    out: dict[str, Any] = {}
    for name in names:
        if name not in namespace:
            out[name] = {TAG: "unavailable", "reason": "missing", "detail": ""}
            continue
        try:
            encoded = encode(namespace[name])
            json.dumps(encoded)
            out[name] = encoded
        except (UnsupportedValue, TypeError, ValueError, OverflowError) as exc:
            out[name] = {TAG: "unavailable", "reason": "unsupported", "detail": str(exc)}
        except Exception as exc:  # a student's object may raise anything while being inspected
            out[name] = {TAG: "unavailable", "reason": "unsupported",
                         "detail": f"inspecting it raised {type(exc).__name__}"}
    return out


def _decode_array(obj: dict[str, Any]) -> Any:
    import numpy as np

    if obj[TAG] == "ndarray":
        raw = base64.b64decode(obj["data"].encode("ascii"))
        dtype = np.dtype(obj["dtype"])
        if dtype.kind not in "biufcmM":
            raise ValueError(f"refusing dtype {dtype}")
        return np.frombuffer(raw, dtype=dtype).reshape(obj["shape"]).copy()
    items = [decode(v) for v in obj["items"]]
    arr = np.empty(len(items), dtype=object)
    arr[:] = items
    return arr.reshape(obj["shape"])


def decode(obj: Any, name: str = "value") -> Any:
    """Rebuild a value from :func:`encode`'s output, using only plain constructors."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    if not isinstance(obj, dict) or TAG not in obj:
        raise ValueError("not an encoded plain value")
    tag = obj[TAG]
    if tag == "unavailable":
        return Unavailable(name, obj["reason"], obj.get("detail", ""))
    if tag == "float":
        return float(obj["repr"])
    if tag == "tuple":
        return tuple(decode(v) for v in obj["items"])
    if tag == "set":
        return set(decode(v) for v in obj["items"])
    if tag == "dict":
        return {k: decode(v) for k, v in obj["items"].items()}
    if tag == "dict-pairs":
        return {_hashable(decode(k)): decode(v) for k, v in obj["items"]}
    if tag in ("ndarray", "ndarray-list"):
        return _decode_array(obj)
    import pandas as pd

    if tag == "timestamp":
        return pd.Timestamp(obj["iso"])
    if tag == "index":
        return pd.Index(_decode_array(obj["values"]), name=_hashable(decode(obj["name"])))
    if tag == "series":
        return pd.Series(_decode_array(obj["values"]), index=decode(obj["index"]),
                         name=_hashable(decode(obj["name"])))
    if tag == "dataframe":
        columns = [_hashable(c) for c in decode(obj["columns"])]
        data = {i: _decode_array(col) for i, col in enumerate(obj["data"])}
        frame = pd.DataFrame(data, index=decode(obj["index"]))
        frame.columns = columns
        return frame
    raise ValueError(f"unknown plain-data tag {tag!r}")


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def decode_names(encoded: dict[str, Any]) -> dict[str, Any]:
    """Decode a mapping produced by :func:`encode_names`."""
    return {name: decode(obj, name) for name, obj in encoded.items()}
