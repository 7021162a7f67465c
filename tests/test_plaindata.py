"""Values travel from the student's process to the judge as plain data only."""
import json

import numpy as np
import pandas as pd
import pytest

from edsgrade.grading.sandbox.plaindata import Unavailable, UnsupportedValue, decode, decode_names, encode, encode_names


def roundtrip(value):
    return decode(json.loads(json.dumps(encode(value))))


@pytest.mark.parametrize("value", [None, True, 3, -2.5, "é", [1, "a", None], {"a": [1, 2]}, (1, 2), {1, 2}])
def test_python_values_roundtrip(value):
    assert roundtrip(value) == value


def test_non_finite_floats_roundtrip():
    out = roundtrip([float("nan"), float("inf"), -float("inf")])
    assert np.isnan(out[0]) and out[1] == float("inf") and out[2] == -float("inf")


@pytest.mark.parametrize("arr", [np.arange(6).reshape(2, 3), np.linspace(0, 1, 5, dtype=np.float32),
                                 np.array([True, False]), np.array(["a", "bc"]),
                                 np.array(["2020-01-01T00:00"], dtype="datetime64[ns]")])
def test_numpy_arrays_roundtrip_with_dtype_and_shape(arr):
    out = roundtrip(arr)
    assert out.shape == arr.shape
    assert (out == arr).all()
    if arr.dtype.kind != "U":
        assert out.dtype == arr.dtype


def test_numpy_scalars_become_python_numbers():
    assert roundtrip(np.float64(1.5)) == 1.5 and isinstance(roundtrip(np.int64(3)), int)


def test_pandas_objects_roundtrip():
    idx = pd.date_range("2021-01-01", periods=4, freq="15min", name="timestamp")
    frame = pd.DataFrame({"turbidity": [1.0, np.nan, 3.0, 4.0], "level": [10, 11, 12, 13]}, index=idx)
    pd.testing.assert_frame_equal(roundtrip(frame), frame, check_freq=False)
    series = pd.Series([1.5, 2.5], index=["a", "b"], name="ssc")
    pd.testing.assert_series_equal(roundtrip(series), series)


@pytest.mark.parametrize("value", [lambda x: x, object(), np.array([object()], dtype=object)])
def test_functions_and_objects_are_refused(value):
    with pytest.raises(UnsupportedValue):
        encode(value)


def test_encode_names_marks_missing_and_unsupported():
    class Model:
        def predict(self, x):
            return x

    decoded = decode_names(json.loads(json.dumps(encode_names({"a": 1, "m": Model()}, ["a", "m", "z"]))))
    assert decoded["a"] == 1
    assert isinstance(decoded["m"], Unavailable) and decoded["m"].reason == "unsupported"
    assert isinstance(decoded["z"], Unavailable) and "not defined" in decoded["z"].message()


def test_decoder_never_builds_object_arrays_from_raw_bytes():
    forged = {"__plain__": "ndarray", "dtype": "|O", "shape": [1], "data": "AAAAAAAAAAA="}
    with pytest.raises(ValueError):
        decode(forged)


# ---------------------------------------------------------------- faithful pandas, binary frames, bounds

import datetime as dt
import socket
import threading

from edsgrade.grading.sandbox import protocol
from edsgrade.grading.sandbox.plaindata import Limits, MalformedValue, bind_frames, portable


def wire_roundtrip(value):
    """Through a real socket pair, as a capture reply: arrays as .npy attachments."""
    arrays = []
    tree = encode(value, arrays=arrays)
    a, b = socket.socketpair()
    try:
        sender = threading.Thread(target=protocol.send, args=(a, {"value": tree}, arrays))
        sender.start()
        message, frames = protocol.receive_message(b, protocol.Bounds(), timeout=10)
        sender.join()
    finally:
        a.close()
        b.close()
    return decode(bind_frames(message["value"], frames))


def both_roundtrips(value):
    """The wire form and the stored (JSON, base64) form, which must agree."""
    return wire_roundtrip(value), roundtrip(value), decode(json.loads(json.dumps(portable(
        bind_frames(*_encoded_with_frames(value))))))


def _encoded_with_frames(value):
    arrays = []
    return encode(value, arrays=arrays), arrays


_idx = pd.date_range("2021-03-27", periods=6, freq="6h", tz="Europe/Paris", name="time")
FRAMES = {
    "categorical": pd.DataFrame({"rock": pd.Categorical(["basalt", "tuff", None, "basalt"],
                                                        categories=["tuff", "basalt", "ash"], ordered=True)}),
    "nullable": pd.DataFrame({"n": pd.array([1, None, 3, 4], dtype="Int64"),
                              "u": pd.array([1, 2, None, 4], dtype="UInt8"),
                              "f": pd.array([1.5, None, np.nan, 2.0], dtype="Float64"),
                              "b": pd.array([True, None, False, True], dtype="boolean")}),
    "strings": pd.DataFrame({"s": pd.array(["a", None, "é", ""], dtype="string"),
                             "str": pd.Series(["x", "y", None, "z"]),
                             "obj": pd.Series(["x", 1, None, np.nan], dtype=object)}),
    "tz": pd.DataFrame({"t": _idx, "v": np.arange(6.0)}, index=_idx),
    "fixed-offset": pd.DataFrame({"t": pd.date_range("2020-01-01", periods=3, freq="D",
                                                     tz=dt.timezone(dt.timedelta(hours=-3)))}),
    "naive-units": pd.DataFrame({"s": np.array(["2020-01-01T00:00:01"] * 2, dtype="datetime64[s]"),
                                 "td": pd.to_timedelta([1, 2], unit="h"), "nat": pd.to_datetime(["2020", None])}),
    "multiindex": pd.DataFrame(np.arange(12.0).reshape(4, 3),
                               index=pd.MultiIndex.from_product([["a", "b"], [1, 2]], names=["site", "rep"]),
                               columns=pd.MultiIndex.from_tuples([("x", "m"), ("x", "s"), ("y", "m")],
                                                                 names=["var", "stat"])),
    "named-range": pd.DataFrame({"a": [1, 2, 3]}, index=pd.RangeIndex(10, 16, 2, name="k")),
    "duplicate-columns": pd.DataFrame([[1, 2.5], [3, 4.5]], columns=["a", "a"], index=["r", "r"]),
    "periods": pd.DataFrame({"p": pd.period_range("2020-01", periods=3, freq="M")},
                            index=pd.period_range("2020Q1", periods=3, freq="Q")),
    "intervals": pd.DataFrame({"i": pd.interval_range(0, 3, closed="left")}, index=pd.interval_range(0.0, 1.5, 3)),
    "categorical-index": pd.DataFrame({"v": [1, 2]}, index=pd.CategoricalIndex(["u", "v"], name="c")),
    "empty": pd.DataFrame(index=pd.Index([1, 2], name="e")),
    "no-rows": pd.DataFrame({"a": pd.Series([], dtype="float32"), "b": pd.Series([], dtype="Int64")}),
    "fortran": pd.DataFrame(np.asfortranarray(np.arange(20.0).reshape(5, 4)), columns=list("abcd")),
    "int-columns": pd.DataFrame({0: [1.0], 1.5: ["a"], ("t", 1): [True]}),
}


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_data_frames_arrive_as_they_are(name):
    frame = FRAMES[name]
    for out in both_roundtrips(frame):
        pd.testing.assert_frame_equal(out, frame, check_exact=True)
        pd.testing.assert_index_equal(out.columns, frame.columns, exact=True)
        pd.testing.assert_index_equal(out.index, frame.index, exact=True)


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_series_arrive_as_they_are(name):
    frame = FRAMES[name]
    for i in range(frame.shape[1]):
        series = frame.iloc[:, i].rename(("s", i))
        for out in both_roundtrips(series):
            pd.testing.assert_series_equal(out, series, check_exact=True)


@pytest.mark.parametrize("index", [
    pd.date_range("2021-01-01", periods=4, freq="15min", name="timestamp"),
    pd.date_range("2021-01-01", periods=4, freq="D", tz="UTC"), pd.timedelta_range(0, periods=3, freq="h"),
    pd.Index([3, 1, 2], dtype="int32", name="i"), pd.Index(["a", None], dtype="string"),
    pd.Index([1, None], dtype="Int64"), pd.RangeIndex(5), pd.MultiIndex.from_arrays([[1, 2], ["a", "b"]]),
    pd.Index([dt.date(2020, 1, 1), "x", None], dtype=object, name=("tuple", "name")),
])
def test_indexes_arrive_as_they_are(index):
    for out in both_roundtrips(index):
        pd.testing.assert_index_equal(out, index, exact=True)
        assert getattr(out, "freq", None) == getattr(index, "freq", None)


@pytest.mark.parametrize("value", [
    pd.NA, pd.NaT, pd.Timestamp("2020-01-01 12:00", tz="America/Santiago"), pd.Timestamp("1999-12-31 23:59:59.5"),
    pd.Timedelta("1 days 02:00:00"), pd.Period("2020-03", freq="M"), pd.Interval(0.5, 1.5, closed="both"),
    dt.datetime(2020, 5, 1, 3, 4, 5, 6), dt.datetime(2020, 5, 1, tzinfo=dt.timezone.utc), dt.date(2020, 2, 29),
    dt.timedelta(days=-1, seconds=5), 1 + 2j, b"\x00\xffbytes", frozenset({1, 2}), (1, (2, [3])),
    {("a", 1): [1.5, None]}, np.array(["a", "bc"]), np.array([b"x", b"yz"]),
    np.array([1 + 1j, 2], dtype=np.complex64), np.array([[1, 2], [3, 4]], dtype=">i4"),
    np.array("2020-01-01", dtype="datetime64[D]"), np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    np.arange(12.0).reshape(3, 4)[:, ::2], np.zeros((0, 3)), np.array([None, "a", 1.5], dtype=object),
    pd.Categorical(["a", "b", "a"]), pd.array([1, None], dtype="Int16"),
])
def test_scalars_arrays_and_python_values_arrive_as_they_are(value):
    for out in both_roundtrips(value):
        if isinstance(value, np.ndarray):
            assert out.dtype == value.dtype and out.shape == value.shape
            assert [repr(x) for x in out.ravel().tolist()] == [repr(x) for x in value.ravel().tolist()]
        elif isinstance(value, pd.api.extensions.ExtensionArray):
            pd.testing.assert_extension_array_equal(out, value)
        else:
            assert type(out) is type(value) and (out is value or out == value)
            if isinstance(value, (pd.Timestamp, dt.datetime)):
                assert str(out.tzinfo) == str(value.tzinfo)


@pytest.mark.parametrize("value, hint", [
    (pd.Series([1, 0, 0], dtype="Sparse[int]"), "sparse.to_dense"),
    (np.zeros(2, dtype=[("a", "i4"), ("b", "f8")]), "not supported"),
])
def test_values_without_a_plain_form_are_refused_with_how_to_convert(value, hint):
    with pytest.raises(UnsupportedValue, match=hint):
        encode(value)
    out = decode_names(encode_names({"v": value}, ["v"]))["v"]
    assert isinstance(out, Unavailable) and hint in out.message()


def test_large_values_are_not_sent_and_say_their_size():
    limits = Limits(value_bytes=1 << 20, reply_bytes=3 << 20, reply_items=10_000)
    arrays = []
    namespace = {"big": np.zeros(1 << 16), "X": np.zeros(3 << 17), "ok": np.arange(10), "many": {
        str(i): i for i in range(20_000)}, "after": [1, 2]}
    encoded = encode_names(namespace, list(namespace), arrays=arrays, limits=limits)
    values = decode_names({k: bind_frames(v, arrays) for k, v in encoded.items()})
    assert isinstance(values["big"], np.ndarray) and values["big"].shape == (1 << 16,)
    assert values["X"].reason == "too-large"
    assert values["X"].message() == "`X` is 3 MB, over the grader's limit of 1 MB for one value: it was not judged"
    assert values["many"].reason == "too-large" and "items" in values["many"].message()
    assert values["ok"].tolist() == list(range(10)) and values["after"] == [1, 2]
    assert len(arrays) == 2  # the refused values left no attachment behind


@pytest.mark.parametrize("forged", [
    {"__plain__": "ndarray", "frame": 0}, {"__plain__": "ndarray", "frame": "0"},
    {"__plain__": "framed", "value": {"__plain__": "ndarray", "frame": 0}, "frames": [[1, 2]]},
    {"__plain__": "dataframe", "columns": {"__plain__": "rangeindex", "start": 0, "stop": 2, "step": 1, "name": None},
     "index": {"__plain__": "rangeindex", "start": 0, "stop": 3, "step": 1, "name": None}, "data": []},
    {"__plain__": "masked", "dtype": "Int64", "data": [1], "mask": [0]},
    {"__plain__": "array", "values": {"__plain__": "masked", "dtype": "category", "data": 1, "mask": 1}},
    {"__plain__": "string", "storage": "python", "na": "NA", "items": [1]},
    {"__plain__": "index", "name": None, "values": {"__plain__": "nope"}}, {"__plain__": "dict", "items": [1]},
])
def test_forged_trees_are_malformed_values(forged):
    with pytest.raises(MalformedValue):
        decode(json.loads(json.dumps(forged)))
