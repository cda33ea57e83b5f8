"""The "onnxruntime" policy against onnxruntime QLinearConv and QLinearMatMul, with planted ties."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from _acc import conv2d_acc, matmul_acc  # noqa: E402
from _onnx_models import qlinear_conv, qlinear_matmul, session  # noqa: E402
from _ties import RANDOM_SCALES, TIE_SCALES, Tally, count_ties  # noqa: E402

from qsim.numerics import get_policy  # noqa: E402
from qsim.numerics.multipliers import float32_multiplier  # noqa: E402

SCALES = TIE_SCALES + RANDOM_SCALES
ACT = {"uint8": (np.uint8, 0, 255, 131), "int8": (np.int8, -128, 127, 3)}


def _act(rng, shape, dtype, zp, spread=24):
    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    return np.clip(rng.integers(-spread, spread + 1, shape) + zp, lo, hi).astype(dtype)


@pytest.mark.parametrize("act", list(ACT))
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("scales", SCALES)
def test_qlinearconv(act, per_channel, scales):
    dtype, qmin, qmax, zy = ACT[act]
    s_in, s_w, s_out = scales
    rng = np.random.default_rng(11)
    zx = 128 if act == "uint8" else -5
    x = _act(rng, (1, 4, 9, 9), dtype, zx, spread=10)
    w = rng.integers(-5, 6, (6, 4, 3, 3)).astype(np.int8)
    # per-channel scales multiply s_w by powers of two, so M stays odd / 2^k (ties survive)
    sw = (np.float32(s_w) * 2.0 ** -rng.integers(0, 3, 6)).astype(np.float32) if per_channel \
        else np.float32(s_w)
    bias = rng.integers(-60, 61, 6).astype(np.int32)
    y = session(qlinear_conv(x, w, bias, s_in, zx, sw, np.zeros(np.shape(sw), np.int8), s_out, zy, 1)
                ).run(None, {"x": x})[0]
    acc = conv2d_acc(x, w, zx, 0, bias, pad=1)
    for impl in ("numpy", "numba"):
        ours = get_policy("onnxruntime").requantize(acc, s_in, sw, s_out, zy, qmin, qmax, axis=1, impl=impl)
        bad = int(np.sum(ours != y.astype(np.int64)))
        assert bad == 0, f"{impl}: {bad} of {y.size} differ"
    m = float32_multiplier(s_in, sw, s_out).reshape(1, -1, 1, 1)
    inside = (y > qmin) & (y < qmax)
    ties = count_ties(acc, np.broadcast_to(m, acc.shape), inside)
    Tally.add("onnxruntime (QLinearConv)", y.size, ties, bad)


@pytest.mark.parametrize("act", list(ACT))
@pytest.mark.parametrize("per_column", [False, True])
@pytest.mark.parametrize("scales", SCALES)
def test_qlinearmatmul(act, per_column, scales):
    dtype, qmin, qmax, zy = ACT[act]
    s_in, s_w, s_out = scales
    rng = np.random.default_rng(12)
    za = 128 if act == "uint8" else 7
    a = _act(rng, (64, 16), dtype, za, spread=12)
    b = rng.integers(-6, 7, (16, 8)).astype(np.int8)
    sb = (np.float32(s_w) * 2.0 ** -rng.integers(0, 3, 8)).astype(np.float32) if per_column \
        else np.float32(s_w)
    y = session(qlinear_matmul(a, b, s_in, za, sb, np.zeros(np.shape(sb), np.int8), s_out, zy)).run(
        None, {"a": a})[0]
    acc = matmul_acc(a, b, za, 0)
    for impl in ("numpy", "numba"):
        ours = get_policy("onnxruntime").requantize(acc, s_in, sb, s_out, zy, qmin, qmax, axis=1, impl=impl)
        bad = int(np.sum(ours != y.astype(np.int64)))
        assert bad == 0, f"{impl}: {bad} of {y.size} differ"
    m = np.broadcast_to(float32_multiplier(s_in, sb, s_out), acc.shape)
    Tally.add("onnxruntime (QLinearMatMul)", y.size, count_ties(acc, m, (y > qmin) & (y < qmax)), bad)
