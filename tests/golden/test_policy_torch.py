"""PyTorch quantized Linear / Conv2d / depthwise Conv2d with the fbgemm and qnnpack engines against
the "fbgemm" and "qnnpack" policies, with planted ties (uint8 activations, int8 weights)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _acc import conv2d_acc, matmul_acc  # noqa: E402
from _ties import RANDOM_SCALES, TIE_SCALES, Tally, count_ties  # noqa: E402

from qsim.numerics import get_policy  # noqa: E402
from qsim.numerics.multipliers import float32_multiplier  # noqa: E402

ZX, ZY = 128, 131


def _qx(x, s, z):
    return torch._make_per_tensor_quantized_tensor(torch.from_numpy(x.astype(np.uint8)), float(s), z)


def _qw(w, sw):
    t = torch.from_numpy(w.astype(np.int8))
    if np.ndim(sw) == 0:
        return torch._make_per_tensor_quantized_tensor(t, float(sw), 0)
    return torch._make_per_channel_quantized_tensor(
        t, torch.from_numpy(np.asarray(sw, np.float64)), torch.zeros(len(sw), dtype=torch.int64), 0)


def _run(engine, op, scales, rng):
    """Returns (output, accumulator without bias, float bias, integer bias, s_w)."""
    s_in, s_w0, s_out = scales
    c = {"linear": 8, "linear_per_tensor": 8, "linear_per_tensor_12": 12}.get(op, 6)
    s_w = np.float32(s_w0) if op.startswith("linear_per_tensor") else \
        (np.float32(s_w0) * 2.0 ** -rng.integers(0, 3, c)).astype(np.float32)
    bq = rng.integers(-60, 61, c)
    step = np.float32(s_in) * np.broadcast_to(s_w, (c,))
    bias = (bq * step).astype(np.float32)  # exact multiples of s_in * s_w: an integer bias
    quarters = np.zeros(c, np.int64)
    if engine == "fbgemm":
        # fbgemm adds the float bias itself (bias / act_times_w_scale in fp32): make it fractional,
        # in exact quarters of a step for the tie scales (so ties survive), random otherwise
        if scales in TIE_SCALES:
            quarters = rng.integers(0, 4, c)
            bias = ((bq + quarters / 4) * step).astype(np.float32)
        else:
            bias = (bias + rng.standard_normal(c) * step).astype(np.float32)
    if op.startswith("linear"):
        x = rng.integers(-12, 13, (32, 16)) + ZX
        w = rng.integers(-6, 7, (c, 16))
        m = torch.ao.nn.quantized.Linear(16, c)
        acc = matmul_acc(x, w.T, ZX, 0)
    else:
        groups = 1 if op == "conv" else c
        x = rng.integers(-10, 11, (1, 6, 8, 8)) + ZX
        w = rng.integers(-5, 6, (c, 6 // groups, 3, 3))
        m = torch.ao.nn.quantized.Conv2d(6, c, 3, padding=1, groups=groups)
        acc = conv2d_acc(x, w, ZX, 0, None, pad=1, groups=groups)
    m.set_weight_bias(_qw(w, s_w), torch.from_numpy(bias))
    m.scale, m.zero_point = float(s_out), ZY
    y = m(_qx(x, s_in, ZX)).int_repr().numpy().astype(np.int64)
    view = (1, -1) + (1,) * (acc.ndim - 2)
    return y, acc, bias, bq.reshape(view), quarters.reshape(view), s_w


@pytest.mark.parametrize("engine", ["fbgemm", "qnnpack"])
@pytest.mark.parametrize("op", ["linear", "linear_per_tensor", "linear_per_tensor_12", "conv", "depthwise"])
def test_torch_engine_matches_policy(engine, op):
    if engine not in torch.backends.quantized.supported_engines:
        pytest.skip(f"torch built without {engine}")
    torch.backends.quantized.engine = engine
    torch.set_num_threads(1)
    rng = np.random.default_rng(30)
    n = ties = bad = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # quantized tensor creation is deprecated
        for scales in TIE_SCALES + RANDOM_SCALES:
            y, acc, bias, bq, quarters, s_w = _run(engine, op, scales, rng)
            s_in, _, s_out = scales
            for impl in ("numpy", "numba"):
                if engine == "fbgemm":
                    ours = get_policy("fbgemm").requantize(acc, s_in, s_w, s_out, ZY, 0, 255, axis=1,
                                                           bias=bias, impl=impl)
                else:
                    ours = get_policy("qnnpack").requantize(acc + bq, s_in, s_w, s_out, ZY, 0, 255,
                                                            axis=1, impl=impl)
                bad += int(np.sum(ours != y))
            if scales in TIE_SCALES:  # exact value in quarter steps: 4 * (acc + bias/step) * M / 4
                m = float32_multiplier(s_in, s_w, s_out).reshape((1, -1) + (1,) * (acc.ndim - 2)) / 4
                ties += count_ties(4 * (acc + bq) + quarters, np.broadcast_to(m, acc.shape),
                                   (y > 0) & (y < 255))
            n += y.size
    Tally.add(f"{engine} (torch {op})", n, ties, bad)
    assert bad == 0
