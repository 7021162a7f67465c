"""Values travel from the student's process to the judge as plain data only."""
import json

import numpy as np
import pandas as pd
import pytest

from edsgrade.plaindata import Unavailable, UnsupportedValue, decode, decode_names, encode, encode_names


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
