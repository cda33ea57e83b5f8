"""TensorFlow Lite for Microcontrollers (PyPI ``tflite-micro``) int8 CONV_2D, DEPTHWISE_CONV_2D and
FULLY_CONNECTED, per tensor and per channel, against the requantization policies.

The x86-64 wheel runs TFLM's reference kernels built without TFLITE_SINGLE_ROUNDING (see
``_tflm.py``): gemmlowp double rounding, i.e. ``tflite-reference``. ``cmsis-nn`` (CMSIS-NN
``arm_nn_requantize``, default build, i.e. without CMSIS_NN_USE_SINGLE_ROUNDING) is the same
function on every input either can see: its only differences from gemmlowp (no saturation of
INT32_MIN * INT32_MIN, a wrapping high word) are unreachable with QuantizeMultiplier's multipliers
in [2^30, 2^31). CMSIS-NN's default build is written to be bit-exact with TFLM's reference
kernels, and this is the runtime it is checked against; its ARM kernels themselves do not run on
x86. ``tflite-single-rounding`` is *not* what this wheel does: the planted ties separate it.

Unlike LiteRT's reference FULLY_CONNECTED (float path, ``litert-fc-reference``), TFLM's
FULLY_CONNECTED uses the integer multiplier per tensor as well as per channel.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tflite_micro")
pytest.importorskip("ai_edge_litert")  # _tflite_models builds the flatbuffers with its schema

from _acc import conv2d_acc, matmul_acc  # noqa: E402
from _tflite_models import conv2d, depthwise, fully_connected  # noqa: E402
from _tflm import run  # noqa: E402
from _ties import RANDOM_SCALES, TIE_SCALES, Tally, count_ties  # noqa: E402

from qsim.numerics import POLICIES, get_policy  # noqa: E402
from qsim.numerics.multipliers import float64_multiplier  # noqa: E402

OPS = ["conv", "conv_per_tensor", "depthwise", "depthwise_per_tensor", "fc", "fc_per_tensor"]
MATCHED = ["tflite-reference", "cmsis-nn"]  # bit-exact with TFLM's reference kernels (measured)
Z_IN, Z_OUT = -3, 5


def _case(op, scales, rng):
    """Returns (model, input, int64 accumulator with channels on axis 1, output -> same layout, s_w)."""
    s_in, s_w0, s_out = scales
    per_tensor = op.endswith("_per_tensor")
    kind = op.removesuffix("_per_tensor")
    c_out = 8 if kind == "fc" else 6
    s_w = np.float32(s_w0) if per_tensor else \
        (np.float32(s_w0) * 2.0 ** -rng.integers(0, 3, c_out)).astype(np.float32)
    b = rng.integers(-60, 61, c_out).astype(np.int32)
    if kind == "fc":
        x = rng.integers(-12, 13, (32, 16)).astype(np.int8)
        w = rng.integers(-6, 7, (c_out, 16)).astype(np.int8)
        return (fully_connected(x.shape, w, b, s_in, Z_IN, s_w, s_out, Z_OUT), x,
                matmul_acc(x, w.T, Z_IN, 0, b), (lambda y: y), s_w)
    x = rng.integers(-10, 11, (1, 8, 8, 4 if kind == "conv" else c_out)).astype(np.int8)
    xt = x.transpose(0, 3, 1, 2)
    if kind == "conv":
        w = rng.integers(-5, 6, (c_out, 3, 3, 4)).astype(np.int8)
        model = conv2d(x.shape, w, b, s_in, Z_IN, s_w, s_out, Z_OUT)
        acc = conv2d_acc(xt, w.transpose(0, 3, 1, 2), Z_IN, 0, b, pad=1)
    else:
        w = rng.integers(-5, 6, (1, 3, 3, c_out)).astype(np.int8)
        model = depthwise(x.shape, w, b, s_in, Z_IN, s_w, s_out, Z_OUT)
        acc = conv2d_acc(xt, w.transpose(3, 0, 1, 2), Z_IN, 0, b, pad=1, groups=c_out)
    return model, x, acc, (lambda y: y.transpose(0, 3, 1, 2)), s_w


def _cases(op):
    """(TFLM output, accumulator, scales, s_w) for every scale triple, planted ties first."""
    rng = np.random.default_rng(20)
    out = []
    for scales in TIE_SCALES + RANDOM_SCALES:
        model, x, acc, layout, s_w = _case(op, scales, rng)
        y = layout(run(model, [x])).astype(np.int64)
        assert y.shape == acc.shape
        out.append((y, acc, scales, s_w))
    return out


def _mismatches(policy, cases, impl="numpy"):
    bad = 0
    for y, acc, (s_in, _, s_out), s_w in cases:
        ours = get_policy(policy).requantize(acc, s_in, s_w, s_out, Z_OUT, -128, 127, axis=1, impl=impl)
        bad += int(np.sum(ours != y))
    return bad


@pytest.mark.parametrize("policy", MATCHED)
@pytest.mark.parametrize("op", OPS)
def test_tflm_matches_policy(op, policy):
    cases = _cases(op)
    n = ties = decisive = 0
    bad = _mismatches(policy, cases, "numpy") + _mismatches(policy, cases, "numba")
    for y, acc, (s_in, _, s_out), s_w in cases:
        others = [POLICIES[p].requantize(acc, s_in, s_w, s_out, Z_OUT, -128, 127, axis=1)
                  for p in POLICIES if p not in MATCHED + ["fbgemm"]]
        decisive += int(np.sum(np.any([o != y for o in others], axis=0)))
        m = float64_multiplier(s_in, s_w, s_out).reshape((1, -1) + (1,) * (acc.ndim - 2))
        ties += count_ties(acc, np.broadcast_to(m, acc.shape), (y > -128) & (y < 127))
        n += y.size
    Tally.add(f"{policy} (TFLM {op}, reference kernels)", n, ties, bad)
    print(f"[golden]   elements where some other policy differs: {decisive}")
    assert bad == 0
    assert ties > 0 and decisive > 0, "the planted data should separate this policy from the others"


@pytest.mark.parametrize("op", OPS)
def test_tflm_is_double_rounding(op):
    """The wheel is not a TFLITE_SINGLE_ROUNDING build, nor NEON-style (ties up twice), and its
    FULLY_CONNECTED is not LiteRT's float-scale reference path: each of those policies misses."""
    cases = _cases(op)
    for policy in ("tflite-single-rounding", "tflite-optimized", "litert-fc-reference"):
        bad = _mismatches(policy, cases)
        print(f"[golden] {policy} vs TFLM {op}: {bad} mismatches (expected > 0)")
        assert bad > 0, f"{policy} should differ from TFLM's double rounding on planted ties"
