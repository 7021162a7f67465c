"""Plain-data codec: the only way values travel from a student's process to the judge.

The grader never unpickles anything a student built. Values are turned into a tree of plain JSON
types (numbers, strings, lists, dicts) with tagged forms for the rest, and rebuilt on the judge's
side from that description only, with plain constructors (``numpy.empty``, ``pandas.Index``,
``pandas.Categorical.from_codes``...): nothing is evaluated, no class is looked up by name.

Numeric, boolean, date and fixed-width string arrays are the bulk of the data. On the channel they
travel as binary ``.npy`` attachments (:mod:`edsgrade.grading.sandbox.protocol`): :func:`encode` with an
``arrays`` list appends each array there and leaves ``{"__plain__": "ndarray", "frame": i}`` in the
tree; without it (a value stored in ``reference.json`` or in an Otter test file) the bytes are
inlined as base64. :func:`decode` reads both.

pandas objects arrive as they are: their index (``RangeIndex``, ``MultiIndex``, names, a
``DatetimeIndex``'s frequency), the columns' index, and every column's dtype, including the
extension ones: categorical, nullable integer/float/boolean (``pd.NA``), ``string``/``str``,
time-zone-aware datetimes, periods, intervals. A dtype with no plain form (sparse, Arrow-backed,
a third-party extension) is refused with a message saying how to convert it.

Anything else (functions, fitted models, arbitrary classes) is reported as *unsupported*: the judge
then reaches it only through a proxy (:class:`edsgrade.grading.judge.Proxy`) that calls it inside the
sandbox and gets plain data back. A value over the grader's size limits (:class:`Limits`) is reported
as *too large*, with its size, and is not sent.

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
import datetime as _dt
import math
from dataclasses import dataclass
from typing import Any
try:
    from edsgrade.errors import EdsgradeError
except ImportError:  # standalone: shipped as `edsgrade_plaindata` in the Otter autograder (build.export_otter)
    class EdsgradeError(Exception):  # type: ignore[no-redef]
        """Stand-in for :class:`edsgrade.errors.EdsgradeError` where the package is not installed."""

TAG = "__plain__"
MAX_DEPTH = 20
#: numpy dtype kinds whose arrays are sent as raw bytes (never object, never structured)
BINARY_KINDS = "biufcmMSU"
MiB = 1 << 20
_HUGE_INT = 10 ** 4000  # Python refuses to parse integers of more than 4300 digits


class UnsupportedValue(EdsgradeError, TypeError):
    """Raised by :func:`encode` for a value that is not plain data."""


class ValueTooLarge(UnsupportedValue):
    """Raised by :func:`encode` for a value over :class:`Limits`; ``str(exc)`` says how large it is."""


class MalformedValue(EdsgradeError, ValueError):
    """Raised by :func:`decode` for a tree that no :func:`encode` could have produced."""


@dataclass(frozen=True)
class Limits:
    """How much the encoder may send: per value (``value_bytes``) and per reply (``reply_bytes``,
    ``reply_items``: tree nodes, about one JSON value each). Arrays count their ``nbytes``, strings
    their length."""

    value_bytes: int = 256 * MiB
    reply_bytes: int = 511 * MiB
    reply_items: int = 1_500_000
    reply_text: int = 60 * MiB  # bytes of JSON text (strings and numbers outside arrays)


class Unavailable:
    """Placeholder the judge receives instead of a value it cannot have.

    ``reason`` is ``"missing"`` (the name is not defined in the student's notebook at that point),
    ``"unsupported"`` (the value exists but is not plain data) or ``"too-large"`` (over the
    grader's limits); ``detail`` says more.
    """

    def __init__(self, name: str, reason: str, detail: str = "") -> None:
        self.name, self.reason, self.detail = name, reason, detail

    def message(self) -> str:
        """A sentence for the student explaining why the value could not be checked."""
        if self.reason == "missing":
            return f"`{self.name}` is not defined when this question is checked: answer the question and run its cell."
        if self.reason == "too-large":
            return f"`{self.name}` {self.detail}: it was not judged"
        return f"`{self.name}` could not be checked: {self.detail}"

    def __repr__(self) -> str:
        return f"Unavailable({self.name!r}, {self.reason!r})"


def human_size(n: float) -> str:
    """``1.5 GB``, ``256 MB``, ``12 kB``, ``10 bytes`` (binary units)."""
    for unit, scale in (("GB", 1 << 30), ("MB", MiB), ("kB", 1 << 10)):
        if n >= scale:
            text = f"{n / scale:.1f}".removesuffix(".0")
            return f"{text} {unit}"
    return f"{int(n)} bytes"


# ------------------------------------------------------------------------------------------ encoding


class _Encoder:
    """One encoding pass: where arrays go, and the budget spent so far."""

    def __init__(self, arrays: list | None, limits: Limits | None) -> None:
        self.arrays, self.limits = arrays, limits
        self.reply_bytes = self.reply_items = self.reply_text = 0
        self.value_bytes = 0

    def spend(self, nbytes: int, items: int = 1, text: int | None = None) -> None:
        limits = self.limits
        if limits is None:
            return
        if nbytes > limits.value_bytes:
            raise ValueTooLarge(f"holds {human_size(nbytes)} in one part, over the grader's limit of "
                                f"{human_size(limits.value_bytes)} for one value")
        self.value_bytes += nbytes
        self.reply_bytes += nbytes
        self.reply_items += items
        self.reply_text += 24 * items if text is None else text
        if self.value_bytes > limits.value_bytes:
            raise ValueTooLarge(f"is more than {human_size(limits.value_bytes)}, over the grader's limit "
                                f"of {human_size(limits.value_bytes)} for one value")
        if self.reply_bytes > limits.reply_bytes:
            raise ValueTooLarge(f"does not fit with the other values of this question: more than "
                                f"{human_size(limits.reply_bytes)} together, the grader's limit")
        if self.reply_text > limits.reply_text:
            raise ValueTooLarge(f"holds more than {human_size(limits.reply_text)} of text and numbers outside "
                                "arrays (with the other values of this question), over the grader's limit")
        if self.reply_items > limits.reply_items:
            raise ValueTooLarge(f"holds more than {limits.reply_items:,} items (with the other values of this "
                                "question), over the grader's limit: use a numpy array or a data frame")

    def room(self, items: int) -> None:
        """Refuse at once a container of ``items`` items that cannot fit (before encoding any of them)."""
        if self.limits is not None and self.reply_items + items > self.limits.reply_items:
            raise ValueTooLarge(f"holds {items:,} items, over the grader's limit of {self.limits.reply_items:,} "
                                "(with the other values of this question): use a numpy array or a data frame")

    # -- numpy ------------------------------------------------------------------------------------

    def ndarray(self, arr: Any, depth: int) -> Any:
        import numpy as np

        arr = np.asarray(arr)
        kind = arr.dtype.kind
        if kind in BINARY_KINDS and arr.dtype.names is None and not arr.dtype.hasobject:
            if arr.nbytes > (self.limits.value_bytes if self.limits else math.inf):
                raise ValueTooLarge(f"is {human_size(arr.nbytes)}, over the grader's limit of "
                                    f"{human_size(self.limits.value_bytes)} for one value")  # type: ignore[union-attr]
            self.spend(arr.nbytes, 3)
            if self.arrays is not None:
                self.arrays.append(arr)
                return {TAG: "ndarray", "frame": len(self.arrays) - 1}
            data = arr if arr.flags.c_contiguous else arr.copy(order="C")
            return {TAG: "ndarray", "dtype": data.dtype.str, "shape": list(data.shape),
                    "data": base64.b64encode(data.tobytes()).decode("ascii")}
        if kind == "O":
            self.spend(8 * arr.size, 3)
            return {TAG: "ndarray-list", "shape": list(arr.shape),
                    "items": [self.value(v, depth + 1) for v in arr.ravel().tolist()]}
        raise UnsupportedValue(f"numpy arrays of dtype {arr.dtype} are not supported")

    # -- pandas -----------------------------------------------------------------------------------

    def column(self, values: Any, depth: int) -> Any:
        """The values of a Series, an Index or a column (or a pandas array), with their dtype."""
        import numpy as np
        import pandas as pd

        dtype = values.dtype
        if isinstance(values, pd.arrays.NumpyExtensionArray):
            return self.ndarray(values.to_numpy(), depth)
        if isinstance(dtype, np.dtype):
            return self.ndarray(values.to_numpy() if hasattr(values, "to_numpy") else np.asarray(values), depth)
        arr = values.array if isinstance(values, (pd.Series, pd.Index)) else values
        if isinstance(dtype, pd.CategoricalDtype):
            cat = pd.Categorical(arr)
            return {TAG: "categorical", "codes": self.ndarray(cat.codes, depth),
                    "categories": self.index(cat.categories, depth + 1), "ordered": bool(cat.ordered)}
        if isinstance(dtype, pd.StringDtype):
            items = arr.to_numpy(dtype=object, na_value=None)
            self.spend(sum(len(s) for s in items if s is not None), len(items) + 3, 0)
            for text in items:
                if text is not None:
                    self.spend(0, 0, len(text) * (1 if text.isascii() else 12) + 8)
            return {TAG: "string", "storage": str(dtype.storage), "na": _na_name(dtype.na_value),
                    "items": items.tolist()}
        if isinstance(dtype, pd.DatetimeTZDtype):
            return {TAG: "datetimetz", "tz": _tz_encode(dtype.tz),
                    "values": self.ndarray(arr.tz_convert("UTC").tz_localize(None).to_numpy(), depth)}
        if isinstance(dtype, pd.PeriodDtype):
            return {TAG: "period", "dtype": str(dtype), "ordinals": self.ndarray(arr.asi8, depth)}
        if isinstance(dtype, pd.IntervalDtype):
            return {TAG: "interval", "closed": str(arr.closed),
                    "left": self.index(pd.Index(arr.left), depth + 1),
                    "right": self.index(pd.Index(arr.right), depth + 1)}
        if isinstance(arr, (pd.arrays.IntegerArray, pd.arrays.FloatingArray, pd.arrays.BooleanArray)):
            data = arr.to_numpy(dtype=dtype.numpy_dtype, na_value=_fill(dtype))
            return {TAG: "masked", "dtype": str(dtype), "data": self.ndarray(data, depth),
                    "mask": self.ndarray(np.asarray(arr.isna()), depth)}
        hint = ("convert it with .sparse.to_dense()" if isinstance(dtype, pd.SparseDtype)
                else "convert it with .astype(...) to a numpy or a pandas dtype (for example .astype(float), "
                     ".astype('Int64'), .astype('string'))")
        raise UnsupportedValue(f"a pandas column of dtype {dtype} cannot be sent as plain data: {hint}")

    def index(self, index: Any, depth: int) -> Any:
        import pandas as pd

        if depth > MAX_DEPTH:
            raise UnsupportedValue("value is nested too deeply")
        name = self.value(index.name, depth + 1) if not isinstance(index, pd.MultiIndex) else None
        if isinstance(index, pd.RangeIndex):
            self.spend(0, 6)
            return {TAG: "rangeindex", "start": int(index.start), "stop": int(index.stop),
                    "step": int(index.step), "name": name}
        if isinstance(index, pd.MultiIndex):
            return {TAG: "multiindex", "names": [self.value(n, depth + 1) for n in index.names],
                    "levels": [self.index(level, depth + 1) for level in index.levels],
                    "codes": [self.ndarray(c, depth) for c in index.codes]}
        out = {TAG: "index", "name": name, "values": self.column(index, depth)}
        freq = getattr(index, "freqstr", None) if isinstance(index, (pd.DatetimeIndex, pd.TimedeltaIndex)) else None
        if freq:
            out["freq"] = freq
        return out

    # -- everything -------------------------------------------------------------------------------

    def value(self, value: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise UnsupportedValue("value is nested too deeply")
        if value is None or isinstance(value, bool):
            self.spend(0)
            return value
        if isinstance(value, str):
            self.spend(len(value), 1, len(value) * (1 if value.isascii() else 12) + 8)
            return str(value)
        if isinstance(value, int):
            self.spend(0)
            if abs(value) >= _HUGE_INT:
                raise UnsupportedValue("it is an integer of more than 4000 digits")
            return int(value)
        if isinstance(value, float):
            self.spend(0)
            return float(value) if math.isfinite(value) else {TAG: "float", "repr": repr(float(value))}
        if isinstance(value, complex):
            self.spend(0, 3)
            return {TAG: "complex", "re": self.value(value.real, depth + 1), "im": self.value(value.imag, depth + 1)}
        if isinstance(value, (bytes, bytearray)):
            self.spend(len(value), 3)
            return {TAG: "bytes", "data": base64.b64encode(bytes(value)).decode("ascii")}
        module = type(value).__module__ or ""
        if module.startswith("numpy"):
            import numpy as np

            if isinstance(value, np.ndarray):
                return self.ndarray(value, depth)
            if isinstance(value, np.generic):
                if isinstance(value, (np.datetime64, np.timedelta64)):
                    return self.ndarray(np.asarray(value), depth)
                return self.value(value.item(), depth + 1)
        if module.startswith("pandas"):
            encoded = self.pandas(value, depth)
            if encoded is not None:
                return encoded
        if isinstance(value, _dt.datetime):
            self.spend(0, 3)
            return {TAG: "datetime", "iso": value.replace(tzinfo=None).isoformat(), "tz": _tz_encode(value.tzinfo)}
        if isinstance(value, _dt.date):
            self.spend(0, 3)
            return {TAG: "date", "iso": value.isoformat()}
        if isinstance(value, _dt.timedelta):
            self.spend(0, 3)
            return {TAG: "timedelta", "days": value.days, "seconds": value.seconds, "us": value.microseconds}
        if isinstance(value, (list, tuple, dict, set, frozenset)):
            self.room(len(value))
        if isinstance(value, list):
            self.spend(0)
            return [self.value(v, depth + 1) for v in value]
        if isinstance(value, tuple):
            self.spend(0, 3)
            return {TAG: "tuple", "items": [self.value(v, depth + 1) for v in value]}
        if isinstance(value, dict):
            self.spend(0, 3)
            if all(type(k) is str for k in value):
                return {TAG: "dict", "items": {k: self.value(v, depth + 1) for k, v in value.items()}}
            return {TAG: "dict-pairs",
                    "items": [[self.value(k, depth + 1), self.value(v, depth + 1)] for k, v in value.items()]}
        if isinstance(value, (set, frozenset)):
            self.spend(0, 3)
            return {TAG: "set" if isinstance(value, set) else "frozenset",
                    "items": [self.value(v, depth + 1) for v in value]}
        if isinstance(value, Unavailable):
            return {TAG: "unavailable", "reason": value.reason, "detail": value.detail}
        kind = f"{type(value).__module__}.{type(value).__qualname__}".removeprefix("builtins.")
        if callable(value):
            raise UnsupportedValue(f"it is a callable {kind}")
        raise UnsupportedValue(f"it is a {kind} object")

    def pandas(self, value: Any, depth: int) -> Any:
        import numpy as np
        import pandas as pd

        if value is pd.NA:
            return {TAG: "NA"}
        if value is pd.NaT:
            return {TAG: "NaT"}
        if isinstance(value, pd.DataFrame):
            self.spend(0, 3 * value.shape[1] + 6)
            return {TAG: "dataframe", "columns": self.index(value.columns, depth + 1),
                    "index": self.index(value.index, depth + 1),
                    "data": [self.column(value.iloc[:, i], depth + 1) for i in range(value.shape[1])]}
        if isinstance(value, pd.Series):
            self.spend(0, 6)
            return {TAG: "series", "name": self.value(value.name, depth + 1),
                    "index": self.index(value.index, depth + 1), "values": self.column(value, depth + 1)}
        if isinstance(value, pd.Index):
            return self.index(value, depth)
        if isinstance(value, pd.Categorical) or isinstance(value, pd.api.extensions.ExtensionArray):
            self.spend(0, 3)
            return {TAG: "array", "values": self.column(value, depth + 1),
                    "numpy": isinstance(value, pd.arrays.NumpyExtensionArray)}
        if isinstance(value, pd.Timestamp):
            self.spend(0, 3)
            stamp = value.tz_convert("UTC").tz_localize(None) if value.tz is not None else value
            return {TAG: "timestamp", "dt64": self.ndarray(np.asarray(stamp.asm8), depth), "tz": _tz_encode(value.tz)}
        if isinstance(value, pd.Timedelta):
            self.spend(0, 3)
            return {TAG: "pd-timedelta", "td64": self.ndarray(np.asarray(value.asm8), depth)}
        if isinstance(value, pd.Period):
            self.spend(0, 3)
            return {TAG: "pd-period", "ordinal": int(value.ordinal), "freq": value.freqstr}
        if isinstance(value, pd.Interval):
            self.spend(0, 3)
            return {TAG: "pd-interval", "left": self.value(value.left, depth + 1),
                    "right": self.value(value.right, depth + 1), "closed": str(value.closed)}
        return None


def _na_name(na: Any) -> str:
    import pandas as pd

    return "NA" if na is pd.NA else "nan"


def _fill(dtype: Any) -> Any:
    return False if dtype.kind == "b" else 0


def _tz_encode(tz: Any) -> Any:
    """A time zone as plain data: its name, or a fixed offset in seconds."""
    if tz is None:
        return None
    if isinstance(tz, _dt.timezone):
        offset = tz.utcoffset(None)
        return {"offset": offset.total_seconds()} if offset else "UTC"
    key = getattr(tz, "key", None) or getattr(tz, "zone", None)
    if key:
        return str(key)
    name = str(tz)
    if name.startswith("tzfile(") or name.startswith("tzlocal"):
        raise UnsupportedValue(f"its time zone {name} has no portable name: use tz_convert('Europe/Paris') or 'UTC'")
    return name


def encode(value: Any, *, arrays: list | None = None, limits: Limits | None = None) -> Any:
    """Encode ``value`` as JSON-compatible plain data, or raise :class:`UnsupportedValue`.

    With ``arrays``, binary arrays are appended to it and referenced by index (to be sent as
    attachments); ``limits`` bounds what one value may hold (:class:`ValueTooLarge`).
    """
    return _Encoder(arrays, limits).value(value, 0)


def encode_names(namespace: dict[str, Any], names: list[str], *, arrays: list | None = None,
                 limits: Limits | None = None) -> dict[str, Any]:
    """Encode the values of ``names`` from ``namespace``; missing, unsupported and too large names are tagged.

    All the names share ``limits``' per-reply budget; each has its own per-value budget.
    """
    out: dict[str, Any] = {}
    encoder = _Encoder(arrays, limits)
    for name in names:
        if name not in namespace:
            out[name] = {TAG: "unavailable", "reason": "missing", "detail": ""}
            continue
        mark = len(arrays) if arrays is not None else 0
        spent = (encoder.reply_bytes, encoder.reply_items, encoder.reply_text)
        encoder.value_bytes = 0
        try:
            out[name] = encoder.value(namespace[name], 0)
            continue
        except ValueTooLarge as exc:
            out[name] = {TAG: "unavailable", "reason": "too-large", "detail": str(exc)}
        except (UnsupportedValue, TypeError, ValueError, OverflowError) as exc:
            out[name] = {TAG: "unavailable", "reason": "unsupported", "detail": str(exc)[:2000]}
        except Exception as exc:  # a student's object may raise anything while being inspected
            out[name] = {TAG: "unavailable", "reason": "unsupported",
                         "detail": f"inspecting it raised {type(exc).__name__}"}
        if arrays is not None:  # what the failed value had attached is not sent
            del arrays[mark:]
        encoder.reply_bytes, encoder.reply_items, encoder.reply_text = spent
    return out


# ------------------------------------------------------------------------------------------ decoding


class _Decoder:
    def __init__(self, frames: list | None) -> None:
        self.frames = frames or []

    def ndarray(self, obj: Any) -> Any:
        import numpy as np

        if not isinstance(obj, dict):
            raise MalformedValue("an array is missing")
        tag = obj.get(TAG)
        if tag == "ndarray":
            if "frame" in obj:
                index = obj["frame"]
                if type(index) is not int or not 0 <= index < len(self.frames) \
                        or not isinstance(self.frames[index], np.ndarray):
                    raise MalformedValue(f"an array refers to attachment {index!r}, which was not sent")
                return self.frames[index]
            dtype = np.dtype(str(obj["dtype"]))
            if dtype.hasobject or dtype.kind not in BINARY_KINDS or dtype.names is not None:
                raise MalformedValue(f"refusing dtype {dtype}")
            shape = [int(n) for n in obj["shape"]]
            raw = base64.b64decode(str(obj["data"]).encode("ascii"))
            return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        if tag == "ndarray-list":
            items = [self.value(v) for v in _list(obj["items"])]
            arr = np.empty(len(items), dtype=object)
            arr[:] = items
            return arr.reshape([int(n) for n in obj["shape"]])
        raise MalformedValue("an array was expected")

    def column(self, obj: Any) -> Any:
        """A numpy or pandas array, as :meth:`_Encoder.column` described it."""
        import numpy as np
        import pandas as pd

        tag = obj.get(TAG) if isinstance(obj, dict) else None
        if tag in ("ndarray", "ndarray-list"):
            return self.ndarray(obj)
        if tag == "categorical":
            categories = self.index(obj["categories"])
            return pd.Categorical.from_codes(self.ndarray(obj["codes"]),
                                             dtype=pd.CategoricalDtype(categories, ordered=bool(obj["ordered"])))
        if tag == "string":
            storage, na = str(obj["storage"]), pd.NA if obj["na"] == "NA" else np.nan
            items = _list(obj["items"])
            if not all(s is None or type(s) is str for s in items):
                raise MalformedValue("a string column holds something else than strings")
            return pd.array(np.array(items, dtype=object), dtype=pd.StringDtype(storage, na_value=na))
        if tag == "datetimetz":
            utc = self.ndarray(obj["values"])
            if utc.dtype.kind != "M":
                raise MalformedValue("a datetime column is not made of datetimes")
            return pd.array(utc).tz_localize("UTC").tz_convert(_tz_decode(obj["tz"]))
        if tag == "period":
            dtype = pd.api.types.pandas_dtype(str(obj["dtype"]))
            if not isinstance(dtype, pd.PeriodDtype):
                raise MalformedValue("a period column has another dtype")
            return pd.arrays.PeriodArray(self.ndarray(obj["ordinals"]).astype("i8", copy=False), dtype=dtype)
        if tag == "interval":
            return pd.arrays.IntervalArray.from_arrays(self.index(obj["left"]), self.index(obj["right"]),
                                                       closed=str(obj["closed"]))
        if tag == "masked":
            dtype = pd.api.types.pandas_dtype(str(obj["dtype"]))
            data, mask = self.ndarray(obj["data"]), self.ndarray(obj["mask"])
            kinds = {"IntegerArray": "iu", "FloatingArray": "f", "BooleanArray": "b"}
            cls = dtype.construct_array_type() if isinstance(dtype, pd.api.extensions.ExtensionDtype) else None
            if cls is None or cls.__name__ not in kinds or data.dtype != dtype.numpy_dtype \
                    or mask.dtype != bool or mask.shape != data.shape:
                raise MalformedValue(f"a nullable column of dtype {dtype} is malformed")
            return cls(data, mask)
        raise MalformedValue("a column was expected")

    def index(self, obj: Any) -> Any:
        import pandas as pd

        tag = obj.get(TAG) if isinstance(obj, dict) else None
        if tag == "rangeindex":
            return pd.RangeIndex(int(obj["start"]), int(obj["stop"]), int(obj["step"]),
                                 name=_hashable(self.value(obj["name"])))
        if tag == "multiindex":
            return pd.MultiIndex(levels=[self.index(level) for level in _list(obj["levels"])],
                                 codes=[self.ndarray(c) for c in _list(obj["codes"])],
                                 names=[_hashable(self.value(n)) for n in _list(obj["names"])],
                                 verify_integrity=True)
        if tag == "index":
            values = self.column(obj["values"])
            name = _hashable(self.value(obj["name"]))
            index = pd.Index(values, name=name, dtype=values.dtype, copy=False)
            if obj.get("freq") and isinstance(index, (pd.DatetimeIndex, pd.TimedeltaIndex)):
                index = type(index)(index, freq=str(obj["freq"]))
            return index
        raise MalformedValue("an index was expected")

    def value(self, obj: Any) -> Any:
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        if isinstance(obj, list):
            return [self.value(v) for v in obj]
        if not isinstance(obj, dict) or TAG not in obj:
            raise MalformedValue("not an encoded plain value")
        tag = obj[TAG]
        if tag == "float":
            return float(str(obj["repr"]))
        if tag == "complex":
            return complex(float(self.value(obj["re"])), float(self.value(obj["im"])))
        if tag == "bytes":
            return base64.b64decode(str(obj["data"]).encode("ascii"))
        if tag == "tuple":
            return tuple(self.value(v) for v in _list(obj["items"]))
        if tag == "set":
            return set(_hashable(self.value(v)) for v in _list(obj["items"]))
        if tag == "frozenset":
            return frozenset(_hashable(self.value(v)) for v in _list(obj["items"]))
        if tag == "dict":
            items = obj["items"]
            if not isinstance(items, dict):
                raise MalformedValue("a dict's items are not a mapping")
            return {str(k): self.value(v) for k, v in items.items()}
        if tag == "dict-pairs":
            return {_hashable(self.value(k)): self.value(v) for k, v in _list(obj["items"])}
        if tag == "datetime":
            stamp = _dt.datetime.fromisoformat(str(obj["iso"]))
            tz = obj.get("tz")
            return stamp if tz is None else stamp.replace(tzinfo=_py_tz(tz))
        if tag == "date":
            return _dt.date.fromisoformat(str(obj["iso"]))
        if tag == "timedelta":
            return _dt.timedelta(days=int(obj["days"]), seconds=int(obj["seconds"]), microseconds=int(obj["us"]))
        if tag in ("ndarray", "ndarray-list"):
            return self.ndarray(obj)
        if tag == "framed":  # a value with its attachments, as received (see bind_frames)
            return _Decoder(obj.get("frames")).value(obj["value"])
        import numpy as np
        import pandas as pd

        if tag == "NA":
            return pd.NA
        if tag == "NaT":
            return pd.NaT
        if tag == "timestamp":
            stamp = pd.Timestamp(self.ndarray(obj["dt64"])[()])
            return stamp if obj.get("tz") is None else stamp.tz_localize("UTC").tz_convert(_tz_decode(obj["tz"]))
        if tag == "pd-timedelta":
            return pd.Timedelta(self.ndarray(obj["td64"])[()])
        if tag == "pd-period":
            return pd.Period(ordinal=int(obj["ordinal"]), freq=str(obj["freq"]))
        if tag == "pd-interval":
            return pd.Interval(self.value(obj["left"]), self.value(obj["right"]), closed=str(obj["closed"]))
        if tag in ("index", "rangeindex", "multiindex"):
            return self.index(obj)
        if tag == "array":
            values = self.column(obj["values"])
            if isinstance(values, np.ndarray):
                return pd.arrays.NumpyExtensionArray(values) if obj.get("numpy") else pd.array(values)
            return values
        if tag == "series":
            values = self.column(obj["values"])
            series = pd.Series(values, dtype=values.dtype, name=_hashable(self.value(obj["name"])), copy=False)
            series.index = self.index(obj["index"])
            return series
        if tag == "dataframe":
            columns, index = self.index(obj["columns"]), self.index(obj["index"])
            data = [self.column(c) for c in _list(obj["data"])]
            if len(data) != len(columns) or any(len(c) != len(index) for c in data):
                raise MalformedValue("a data frame's columns do not match its shape")
            if not data:
                return pd.DataFrame(index=index, columns=columns)
            frame = pd.DataFrame({i: pd.Series(c, dtype=c.dtype, copy=False) for i, c in enumerate(data)})
            frame.index, frame.columns = index, columns
            return frame
        raise MalformedValue(f"unknown plain-data tag {str(tag)[:40]!r}")


def _list(obj: Any) -> list:
    if not isinstance(obj, list):
        raise MalformedValue("a list was expected")
    return obj


def _tz_decode(tz: Any) -> Any:
    if isinstance(tz, dict):
        return _dt.timezone(_dt.timedelta(seconds=float(tz["offset"])))
    return str(tz)


def _py_tz(tz: Any) -> Any:
    if isinstance(tz, dict) or tz == "UTC":
        return _dt.timezone.utc if tz == "UTC" else _tz_decode(tz)
    from zoneinfo import ZoneInfo

    return ZoneInfo(str(tz))


def decode(obj: Any, name: str = "value", *, frames: list | None = None) -> Any:
    """Rebuild a value from :func:`encode`'s output, using only plain constructors.

    ``frames`` are the arrays that came as attachments with ``obj``. Raises :class:`MalformedValue`
    for anything :func:`encode` cannot have produced (whatever failed in the rebuilding).
    """
    if isinstance(obj, dict) and obj.get(TAG) == "framed":
        obj, frames = obj.get("value"), obj.get("frames")
    if isinstance(obj, dict) and obj.get(TAG) == "unavailable":
        return Unavailable(name, str(obj.get("reason", "unsupported")), str(obj.get("detail", ""))[:2000])
    try:
        return _Decoder(frames).value(obj)
    except MalformedValue:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # any failure while rebuilding from hostile parts means the tree is malformed
        raise MalformedValue(f"{type(exc).__name__}: {str(exc)[:200]}") from None


def bind_frames(obj: Any, frames: list) -> Any:
    """``obj`` (an encoding received with attachments ``frames``) as one self-contained value."""
    return {TAG: "framed", "value": obj, "frames": frames} if frames else obj


def portable(obj: Any, name: str = "value") -> Any:
    """``obj`` with its attachments inlined (base64), for storing as JSON (``reference.json``)."""
    if not (isinstance(obj, dict) and obj.get(TAG) == "framed"):
        return obj
    return encode(decode(obj, name))


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def decode_names(encoded: dict[str, Any]) -> dict[str, Any]:
    """Decode a mapping produced by :func:`encode_names`."""
    return {name: decode(obj, name) for name, obj in encoded.items()}
