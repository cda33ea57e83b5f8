"""The int8 LOGISTIC / TANH tables per kernel set (qsim.kernels.elementwise.LUT_TABLES), on planted
codes found by long differential runs and by searches against LiteRT (tests/golden/test_lut_xnnpack.py
checks every code of these parameter sets against the runtime itself).

TFLite's LUTPopulate rounds ``y / s_out`` half away from zero; XNNPACK adds the zero point in fp32
and rounds with nearbyintf (ties to even), and evaluates the logistic in double and tanh with glibc's
tanhf."""
import numpy as np
import pytest

import qsim.kernels.elementwise as ew
import qsim.kernels.elementwise_jit as ewj
from qsim.kernels.elementwise_libm import tanhf

LOGISTIC_OUT, TANH_OUT = (np.float32(1 / 256), -128), (np.float32(1 / 128), 0)


def _code(fn, kernels, s_in, zp_in, out, q):
    return int(ew.lut_table(fn, np.float32(s_in), zp_in, *out, kernels=kernels)[q + 128])


def test_logistic_fp32_tie_rounds_away_but_xnnpack_evaluates_in_double():
    # seed 600191: in fp32 the logistic of -0.03906768 is 0.49023438, exactly 125.5 / 256; in double
    # it is 0.49023432
    assert _code("sigmoid", "tflite", 0.000300520594464615, 31, LOGISTIC_OUT, -99) == 126 - 128
    assert _code("sigmoid", "xnnpack", 0.000300520594464615, 31, LOGISTIC_OUT, -99) == 125 - 128


def test_tanh_exact_tie_rounds_to_even_under_xnnpack():
    # seed 704271: tanhf(0.17357777 * -11) = -0.95703125 exactly, -122.5 / 128
    s_in = np.float32(0.17357777059078217)
    assert tanhf(np.float32(s_in * np.float32(-11))) == np.float32(-122.5 / 128)
    assert _code("tanh", "tflite", s_in, 6, TANH_OUT, -5) == -123
    assert _code("tanh", "xnnpack", s_in, 6, TANH_OUT, -5) == -122
    assert _code("tanh", "xnnpack", s_in, 6, TANH_OUT, 17) == 122


def test_xnnpack_tanh_is_glibc_tanhf_not_the_correctly_rounded_tanh():
    # tanh(0.47397608) * 128 = 56.5000071: correctly rounded to fp32 it stays above 56.5, glibc's
    # tanhf returns the float one ulp lower, exactly 56.5 / 128, which rounds to even
    x = np.float32(0.003434609156101942) * np.float32(117 + 21)
    assert np.float32(np.tanh(np.float64(x))) * 128 > 56.5
    assert tanhf(x) == np.float32(56.5 / 128)
    assert _code("tanh", "xnnpack", 0.003434609156101942, -21, TANH_OUT, 117) == 56


@pytest.mark.parametrize("s_in, zp_in, q, want", [(0.028597152, 44, -57, -114), (1.1698333, 97, 95, -106),
                                                  (0.066371456, 7, -11, -68)])
def test_xnnpack_adds_the_zero_point_in_fp32_before_rounding(s_in, zp_in, q, want):
    # y * 256 lies within 2^-17 of a half (13.499996, 22.500004, 59.499996): adding -128 in fp32
    # lands on the half itself, which rounds to even; the exact sum would round the other way
    assert _code("sigmoid", "xnnpack", s_in, zp_in, LOGISTIC_OUT, q) == want


@pytest.mark.parametrize("kernels", ["tflite", "xnnpack"])
@pytest.mark.parametrize("fn", ["sigmoid", "tanh", "gelu", "gelu_tanh"])
def test_numba_twin_uses_the_same_table(fn, kernels):
    x = np.arange(-128, 128).astype(np.int8)
    for s_in, zp in ((0.17357777, 6), (0.02, -128), (3.0, 127)):
        args = (fn, x, np.float32(s_in), zp, np.float32(0.0125), -3)
        assert np.array_equal(ew.activation_tflite(*args, kernels=kernels),
                              ewj.activation_tflite(*args, kernels=kernels))


def test_unknown_table_names_the_known_ones():
    with pytest.raises(ValueError, match="no 'relu' table for kernel set 'xnnpack'; known: tflite/sigmoid"):
        ew.lut_table("relu", 0.1, 0, 1 / 256, -128, kernels="xnnpack")
