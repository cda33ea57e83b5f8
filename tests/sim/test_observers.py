"""Calibration observers: hand-computed scales and zero points, granularity, the three range
methods, and agreement with onnxruntime's own ``compute_scale_zp``."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from qsim.errors import QsimError
from qsim.sim.observers import Observer, calibrate, fake_quant, scale_zero_point


def test_minmax_uint8_asymmetric_by_hand():
    q = calibrate([np.array([-1.0, 0.5, 3.0])], "uint8")
    # scale = (3 - -1) / 255; zero point = round(0 - (-1) / scale) = round(63.75) = 64
    assert q.fmt.name == "uint8" and q.axis is None and q.scale.shape == ()
    assert q.scale == np.float32(np.float32(4.0) / np.float32(255))
    assert q.zero_point == 64 and q.zero_point.dtype == np.uint8


def test_int8_symmetric_uses_minus_127_to_127():
    q = calibrate([np.array([-2.0, 1.0])], "int8", symmetric=True)
    assert q.scale == np.float32(np.float32(4.0) / np.float32(254)) and q.zero_point == 0
    assert q.zero_point.dtype == np.int8


def test_uint8_symmetric_zero_point_128():
    q = calibrate([np.array([-2.0, 1.0])], "uint8", symmetric=True)
    assert q.zero_point == 128 and q.scale == np.float32(np.float32(4.0) / np.float32(255))


def test_range_always_contains_zero_and_empty_range():
    q = calibrate([np.array([1.0, 5.0])], "uint8")
    assert q.zero_point == 0 and q.scale == np.float32(np.float32(5.0) / np.float32(255))
    q = calibrate([np.array([-4.0, -1.0])], "int8")
    assert q.zero_point == 127  # the top of the range is 0: zero point at qmax
    z = calibrate([np.zeros(7)], "int8")
    assert z.scale == 1.0 and z.zero_point == 0


def test_int4_and_int16():
    q4 = calibrate([np.array([-0.7, 0.35])], "int4", symmetric=True)
    assert q4.fmt.name == "int4" and q4.zero_point.dtype == ml_dtypes.int4
    assert q4.scale == np.float32(np.float32(1.4) / np.float32(14))  # [-7, 7]
    q16 = calibrate([np.array([-1.0, 1.0])], "int16", symmetric=True)
    assert q16.scale == np.float32(np.float32(2.0) / np.float32(65534)) and q16.zero_point.dtype == np.int16


def test_fp8_scale_maps_amax_to_format_max():
    q = calibrate([np.array([-896.0, 10.0])], "fp8_e4m3")
    assert q.fmt.element_type == "float8e4m3fn" and q.scale == 2.0 and float(q.zero_point) == 0.0
    assert q.zero_point.dtype == ml_dtypes.float8_e4m3fn
    assert calibrate([np.array([1e3])], "fp8_e5m2").scale == np.float32(1e3 / 57344)
    assert calibrate([np.array([-896.0])], "fp8_e4m3", fp8_scale="unit").scale == 1.0


def test_per_channel_any_axis():
    x = np.array([[-1.0, 2.0, 0.0], [3.0, -4.0, 0.0]])  # channels along axis 1: ranges per column
    q = calibrate([x], "int8", axis=-1, symmetric=True)
    assert q.axis == 1 and q.scale.shape == (3,)
    np.testing.assert_array_equal(q.scale, np.array([3 / 127, 4 / 127, 1.0], np.float32))
    q0 = calibrate([x], "uint8", axis=0)
    np.testing.assert_array_equal(q0.scale, np.array([3 / 255, 7 / 255], np.float32))
    np.testing.assert_array_equal(q0.zero_point, np.array([85, 146], np.uint8))  # 85 = round(1 / (3/255))


def test_minmax_accumulates_over_batches():
    obs = Observer("minmax")
    obs.update(np.array([-1.0, 1.0])).update(np.array([0.0, 3.0]))
    lo, hi = obs.value_range()
    assert lo[0] == -1.0 and hi[0] == 3.0
    with pytest.raises(QsimError, match="channels"):
        Observer("minmax", axis=0).update(np.ones((2, 3))).update(np.ones((3, 3)))


def test_percentile_ignores_outliers():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-1, 1, 20000), [1000.0]])
    lo, hi = Observer("percentile", percentile=99.9).update(x).value_range()
    assert 0.99 < hi[0] < 1.0 and -1.0 < lo[0] < -0.99
    assert Observer("minmax").update(x).value_range()[1][0] == 1000.0


def test_mse_clips_and_beats_minmax():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal(20000), [40.0]])
    mse = Observer("mse").update(x)
    lo, hi = mse.value_range("int8")
    assert hi[0] < 40.0

    def error(lo, hi):
        s, z = scale_zero_point(lo, hi, "int8", False)
        return np.mean((fake_quant(x, s, z, "int8") - x) ** 2)

    assert error(lo, hi) < error(np.array([x.min()]), np.array([x.max()]))


def test_mse_per_channel():
    rng = np.random.default_rng(3)
    x = np.stack([rng.uniform(-1, 1, 20001), np.r_[rng.standard_normal(20000), 50.0]], axis=1)
    q = Observer("mse", axis=1, max_samples=1 << 16).update(x).tensor_quant("int8", symmetric=True)
    assert q.scale.shape == (2,) and q.axis == 1
    assert q.scale[1] < 50 / 127 and q.scale[0] == pytest.approx(1 / 127, rel=0.05)


def test_errors():
    with pytest.raises(QsimError, match="unknown observer"):
        Observer("kl")
    with pytest.raises(QsimError, match="NaN"):
        Observer().update(np.array([np.nan]))
    with pytest.raises(QsimError, match="no data"):
        Observer().tensor_quant("int8")
    with pytest.raises(QsimError, match="cannot carry"):
        calibrate([np.ones(3)], "fp16")


def test_matches_onnxruntime_compute_scale_zp():
    quant_utils = pytest.importorskip("onnxruntime.quantization.quant_utils")
    rng = np.random.default_rng(2)
    for _ in range(200):
        lo, hi = np.float32(-abs(rng.standard_normal()) * 3), np.float32(abs(rng.standard_normal()) * 3)
        for fmt, qmin, qmax, sym in (("uint8", 0, 255, False), ("int8", -128, 127, False), ("int8", -127, 127, True)):
            zero, scale = quant_utils.compute_scale_zp(lo, hi, np.array(qmin), np.array(qmax), symmetric=sym)
            s, z = scale_zero_point(np.array([lo]), np.array([hi]), fmt, sym)
            assert s[0] == np.float32(scale) and z[0] == int(zero), (lo, hi, fmt, sym)
