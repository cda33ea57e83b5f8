"""LiteRT (ai-edge-litert) int8 CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED with the reference,
optimized (builtin, no delegate) and XNNPACK kernel sets, against the policy measured for each."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from _acc import conv2d_acc, matmul_acc  # noqa: E402
from _tflite_models import conv2d, depthwise, fully_connected, run  # noqa: E402
from _ties import RANDOM_SCALES, TIE_SCALES, Tally, count_ties  # noqa: E402

from qsim.numerics import POLICIES, get_policy  # noqa: E402
from qsim.numerics.multipliers import float64_multiplier  # noqa: E402

# (op, kernel set) -> the policy that is bit-exact with it on x86-64 (measured with LiteRT 2.3).
EXPECTED = {
    ("conv", "reference"): "tflite-reference", ("conv", "optimized"): "tflite-optimized",
    ("conv", "xnnpack"): "xnnpack",
    ("depthwise", "reference"): "tflite-reference", ("depthwise", "optimized"): "tflite-reference",
    ("depthwise", "xnnpack"): "xnnpack",
    ("fc", "reference"): "litert-fc-reference", ("fc", "optimized"): "tflite-optimized",
    ("fc", "xnnpack"): "xnnpack",
    ("fc_per_tensor", "reference"): "litert-fc-reference", ("fc_per_tensor", "optimized"): "tflite-optimized",
    ("fc_per_tensor", "xnnpack"): "xnnpack",
}
Z_IN, Z_OUT = -3, 5


def _case(op, scales, rng):
    """Returns (model, input, int64 accumulator with channels on axis 1, output -> same layout, s_w)."""
    s_in, s_w0, s_out = scales
    if op in ("conv", "depthwise"):
        c_out = 6
        x = rng.integers(-10, 11, (1, 8, 8, 4 if op == "conv" else 6)).astype(np.int8)
        s_w = (np.float32(s_w0) * 2.0 ** -rng.integers(0, 3, c_out)).astype(np.float32)
        b = rng.integers(-60, 61, c_out).astype(np.int32)
        xt = x.transpose(0, 3, 1, 2)
        if op == "conv":
            w = rng.integers(-5, 6, (c_out, 3, 3, 4)).astype(np.int8)
            model = conv2d(x.shape, w, b, s_in, Z_IN, s_w, s_out, Z_OUT)
            acc = conv2d_acc(xt, w.transpose(0, 3, 1, 2), Z_IN, 0, b, pad=1)
        else:
            w = rng.integers(-5, 6, (1, 3, 3, c_out)).astype(np.int8)
            model = depthwise(x.shape, w, b, s_in, Z_IN, s_w, s_out, Z_OUT)
            acc = conv2d_acc(xt, w.transpose(3, 0, 1, 2), Z_IN, 0, b, pad=1, groups=c_out)
        return model, x, acc, (lambda y: y.transpose(0, 3, 1, 2)), s_w
    x = rng.integers(-12, 13, (32, 16)).astype(np.int8)
    w = rng.integers(-6, 7, (8, 16)).astype(np.int8)
    s_w = np.float32(s_w0) if op == "fc_per_tensor" else \
        (np.float32(s_w0) * 2.0 ** -rng.integers(0, 3, 8)).astype(np.float32)
    b = rng.integers(-60, 61, 8).astype(np.int32)
    return (fully_connected(x.shape, w, b, s_in, Z_IN, s_w, s_out, Z_OUT), x, matmul_acc(x, w.T, Z_IN, 0, b),
            (lambda y: y), s_w)


@pytest.mark.parametrize("op,kernels", list(EXPECTED))
def test_litert_matches_policy(op, kernels):
    policy = EXPECTED[(op, kernels)]
    rng = np.random.default_rng(20)
    n = ties = bad = decisive = 0
    for scales in TIE_SCALES + RANDOM_SCALES:
        model, x, acc, layout, s_w = _case(op, scales, rng)
        y = layout(run(model, [x], kernels)).astype(np.int64)
        s_in, _, s_out = scales
        for impl in ("numpy", "numba"):
            ours = get_policy(policy).requantize(acc, s_in, s_w, s_out, Z_OUT, -128, 127, axis=1, impl=impl)
            bad += int(np.sum(ours != y))
        others = [POLICIES[p].requantize(acc, s_in, s_w, s_out, Z_OUT, -128, 127, axis=1)
                  for p in POLICIES if p not in (policy, "fbgemm")]
        decisive += int(np.sum(np.any([o != y for o in others], axis=0)))
        m = float64_multiplier(s_in, s_w, s_out).reshape((1, -1) + (1,) * (acc.ndim - 2))
        ties += count_ties(acc, np.broadcast_to(m, acc.shape), (y > -128) & (y < 127))
        n += y.size
    Tally.add(f"{policy} (LiteRT {op}, {kernels})", n, ties, bad)
    print(f"[golden]   elements where some other policy differs: {decisive}")
    assert bad == 0
    assert decisive > 0, "the planted data should separate this policy from the others"
