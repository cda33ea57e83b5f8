"""Goldens against onnxruntime: ConvInteger and MatMulInteger return the int32 accumulators, which
equal our wrap-mode acc_bits=32 results exactly; QLinearAveragePool (equal scales) and MaxPool.

onnxruntime 1.32's ConvInteger rejects per-channel weight zero points ("Non per-tensor quantization
is not supported now"), so per-channel conv is checked against the reference only
(test_jit_matches_reference); MatMulInteger takes per-column zero points and is checked here.

On an x86 CPU without VNNI onnxruntime sums a uint8 A x int8 B GEMM's products in saturating int16
pairs (``qsim.kernels.pairs16``): there the kernels' exact sums plus that deficit must equal it."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
from _kernel_onnx import conv_integer, matmul_integer, maxpool, qlinear_avgpool  # noqa: E402

from qsim.kernels import jit, pairs16  # noqa: E402
from qsim.kernels._common import conv_geometry, matmul_shapes  # noqa: E402
from qsim.numerics.rounding import wrap  # noqa: E402
from qsim.sim.int_runtime import host_ort_cpu  # noqa: E402

PAIRS16 = host_ort_cpu() == "avx2"


def _with_deficit(acc, deficit):
    return acc if deficit is None else wrap(acc + deficit.reshape(acc.shape), 32)

MIXES = [(np.uint8, np.uint8), (np.uint8, np.int8), (np.int8, np.uint8), (np.int8, np.int8)]


def _rand(rng, shape, dtype):
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max + 1, size=shape)
    a.reshape(-1)[:: 7] = info.min      # plant the extremes
    a.reshape(-1)[3:: 11] = info.max
    return a.astype(dtype)


def _zp(dtype, which):
    info = np.iinfo(dtype)
    return {"low": info.min, "high": info.max, "mid": (info.min + info.max) // 2 + 1}[which]


CONV_SHAPES = [  # (x shape, w shape, stride, pads, dilation, groups): VNNI, grouped, depthwise, 7x7/2
    ((2, 6, 9, 10), (20, 6, 3, 3), (2, 1), (1, 0, 2, 1), (1, 2), 1),
    ((1, 4, 7, 7), (6, 2, 2, 3), (1, 1), (0, 1, 1, 0), (1, 1), 2),
    ((1, 5, 8, 6), (5, 1, 3, 3), (1, 2), (1, 1, 1, 1), (1, 1), 5),
    ((1, 3, 17, 15), (64, 3, 7, 7), (2, 2), (3, 3, 3, 3), (1, 1), 1),
]


@pytest.mark.parametrize("xd,wd", MIXES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", CONV_SHAPES, ids=["vnni", "grouped", "depthwise", "stem"])
@pytest.mark.parametrize("zps", [("low", "high"), ("mid", "low")], ids=["zp-edges", "zp-mid"])
def test_conv_integer(xd, wd, shape, zps):
    xs, ws, stride, pads, dil, groups = shape
    rng = np.random.default_rng(hash((xs, ws)) % 2**32)
    x, w = _rand(rng, xs, xd), _rand(rng, ws, wd)
    xz, wz = _zp(xd, zps[0]), _zp(wd, zps[1])
    sess, feeds = conv_integer(x, w, xz, wz, stride, pads, dil, groups)
    want = sess.run(None, feeds)[0].astype(np.int64)
    got, _ = jit.conv2d_acc(x, w, xz, wz, None, stride, pads, dil, groups)
    if PAIRS16 and wd == np.uint8 and xd == np.int8:  # ConvInteger: the weights are MLAS's A
        got = _with_deficit(got, pairs16.conv_deficit(x, w, xz, conv_geometry(x, w, stride, pads, dil, groups), "chw"))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("xd,wd,c", [(np.uint8, np.uint8, 4096), (np.int8, np.int8, 8192)],
                         ids=["u8u8-vnni", "s8s8-beyond-vnni-bound"])
def test_conv_integer_wraps_like_onnxruntime(xd, wd, c):
    # c * 9 products of 255 * 255 (u8) or 255 * 128 (s8, zero point 127) exceed int32, which
    # onnxruntime wraps silently; s8 needs K > vnni.MAX_K, so it also covers the int64 fallback.
    x = np.full((1, c, 3, 3), np.iinfo(xd).max if xd == np.uint8 else -128, dtype=xd)
    w = np.full((16, c, 3, 3), np.iinfo(wd).max if wd == np.uint8 else -128, dtype=wd)
    xz = 0 if xd == np.uint8 else 127
    sess, feeds = conv_integer(x, w, xz, 0, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    want = sess.run(None, feeds)[0].astype(np.int64)
    got, n = jit.conv2d_acc(x, w, xz, 0, None, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    np.testing.assert_array_equal(got, want)
    exact = (int(x.flat[0]) - xz) * int(w.flat[0]) * c * 9
    assert exact > 2**31 and n == got.size and np.all(got == exact - 2**32)


@pytest.mark.parametrize("ad,bd", MIXES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("per_column", [False, True], ids=["per-tensor", "per-column"])
@pytest.mark.parametrize("shapes", [((5, 33), (33, 70)), ((2, 3, 17), (17, 64)), ((2, 4, 9), (2, 9, 5)),
                                    ((1, 256), (256, 130))], ids=["2d", "batched-a", "batched-both", "gemv"])
def test_matmul_integer(ad, bd, per_column, shapes):
    rng = np.random.default_rng(sum(shapes[0]) * 31 + sum(shapes[1]))
    a, b = _rand(rng, shapes[0], ad), _rand(rng, shapes[1], bd)
    n = shapes[1][-1]
    az = _zp(ad, "mid")
    bz = (rng.integers(np.iinfo(bd).min, np.iinfo(bd).max + 1, n).astype(bd) if per_column
          else np.array(_zp(bd, "high"), bd))
    # onnxruntime wants a batched b's zero points shaped like b's batch; ours apply to every batch.
    ort_bz = np.broadcast_to(bz, b.shape[:-2] + (1, n)) if per_column and b.ndim > 2 else bz
    sess, feeds = matmul_integer(a, b, az, np.ascontiguousarray(ort_bz))
    want = sess.run(None, feeds)[0].astype(np.int64)
    got, _ = jit.matmul_acc(a, b, az, bz.astype(np.int64))
    if PAIRS16 and ad == np.uint8 and bd == np.int8:
        got = _with_deficit(got, pairs16.matmul_deficit(*matmul_shapes(a, b)[:2]))
    np.testing.assert_array_equal(got, want)


def test_matmul_integer_wraps_like_onnxruntime():
    a = np.full((3, 40_000), 255, dtype=np.uint8)
    b = np.full((40_000, 20), 255, dtype=np.uint8)
    sess, feeds = matmul_integer(a, b, 0, np.array(0, np.uint8))
    want = sess.run(None, feeds)[0].astype(np.int64)
    got, n = jit.matmul_acc(a, b, 0, 0)
    np.testing.assert_array_equal(got, want)
    assert n == got.size


POOLS = [((3, 3), (2, 2), (1, 1, 1, 1)), ((2, 2), (2, 2), (0, 0, 0, 0)), ((2, 3), (1, 2), (1, 0, 0, 2))]


@pytest.mark.parametrize("dtype", [np.uint8, np.int8], ids=["u8", "s8"])
@pytest.mark.parametrize("pool", POOLS, ids=["3x3s2p1", "2x2s2", "2x3-asym"])
@pytest.mark.parametrize("include_pad", [False, True], ids=["exclude-pad", "include-pad"])
@pytest.mark.parametrize("zp_scale", [("mid", 1.0), ("low", 0.25), ("high", 1.0)])
def test_qlinear_average_pool_is_half_even(dtype, pool, include_pad, zp_scale):
    rng = np.random.default_rng(7)
    x = _rand(rng, (2, 3, 11, 10), dtype)
    zp = _zp(dtype, zp_scale[0])
    want = qlinear_avgpool(x, *pool, include_pad, zp, zp_scale[1])
    got = jit.avgpool2d(x, *pool, include_pad, "half_even", x_zp=zp)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8], ids=["u8", "s8"])
@pytest.mark.parametrize("pool", POOLS, ids=["3x3s2p1", "2x2s2", "2x3-asym"])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_max_pool(dtype, pool, ceil_mode):
    x = _rand(np.random.default_rng(3), (2, 3, 11, 10), dtype)
    np.testing.assert_array_equal(jit.maxpool2d(x, *pool, ceil_mode), maxpool(x, *pool, ceil_mode))
