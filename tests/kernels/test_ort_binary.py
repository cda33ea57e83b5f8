"""onnxruntime's QLinearAdd / QLinearMul kernels (``ort_binary_jit``) equal the numpy spec
(``int_elementwise.ort_add`` / ``ort_mul``) byte for byte: planted rounding ties (scales of 1/2 and
1/4: half the sums land on .5), a ratio so large that |t| passes 2^31 (cvtps2dq's INT32_MIN,
clamped to the low bound), fused-ReLU bounds, and sizes that leave a short last block."""
from __future__ import annotations

import numpy as np
import pytest

from qsim.kernels import ort_binary_jit
from qsim.sim.int_elementwise import ort_add, ort_add_params, ort_mul, ort_mul_ratio

CASES = [  # (sa, za, sb, zb, sc, zc)
    (0.5, 3, 0.5, 128, 1.0, 7),          # ties
    (0.25, 0, 0.75, 10, 0.5, 128),
    (0.0173, 120, 0.031, 128, 0.047, 101),
    (3e9, 0, 1.0, 0, 1e-3, 0),           # |t| >= 2^31
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype, lo, hi", [(np.uint8, 0, 255), (np.int8, -128, 127), (np.uint8, 7, 255)])
def test_ort_add_mul_equal_the_spec(case, dtype, lo, hi):
    sa, za, sb, zb, sc, zc = case
    info = np.iinfo(dtype)
    za, zb, zc = (int(np.clip(z, info.min, info.max)) for z in (za, zb, zc))
    rng = np.random.default_rng(abs(hash((case, lo))) % 2**32)
    n = 2 * ort_binary_jit.BLOCK + 1234
    a = rng.integers(info.min, info.max + 1, n).astype(dtype)
    b = rng.integers(info.min, info.max + 1, n).astype(dtype)
    f = np.float32
    out = np.empty(n, dtype)
    ra, rb, fixed = ort_add_params(f(sa), za, f(sb), zb, f(sc), zc)
    ort_binary_jit.ort_add(a, b, ra, rb, fixed, lo, hi, out)
    np.testing.assert_array_equal(out, ort_add(a, b, f(sa), za, f(sb), zb, f(sc), zc, lo, hi).astype(dtype))
    ort_binary_jit.ort_mul(a, b, za, zb, ort_mul_ratio(f(sa), f(sb), f(sc)), f(zc), lo, hi, out)
    np.testing.assert_array_equal(out, ort_mul(a, b, f(sa), za, f(sb), zb, f(sc), zc, lo, hi).astype(dtype))
    if sa == 3e9:
        assert np.all(out[(a.astype(int) != za) & (b.astype(int) != zb)] == lo)
