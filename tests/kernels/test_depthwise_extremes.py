"""The 3x3 depthwise passes (``qsim.kernels.depthwise``: the AVX2 block of ``depthwise_simd``, the
numba loops other hosts run, the edge pixels and the rows in the padding) equal the numpy spec on
planted extremes: x at its type's ends against weights at -128 and 127 in every tap (the largest
products: 255 * -128 = -32640 must stay exact, no int16 saturation anywhere), x_zp at both ends of
its type, per-channel weight zero points, channel counts that fill no whole block of 8 or 16."""
from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from qsim.kernels import depthwise, depthwise_simd, jit, reference
from qsim.numerics.policies import PolicyName, get_policy
from qsim.numerics.requant_jit import requant_spec

GEOMETRIES = [  # (H, W, stride, pads, dilation)
    (6, 7, (1, 1), (1, 1, 1, 1), (1, 1)),
    (7, 9, (2, 2), (1, 1, 1, 1), (1, 1)),
    (8, 8, (1, 2), (0, 2, 1, 0), (2, 2)),
    (3, 3, (1, 1), (1, 1, 1, 1), (1, 1)),     # no interior pixel at all
]


def _check(x, w, xz, wz, stride, pads, dil, dtype, zp, lo, hi):
    c = w.shape[0]
    s_w = np.where(np.arange(c) % 2 == 0, 2.0 ** -9, 2.0 ** -10).astype(np.float32)  # exact: many ties
    spec = requant_spec(PolicyName.ONNXRUNTIME, np.float32(1.0), s_w, np.float32(1.0), zp, lo, hi, c)
    bias = np.arange(c, dtype=np.int32) * 37 - 500
    args = (x, w, xz, wz, bias, stride, pads, dil, c)
    got, events = jit.conv2d_requant(*args, acc_bits=32, requant=(spec, dtype))
    acc, want_events = reference.conv2d_acc(*args, acc_bits=32, overflow="wrap")
    want = get_policy(PolicyName.ONNXRUNTIME).requantize(acc, np.float32(1.0), s_w, np.float32(1.0), zp, lo, hi, 1,
                                                         None, "numpy")
    np.testing.assert_array_equal(got, want.astype(dtype))
    assert events == want_events == 0


@pytest.mark.parametrize("c", [1, 3, 8, 13, 16, 24, 37])
@pytest.mark.parametrize("geom", GEOMETRIES)
@pytest.mark.parametrize("xdt", [np.uint8, np.int8])
def test_planted_extremes(c, geom, xdt):
    h, wd, stride, pads, dil = geom
    info = np.iinfo(xdt)
    rng = np.random.default_rng(c * 7 + h)
    x = rng.choice(np.array([info.min, info.max, info.max - 1, 0], np.int64), (1, c, h, wd)).astype(xdt)
    x[:, :, 1:4, 1:4] = info.max                      # a block of the largest codes
    w = np.where(rng.random((c, 1, 3, 3)) < 0.5, -128, 127).astype(np.int8)
    w[0] = -128                                        # channel 0: -128 in every tap
    w[-1] = 127
    for xz in (info.min, info.max):
        _check(x, w, xz, 0, stride, pads, dil, np.uint8, 128, 0, 255)
        # per-channel weight zero points: weights less them span [-255, 255] (no int16 products)
        wz = np.where(np.arange(c) % 2 == 0, 127, -128)
        _check(x, w, xz, wz, stride, pads, dil, np.int8, -3, -128, 127)


@njit
def _simd(r0, r1, r2, xoff, dstep, pstep, wt, cb, bz, acc, aoff, astep, npix, plain):
    if plain:
        depthwise_simd.block3x3_mul(r0, r1, r2, xoff, dstep, pstep, wt, wt.shape[1], cb, bz, acc, aoff, astep, npix)
    else:
        depthwise_simd.block3x3(r0, r1, r2, xoff, dstep, pstep, wt, wt.shape[1], cb, bz, acc, aoff, astep, npix)


@pytest.mark.parametrize("xdt", [np.uint8, np.int8])
@pytest.mark.parametrize("sw", [1, 2])
def test_block_equals_loops(xdt, sw):
    """The explicit-IR block (vpmaddwd on AVX2, and its plain-mul form) and the numba loops of the
    hosts without it (flat at stride 1, per pixel otherwise) give the same int32 sums."""
    info = np.iinfo(xdt)
    rng = np.random.default_rng(sw)
    c, wd, dw, pl = 24, 21, 1, 1
    ow = (wd + 2 * pl - 2 * dw - 1) // sw + 1
    rows = [rng.choice(np.array([info.min, info.max], np.int64), (wd, c)).astype(xdt) for _ in range(3)]
    ws = np.where(rng.random((3, 3, c)) < 0.5, -128, 127).astype(np.int32)
    bias = rng.integers(-1000, 1000, c).astype(np.int32)
    wt, bz, _, _ = depthwise.tiles(ws, bias, 5, np.dtype(xdt), (1, np.ones(c, np.float32)))
    assert wt.dtype == np.int16
    i0, i1 = depthwise._span(wd - 2 * dw, -pl, sw, ow)
    assert i0 == 1 and i1 == ow - 1
    want = np.zeros((ow, c), np.int32)
    for ox in range(i0, i1):
        win = np.stack([r[ox * sw - pl + kx * dw] for r in rows for kx in range(3)]).astype(np.int64)
        want[ox] = bz[:c] + (win * ws.reshape(9, c)).sum(0)
    got = np.zeros_like(want)
    if sw == 1:
        depthwise._interior3x3_flat(*[r.ravel() for r in rows], wt, bz, c, dw, pl, i0, i1, got.ravel())
    else:
        depthwise._interior3x3(*rows, wt, bz, sw, dw, pl, i0, i1, got)
    np.testing.assert_array_equal(got, want)
    for plain in ([False, True] if depthwise_simd.AVX2 else [True]):
        got = np.zeros_like(want)
        for cb in range(0, c, depthwise_simd.L):
            _simd(*rows, (i0 * sw - pl) * c + cb, dw * c, sw * c, wt, cb, bz, got, i0 * c + cb, c, i1 - i0, plain)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16])
@pytest.mark.parametrize("shape", [(1, 32, 5, 7), (2, 13, 3, 4), (1, 3, 1, 9)])
def test_to_nhwc(dtype, shape):
    x = np.random.default_rng(shape[1]).integers(-100, 100, shape).astype(dtype)
    out = np.empty((shape[0], shape[2], shape[3], shape[1]), dtype)
    depthwise.to_nhwc(x, out)
    np.testing.assert_array_equal(out, x.transpose(0, 2, 3, 1))
