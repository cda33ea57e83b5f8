"""Elementwise int8 kernels (qsim.kernels.elementwise and its numba twin) against LiteRT's
reference, optimized and XNNPACK kernel sets: ADD, MUL, LOGISTIC, TANH, GELU, SOFTMAX."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from _tflite_models import RESOLVERS, elementwise, run  # noqa: E402
from _ties import Tally  # noqa: E402

import qsim.kernels.elementwise as ew  # noqa: E402
import qsim.kernels.elementwise_jit as ewj  # noqa: E402

# (s1, zp1, s2, zp2, s_out, zp_out): the first three plant ties (exact multipliers, sums that
# land on .5 after right shifts of 1..2), the others are arbitrary.
BINARY = [(0.25, 0, 0.25, 0, 1.0, 0), (0.5, 3, 0.25, -1, 1.0, 2), (0.5, 0, 0.5, 0, 0.375, -5),
          (0.05, 3, 0.1, -7, 0.12, 2), (0.0123, -10, 0.0071, 5, 0.02, 0), (0.031, 1, 0.017, -3, 0.045, 4)]
UNARY = [(0.05, 3), (0.1, -20), (0.0312, 0), (0.25, 0), (0.0078125, -128)]


def _binary_inputs(rng):
    """Every (x1, x2) pair once, shuffled, plus a 7-element scalar tail after the 16-vectors."""
    g1, g2 = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128))
    perm = rng.permutation(g1.size)
    x1, x2 = g1.ravel()[perm].astype(np.int8), g2.ravel()[perm].astype(np.int8)
    return np.r_[x1, x1[:7]], np.r_[x2, x2[:7]]


def _binary_expected(op, kernels):
    if op == "add":
        if kernels == "xnnpack":
            return ew.add_xnnpack, ewj.add_xnnpack, {}
        return ew.add_tflite, ewj.add_tflite, {"kernels": kernels}
    if kernels == "xnnpack":
        return ew.mul_xnnpack, ewj.mul_xnnpack, {}
    return ew.mul_tflite, ewj.mul_tflite, {}


@pytest.mark.parametrize("op", ["add", "mul"])
@pytest.mark.parametrize("kernels", list(RESOLVERS))
def test_binary(op, kernels):
    rng = np.random.default_rng(40)
    x1, x2 = _binary_inputs(rng)
    f_np, f_nb, kw = _binary_expected(op, kernels)
    n = bad = ties = 0
    for s1, z1, s2, z2, so, zo in BINARY:
        y = run(elementwise(op, [x1.shape, x2.shape], [(s1, z1), (s2, z2)], (so, zo)), [x1, x2],
                 kernels).astype(np.int64)
        for f in (f_np, f_nb):
            bad += int(np.sum(f(x1, x2, s1, z1, s2, z2, so, zo, **kw) != y))
        a, b = x1.astype(np.float64) - z1, x2.astype(np.float64) - z2
        exact = (a * s1 + b * s2) / so if op == "add" else a * b * s1 * s2 / so
        ties += int(np.sum((np.abs(exact - np.floor(exact)) == 0.5) & (y > -128) & (y < 127)))
        n += y.size
    Tally.add(f"{op} ({kernels})", n, ties, bad)
    assert bad == 0


@pytest.mark.parametrize("fn", ["sigmoid", "tanh", "gelu", "gelu_tanh"])
@pytest.mark.parametrize("kernels", list(RESOLVERS))
def test_lut_activations(fn, kernels):
    x = np.arange(-128, 128, dtype=np.int8)
    op = {"sigmoid": "logistic", "tanh": "tanh"}.get(fn, "gelu")
    out = {"logistic": (1 / 256, -128), "tanh": (1 / 128, 0), "gelu": (0.02, -100)}[op]
    table_kernels = "xnnpack" if kernels == "xnnpack" else "tflite"
    bad = 0
    for s_in, zp in UNARY:
        m = elementwise(op, [x.shape], [(s_in, zp)], out, approximate=fn == "gelu_tanh")
        y = run(m, [x], kernels).astype(np.int64)
        for f in (ew.activation_tflite, ewj.activation_tflite):  # each kernel set builds its own table
            bad += int(np.sum(f(fn, x, s_in, zp, *out, kernels=table_kernels) != y))
    Tally.add(f"{fn} LUT ({kernels})", x.size * len(UNARY), 0, bad)
    assert bad == 0


@pytest.mark.parametrize("kernels", list(RESOLVERS))
def test_softmax(kernels):
    rng = np.random.default_rng(41)
    x = rng.integers(-128, 128, (24, 10)).astype(np.int8)
    x[:4] = x[4:8] // 16  # rows of near-equal values: many equal probabilities
    bad = 0
    for s_in, zp in UNARY:
        model = elementwise("softmax", [x.shape], [(s_in, zp)], (1 / 256, -128))
        y = run(model, [x], kernels).astype(np.int64)
        for f in (ew.softmax_tflite, ewj.softmax_tflite):
            bad += int(np.sum(f(x, s_in, 1 / 256, -128) != y))
    Tally.add(f"softmax ({kernels})", x.size * len(UNARY), 0, bad)
    assert bad == 0
