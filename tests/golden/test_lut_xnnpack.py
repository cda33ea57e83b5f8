"""XNNPACK's int8 LOGISTIC and TANH tables against LiteRT's XNNPACK delegate, every input code.

The planted parameter sets each hold a code that a simpler model of the table gets wrong: long-run
differential seeds (600191: the logistic in fp32 ties, in double it does not; 704271: tanhf lands
exactly on -122.5 / 128, which XNNPACK rounds to even), a tanh where glibc's tanhf is one ulp below
the correctly rounded value and on a half, and logistics whose zero point, added in fp32, rounds
y * 256 onto a half. Random parameter sets (output scales and zero points other than the ones the
builtin kernels require are delegated too) cover the rest."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from _tflite_models import elementwise, run  # noqa: E402

import qsim.kernels.elementwise as ew  # noqa: E402
import qsim.kernels.elementwise_jit as ewj  # noqa: E402

TANH_OUT, LOGISTIC_OUT = (1 / 128, 0), (1 / 256, -128)
PLANTED = [("tanh", 0.17357777059078217, 6, TANH_OUT), ("tanh", 0.003434609156101942, -21, TANH_OUT),
           ("tanh", 0.021393241360783577, -125, TANH_OUT), ("tanh", 0.0007982135284692049, -28, TANH_OUT),
           ("sigmoid", 0.000300520594464615, 31, LOGISTIC_OUT), ("sigmoid", 0.0007972943130880594, -1, LOGISTIC_OUT),
           ("sigmoid", 0.028597152, 44, LOGISTIC_OUT), ("sigmoid", 1.1698333, 97, LOGISTIC_OUT),
           ("sigmoid", 0.513383150100708, 77, LOGISTIC_OUT)]


def _random_sets(n: int, seed: int = 17):
    rng = np.random.default_rng(seed)
    for i in range(n):
        fn = ("tanh", "sigmoid")[i % 2]
        out = (TANH_OUT, LOGISTIC_OUT)[i % 2] if i % 4 < 2 else (float(10 ** rng.uniform(-3, 0)), int(rng.integers(-128, 128)))
        yield fn, float(np.float32(10 ** rng.uniform(-5, 2))), int(rng.choice([-128, 127, int(rng.integers(-128, 128))])), out


def _mismatches(fn, s_in, zp, out) -> int:
    x = np.arange(-128, 128, dtype=np.int8)
    model = elementwise({"tanh": "tanh", "sigmoid": "logistic"}[fn], [x.shape], [(s_in, zp)], out)
    want = run(model, [x], "xnnpack").astype(np.int64)
    return sum(int(np.sum(f(fn, x, s_in, zp, *out, kernels="xnnpack") != want))
               for f in (ew.activation_tflite, ewj.activation_tflite))


@pytest.mark.parametrize("fn, s_in, zp, out", PLANTED)
def test_planted_every_code(fn, s_in, zp, out):
    assert _mismatches(fn, s_in, zp, out) == 0


def test_random_parameter_sets_every_code():
    assert sum(_mismatches(*p) for p in _random_sets(120)) == 0
