"""onnxruntime's QLinearAdd / QLinearMul kernels (``ort_binary_jit``) equal the numpy spec
(``int_elementwise.ort_add`` / ``ort_mul``) byte for byte: planted rounding ties (scales of 1/2 and
1/4: half the sums land on .5), a ratio so large that |t| passes 2^31 (cvtps2dq's INT32_MIN,
clamped to the low bound), fused-ReLU bounds, zero points at both ends of the type, and sizes
below and above the parallel threshold that are not multiples of 16 or of BLOCK.
Every add runs both with and without the |t| >= 2^31 select where ``add_bounded`` allows the latter."""
from __future__ import annotations

import numba
import numpy as np
import pytest

from qsim.kernels import ort_binary_jit
from qsim.sim.int_elementwise import ort_add, ort_add_params, ort_mul, ort_mul_ratio

CASES = [  # (sa, za, sb, zb, sc, zc)
    (0.5, 3, 0.5, 128, 1.0, 7),          # ties
    (0.25, 0, 0.75, 10, 0.5, 128),
    (0.0173, 120, 0.031, 128, 0.047, 101),
    (0.0123, -300, 0.0071, 300, 0.02, -300),  # zero points clipped to both ends of the type
    (3e9, 0, 1.0, 0, 1e-3, 0),           # |t| >= 2^31
]
_B, _P = ort_binary_jit.BLOCK, ort_binary_jit.PARALLEL_MIN
SIZES = [1, 15, 1000, _B + 3, _P - 1, _P, 2 * _P + 1234, 200_704 + 17]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype, lo, hi", [(np.uint8, 0, 255), (np.int8, -128, 127), (np.uint8, 7, 255)])
def test_ort_add_mul_equal_the_spec(case, dtype, lo, hi):
    sa, za, sb, zb, sc, zc = case
    info = np.iinfo(dtype)
    za, zb, zc = (int(np.clip(z, info.min, info.max)) for z in (za, zb, zc))
    rng = np.random.default_rng(abs(hash((case, lo))) % 2**32)
    f = np.float32
    ra, rb, fixed = ort_add_params(f(sa), za, f(sb), zb, f(sc), zc)
    bounded = ort_binary_jit.add_bounded(ra, rb, fixed, dtype)
    assert bounded == (sa != 3e9)
    for n in SIZES:
        a = rng.integers(info.min, info.max + 1, n).astype(dtype)
        b = rng.integers(info.min, info.max + 1, n).astype(dtype)
        a[-2:], b[-2:] = info.min, info.max  # the last element: the tail after the vector loop
        a[0], b[0] = info.max, info.min
        out = np.empty(n, dtype)
        want = ort_add(a, b, f(sa), za, f(sb), zb, f(sc), zc, lo, hi).astype(dtype)
        for use in {False, bounded}:
            out[:] = 0
            ort_binary_jit.ort_add(a, b, ra, rb, fixed, lo, hi, use, out)
            np.testing.assert_array_equal(out, want)
        ort_binary_jit.ort_mul(a, b, za, zb, ort_mul_ratio(f(sa), f(sb), f(sc)), f(zc), lo, hi, out)
        np.testing.assert_array_equal(out, ort_mul(a, b, f(sa), za, f(sb), zb, f(sc), zc, lo, hi).astype(dtype))
        if sa == 3e9:
            assert np.all(out[(a.astype(int) != za) & (b.astype(int) != zb)] == lo)


def test_every_code_pair_and_thread_count():
    """All 65,536 uint8 (a, b) pairs (ties planted by scales of 1/2), on one and two threads."""
    a, b = (v.reshape(-1).astype(np.uint8) for v in np.meshgrid(np.arange(256), np.arange(256)))
    a, b = np.concatenate([a, a[:1001]]), np.concatenate([b, b[:1001]])  # past PARALLEL_MIN, odd
    f = np.float32
    want = ort_add(a, b, f(0.5), 3, f(0.5), 128, f(1.0), 7, 0, 255).astype(np.uint8)
    ra, rb, fixed = ort_add_params(f(0.5), 3, f(0.5), 128, f(1.0), 7)
    saved = numba.get_num_threads()
    try:
        for threads in {1, min(2, numba.config.NUMBA_NUM_THREADS)}:
            numba.set_num_threads(threads)
            out = np.empty_like(a)
            ort_binary_jit.ort_add(a, b, ra, rb, fixed, 0, 255, True, out)
            np.testing.assert_array_equal(out, want)
    finally:
        numba.set_num_threads(saved)
