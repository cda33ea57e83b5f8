"""Elementwise kernels: numpy reference == numba twin (Hypothesis, derandomized), and hand cases."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import qsim.kernels.elementwise as ew
import qsim.kernels.elementwise_jit as ewj

scale = st.one_of(st.sampled_from([0.25, 0.5, 0.125, 1.0, 0.375]),
                  st.floats(2.0 ** -10, 2.0, width=32))
zp = st.integers(-30, 30)
codes = st.lists(st.integers(-128, 127), min_size=1, max_size=70)


@settings(derandomize=True, max_examples=150, deadline=None, database=None)
@given(codes, codes, scale, zp, scale, zp, scale, zp, st.sampled_from(["reference", "optimized"]))
def test_binary_numpy_equals_numba(a, b, s1, z1, s2, z2, so, zo, kernels):
    n = min(len(a), len(b))
    x1, x2 = np.array(a[:n], np.int8), np.array(b[:n], np.int8)
    args = (x1, x2, s1, z1, s2, z2, so, zo)
    assert np.array_equal(ew.add_tflite(*args, kernels=kernels), ewj.add_tflite(*args, kernels=kernels))
    assert np.array_equal(ew.mul_tflite(*args), ewj.mul_tflite(*args))
    assert np.array_equal(ew.add_xnnpack(*args), ewj.add_xnnpack(*args))
    assert np.array_equal(ew.mul_xnnpack(*args), ewj.mul_xnnpack(*args))


@settings(derandomize=True, max_examples=40, deadline=None, database=None)
@given(st.lists(st.integers(-128, 127), min_size=3, max_size=40), scale, zp,
       st.sampled_from(["sigmoid", "tanh", "gelu", "gelu_tanh"]))
def test_table_kernels_numpy_equals_numba(a, s_in, z, fn):
    x = np.array(a, np.int8)
    assert np.array_equal(ew.activation_tflite(fn, x, s_in, z, 1 / 256, -128),
                          ewj.activation_tflite(fn, x, s_in, z, 1 / 256, -128))
    xs = x[: len(x) // 3 * 3].reshape(3, -1)
    assert np.array_equal(ew.softmax_tflite(xs, s_in, 1 / 256, -128),
                          ewj.softmax_tflite(xs, s_in, 1 / 256, -128))


def test_add_hand_computed_tie():
    # s1 = s2 = 0.25, s_out = 1: the output is (a + b) / 4 after two Q31 steps; (1 + 1) / 4 = 0.5
    # and (-1 - 1) / 4 = -0.5 are ties: RoundingDivideByPOT rounds them away from zero.
    out = ew.add_tflite(np.int8([1, -1, 2]), np.int8([1, -1, 0]), 0.25, 0, 0.25, 0, 1.0, 0)
    assert out.tolist() == [1, -1, 1]
    # XNNPACK folds 2^(shift-1) into its bias: ties go up
    assert ew.add_xnnpack(np.int8([1, -1]), np.int8([1, -1]), 0.25, 0, 0.25, 0, 1.0, 0).tolist() == [1, 0]


def test_logistic_table_endpoints():
    t = ew.tflite_lut("sigmoid", 0.1, 0, 1 / 256, -128)
    assert t[0] == -128 + 0 and t[128] == 0 and t[255] == 127  # sigmoid(0) = 0.5 -> 128 - 128
    sm = ew.softmax_tflite(np.int8([[5, 5, 5, 5]]), 0.1, 1 / 256, -128)
    assert sm.tolist() == [[-64, -64, -64, -64]]  # 0.25 * 256 = 64


def test_tflite_mul_multiplier_is_float_arithmetic():
    """LiteRT's mul.cc computes s1 * s2 / s_out in float (long-run seed 901511): the multiplier is
    1983674624, not the double quotient's 1983674598, so 24 * 127 = 3048 rounds 2815.50002 -> 2816
    in the high multiply and 2816 / 2^9 = 5.5 -> 6 (LiteRT's answer: 26 with zero point 20)."""
    s1, s2, so = np.float32(2.040513515472412), np.float32(0.023978471755981445), np.float32(27.12004280090332)
    assert ew.tflite_mul_params(s1, s2, so).tolist() == [1983674624, -9]
    x1, x2 = np.array([38, -10], np.int8), np.array([127, 127], np.int8)
    for mod in (ew, ewj):
        assert mod.mul_tflite(x1, x2, s1, 14, s2, 0, so, 20).tolist() == [26, 14]
