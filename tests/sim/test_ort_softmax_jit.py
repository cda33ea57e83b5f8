"""The planned QLinearSoftmax kernel (``qsim.kernels.ort_softmax_jit``) equals the numpy reference
``int_elementwise.ort_softmax`` and onnxruntime on every element: rows of 1 to 1100 elements (both of
its branches: a row of fewer elements than table indices in use, and one of more), int8 and uint8,
output zero points at both ends of the type, output scales that saturate, and planted ties."""
from __future__ import annotations

import numpy as np
import pytest

from qsim.kernels.ort_softmax_jit import ort_softmax_rows
from qsim.sim.int_elementwise import _F32, ort_softmax, ort_softmax_table

# (s_in, s_out): 1/256 (the usual), a saturating one (floor(1/s) = 5128), odd floor(1/s) (ties at
# ys / 2), a wide input scale (most table entries vanish from the fp32 sum)
SCALES = [(0.0131, 1 / 256), (3.9e-4, 1.95e-4), (0.1, 1 / 201.5), (0.13256904, 0.2651381), (0.0067215, 0.0016804),
          (0.5, 1 / 256)]
LENGTHS = (1, 2, 3, 5, 16, 17, 255, 256, 257, 999, 1000, 1001, 1100)


def _kernel(x, s_in, s_out, zp, signed):
    d = x.shape[-1]
    out = np.empty(x.shape, np.int8 if signed else np.uint8)  # a same-typed output, as the models have
    ys = float(np.floor(_F32(1.0) / _F32(s_out)))
    ort_softmax_rows(x.reshape(-1, d), ort_softmax_table(_F32(s_in), d, signed), ys, int(zp), 127 if signed else 255,
                     out.reshape(-1, d))
    return out


def _rows(rng, dtype, d):
    """Random rows, rows of a narrow range (fewer indices than elements), and planted ties: two or
    six equal maxima over minima, a constant row."""
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max + 1, (5, d)).astype(dtype)
    x[1] = rng.integers(info.max - 3, info.max + 1, d)
    x[2] = info.min
    x[2, :min(d, 2)] = info.max
    x[3] = info.min
    x[3, rng.permutation(d)[:min(d, 6)]] = info.max
    x[4] = (info.min + info.max) // 2
    return x


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_kernel_equals_the_numpy_reference(dtype):
    rng = np.random.default_rng(21)
    info = np.iinfo(dtype)
    compared = 0
    for d in LENGTHS:
        x = _rows(rng, dtype, d)
        for s_in, s_out in SCALES:
            for zp in (info.min, 0, info.max):
                want = ort_softmax(x, _F32(s_in), _F32(s_out), zp, dtype == np.int8).astype(dtype)
                got = _kernel(x, s_in, s_out, zp, dtype == np.int8)
                assert np.array_equal(got, want), (d, s_in, s_out, zp)
                compared += x.size
    assert compared == 5 * sum(LENGTHS) * len(SCALES) * 3


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_kernel_equals_onnxruntime(dtype):
    pytest.importorskip("onnxruntime")
    from test_ort_elementwise import _softmax_model

    rng = np.random.default_rng(22)
    info = np.iinfo(dtype)
    for d in (1, 2, 17, 257, 1000, 1001):
        x = _rows(rng, dtype, d)
        for s_in, s_out in SCALES:
            for zp in (info.min, info.max):
                want = _softmax_model(x.shape, s_in, s_out, zp, dtype).run(None, {"x": x})[0]
                assert np.array_equal(_kernel(x, s_in, s_out, zp, dtype == np.int8), want), (d, s_in, s_out, zp)


def test_exact_ties_round_to_even():
    """Two equal elements: e * ys / (2 e) = ys / 2 exactly; odd ys rounds to even (as the reference's test)."""
    x = np.zeros((1, 2), np.uint8)
    for ys, code in ((5, 2), (7, 4), (201, 100), (211, 106), (253, 126), (255, 128)):
        assert int(_kernel(x, 0.1, 1 / (ys + 0.5), 0, False)[0, 0]) == code
