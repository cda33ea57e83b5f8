"""``pool.global_avg_q`` (the planned QLinearGlobalAveragePool of channels-last and channels-first
data) equals the numpy form it replaces (``plan_ops.plan_global_avgpool``) byte for byte: codes at
both ends of their type, zero points at both ends, scales that make rounding ties and that clamp."""
from __future__ import annotations

import numpy as np
import pytest

from qsim.kernels import pool

F = np.float32


def _numpy(x, zin, scale, flo, fhi, zout, dtype):
    hw = int(np.prod(x.shape[2:]))
    acc = x.sum(axis=tuple(range(2, x.ndim)), dtype=np.int64) - zin * hw
    r = np.clip((acc.astype(F) * scale).astype(F), flo, fhi)
    return (np.rint(r).astype(np.int64) + zout).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("shape", [(1, 1280, 7, 7), (3, 13, 5, 4), (2, 9, 1, 1)])
def test_global_avg_q_equals_numpy(dtype, shape):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(shape[1])
    x = rng.integers(info.min, info.max + 1, shape).astype(dtype)
    x[0, 0] = info.max
    x[-1, -1] = info.min
    hw = int(np.prod(shape[2:]))
    for zin in (info.min, info.max, 0):
        for s, zout in ((1.0 / hw, 3), (0.5 / hw, -2), (7.3 / hw, 0)):   # ties; clamped
            lo, hi = info.min, info.max
            args = (zin, F(s), F(lo - zout), F(hi - zout), zout)
            want = _numpy(x, *args, dtype)
            for last in (False, True):
                xs = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if last else x
                x3 = xs.reshape(shape[0], hw, shape[1]) if last else xs.reshape(shape[0], shape[1], hw)
                for acc in {pool.sum_type(dtype, hw), np.int32, np.int64}:  # the planner's choice, wider ones
                    got = np.empty(shape[:2], dtype)
                    pool.global_avg_q(x3, last, *args, np.empty(shape[1], acc), got)
                    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("pixels", [128, 129, 255, 256, 257, 258])
def test_narrow_sums_at_the_edge_of_their_type(dtype, pixels):
    """``sum_type`` picks 16-bit sums up to the pixel count where every code at the type's end still
    fits (uint8: 257 into uint16; int8: 256 into int16); all codes at either end give the numpy sums."""
    info = np.iinfo(dtype)
    t = pool.sum_type(dtype, pixels)
    assert np.iinfo(t).bits == (16 if pixels <= (257 if dtype == np.uint8 else 256) else 32)
    x = np.empty((2, 3, pixels, 1), dtype)
    x[0], x[1] = info.max, info.min
    x[1, 1, 0] = info.max
    args = (0, F(1.0 / pixels), F(-1e9), F(1e9), 0)
    want = _numpy(x, *args, np.int64)
    for last in (False, True):
        x3 = np.ascontiguousarray(np.moveaxis(x, 1, -1)).reshape(2, pixels, 3) if last else x.reshape(2, 3, pixels)
        got = np.empty((2, 3), np.int64)
        pool.global_avg_q(x3, last, *args, np.empty(3, t), got)
        np.testing.assert_array_equal(got, want)
