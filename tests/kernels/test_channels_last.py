"""Channels-last data (NCHW views of NHWC memory, as the fused kernels return them) gives the bits
of the same values held NCHW: max pooling (its channels-last kernel) and the VNNI conv (which then
reads the input rows without a transpose) against the numpy reference."""
from __future__ import annotations

import numpy as np
import pytest

from qsim.kernels import jit, reference, vnni
from qsim.kernels.reference import ROUNDINGS


def _nhwc_view(x):
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def _pool_cases(rng, dtype, cases):
    """(kernel, stride, pads, x) per (kernel, stride, pads, shape) case: x random over all of dtype."""
    info = np.iinfo(dtype)
    for kernel, stride, pads, shape in cases:
        yield kernel, stride, pads, rng.integers(info.min, info.max + 1, shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_maxpool_channels_last_equals_reference(dtype, ceil_mode):
    cases = [((3, 3), (2, 2), (1, 1, 1, 1), (2, 5, 9, 8)), ((2, 3), (1, 2), (0, 2, 1, 0), (1, 3, 6, 7)),
             ((1, 1), (3, 1), (0, 0, 0, 0), (1, 17, 7, 5))]
    for kernel, stride, pads, x in _pool_cases(np.random.default_rng(3), dtype, cases):
        x[0, :, 0, 0] = np.iinfo(dtype).min  # planted extremes at an edge cell
        view = _nhwc_view(x)
        got = jit.maxpool2d(view, kernel, stride, pads, ceil_mode)
        assert got.dtype == x.dtype
        np.testing.assert_array_equal(got, reference.maxpool2d(x, kernel, stride, pads, ceil_mode))


@pytest.mark.skipif(not vnni.HAS_VNNI, reason="VNNI core only")
@pytest.mark.parametrize("xdt", [np.uint8, np.int8])
def test_conv_reads_channels_last_input(xdt):
    rng = np.random.default_rng(4)
    info = np.iinfo(xdt)
    for k, pads, c in [(1, (0, 0, 0, 0), 32), (3, (1, 1, 1, 1), 19)]:
        x = rng.integers(info.min, info.max + 1, (2, c, 7, 6)).astype(xdt)
        w = rng.integers(-128, 128, (32, c, k, k)).astype(np.int8)
        args = (5, rng.integers(-2, 3, 32), rng.integers(-999, 999, 32).astype(np.int32), (1, 1), pads, (1, 1), 1)
        got = jit.conv2d_acc(_nhwc_view(x), w, *args)
        want = reference.conv2d_acc(x, w, *args)
        np.testing.assert_array_equal(got[0], want[0])
        assert got[1] == want[1]


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16])
@pytest.mark.parametrize("include_pad", [False, True])
def test_avgpool_channels_last_equals_reference(dtype, include_pad):
    """The channels-last average pool (``pool.avgpool_nhwc``) against the spec for every rounding,
    with planted ties (a window of two cells summing to an odd number), odd channel counts,
    strides, padding, batch > 1 and a whole-image window (GlobalAveragePool)."""
    rng = np.random.default_rng(8)
    info = np.iinfo(dtype)
    cases = [((3, 3), (2, 2), (1, 1, 1, 1), (2, 19, 9, 8)), ((1, 2), (1, 2), (0, 1, 0, 0), (1, 3, 6, 7)),
             ((7, 7), (1, 1), (0, 0, 0, 0), (2, 37, 7, 7))]
    for kernel, stride, pads, x in _pool_cases(rng, dtype, cases):
        x[:, :, 0, 1] = x[:, :, 0, 0] + 1 if info.min < 0 else x[:, :, 0, 0] // 2 * 2 + 1  # odd pair sums
        xz = int(rng.integers(info.min, info.max + 1))
        for rounding in ROUNDINGS:
            got = jit.avgpool2d(_nhwc_view(x), kernel, stride, pads, include_pad, rounding, xz)
            want = reference.avgpool2d(x, kernel, stride, pads, include_pad, rounding, xz)
            assert got.dtype == x.dtype
            np.testing.assert_array_equal(got, want)
