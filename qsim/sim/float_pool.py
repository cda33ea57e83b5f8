"""Float AveragePool and ReduceMean as onnxruntime 1.32's CPU kernels sum them, bit for bit (x86-64,
measured on an AVX2 host: tests/golden/test_float_pool_order.py). A float island's pool or mean feeds
the next QuantizeLinear, so a last-bit difference from numpy's pairwise sums is a code difference where
the value sits on a .5 boundary. The kernels' orders (``global_avgpool`` is ``float_mlas``'s):

AveragePool (2-D), three kernels:
* count_include_pad with ceil_mode: onnxruntime's own loop (providers/cpu/nn/pool.cc), row-major over
  the window clipped to the input, from 0; the divisor counts the window's positions inside the
  padded extent (input + both pads), not the kernel size;
* the NCHWc pool (ORT_ENABLE_ALL, channels a multiple of the NCHWc block, ``ort_nchwc_block``; unlike
  GlobalAveragePool's, whatever op produces the input, measured behind Mul, Add, Relu, Sigmoid, Transpose;
  the transformer leaves count_include_pad + ceil_mode alone, and a pool whose channel count the
  file's shapes leave symbolic): the same row-major order from 0, divided by the window size (kh * kw)
  or the count of input pixels in the window;
* else MLAS's MlasPool (core/mlas/lib/pooling.cpp): with stride_w <= 2, kernels <= 32 and a row that
  fits its 2048-float buffer, MlasPool2DVectorKernel: each output row first sums each input column over
  the window's rows (from the first row), into a buffer with pl zeros before and zeros after; then each
  output sums kw consecutive buffer entries (from the first) and divides by kh * kw or by
  (input rows) * (input columns) of its window; otherwise MlasPool2DKernel: row-major from 0.

ReduceMean (providers/cpu/reduction/reduction_ops.{h,cc}): the input shape is merged into runs of
reduced / kept axes (size-1 axes kept), and by the pattern:
* all axes reduced, or KR (the last axes reduced: LayerNorm style, spatial means of NCHW): each row
  summed by Eigen's ``sum()`` as compiled for SSE: two 4-float accumulators from the row's first
  16-byte-aligned element, added, reduced as (l0 + l2) + (l1 + l3), then the unaligned head and the
  tail added one by one (rows start at row * n floats of an aligned buffer); 8 or fewer aligned
  floats take one accumulator; under 4, a plain chain;
* KRK with a leading size >= max(2, threads) (e.g. the channel axis at batch >= 2): a product with a
  row of ones through MLAS's M = 1 SGEMM kernel (x86_64/SgemmKernelM1Avx.S): blocks of four rows
  ((r0 + r1) + r2) + r3 added to the running sum, then a pair, then a single row;
* RKR with a middle size >= max(2, threads): 0 plus each leading slice's Eigen row sum, in order;
* everything else (RK, KRK at batch 1, other patterns): one chain from 0 over the reduced elements
  in row-major order (RK's fast path starts from the first row instead: equal but for a -0 sum);
then the sum / the count. ``threads`` is onnxruntime's default intra-op count (the physical cores):
a session with another count can move a KRK / RKR between the two orders.
"""
from __future__ import annotations

import numpy as np

from qsim.ir.ops._attrs import pads as _pads, pair, window_out
from qsim.ir.ops.extra import reduce_axes
from qsim.sim.int_runtime import ort_nchwc_block

f32 = np.float32
_MLAS_BUFFER = 2048 - 3  # MLAS_POOL_REDUCTION_BUFFER_STACK less its over-read padding


def _chain(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """fp32 sum along ``axis`` from 0, one element after another (accumulate rounds each partial sum)."""
    x = np.moveaxis(np.asarray(x, f32), axis, -1)
    if x.shape[-1] == 0:
        return np.zeros(x.shape[:-1], f32)
    return (f32(0) + np.add.accumulate(x, axis=-1, dtype=f32)[..., -1]).astype(f32)


# -- AveragePool ---------------------------------------------------------------------------------
def avgpool(x: np.ndarray, attrs) -> np.ndarray:
    (kh, kw), (sh, sw) = pair(attrs["kernel"], "kernel"), pair(attrs.get("stride", attrs["kernel"]), "stride")
    pt, pl, pb, pr = _pads(attrs.get("pad", 0))
    ceil, include = bool(attrs.get("ceil_mode", False)), bool(attrs.get("count_include_pad", False))
    n, c, h, w = x.shape
    oh, ow = window_out(h, kh, sh, pt, pb, 1, ceil), window_out(w, kw, sw, pl, pr, 1, ceil)
    hs, ws = np.arange(oh) * sh - pt, np.arange(ow) * sw - pl
    rows = np.minimum(hs + kh, h) - np.maximum(hs, 0)
    cols = np.minimum(ws + kw, w) - np.maximum(ws, 0)
    block = ort_nchwc_block()
    nchwc = bool(block) and c % block == 0 and not (include and ceil)
    if include and ceil:  # pool.cc's loop: the divisor stops at the padded extent
        div = (np.minimum(hs + kh, h + pb) - hs)[:, None] * (np.minimum(ws + kw, w + pr) - ws)[None, :]
        return (_row_major(x, kh, kw, hs, ws) / div.astype(f32)).astype(f32)
    div = np.full((oh, ow), kh * kw) if include else rows[:, None] * cols[None, :]
    if nchwc or sw > 2 or max(kh, kw) > 32 or _MLAS_BUFFER - pl - pr < w:
        return (_row_major(x, kh, kw, hs, ws) / div.astype(f32)).astype(f32)
    return (_mlas_vector(x, kh, kw, sw, pl, pr, hs, ws + pl, rows) / np.maximum(div, 1).astype(f32)).astype(f32)


def _row_major(x, kh, kw, hs, ws) -> np.ndarray:
    """Each window's input pixels summed row by row, left to right, from 0 (padding skipped)."""
    h, w = x.shape[2:]
    acc = np.zeros(x.shape[:2] + (len(hs), len(ws)), f32)
    for i in range(kh):
        hi = hs + i
        xr = x[:, :, np.clip(hi, 0, h - 1)]
        for j in range(kw):
            wj = ws + j
            inside = ((hi >= 0) & (hi < h))[:, None] & ((wj >= 0) & (wj < w))[None, :]
            acc = np.where(inside, acc + xr[:, :, :, np.clip(wj, 0, w - 1)], acc).astype(f32)
    return acc


def _mlas_vector(x, kh, kw, sw, pl, pr, hs, starts, rows) -> np.ndarray:
    """MlasPool2DVectorKernel's sums: column sums over the window's rows, then kw buffer entries."""
    h, w = x.shape[2:]
    first = np.maximum(hs, 0)
    col = x[:, :, first, :]
    for i in range(1, kh):
        col = np.where((i < rows)[:, None], col + x[:, :, np.minimum(first + i, h - 1), :], col).astype(f32)
    buf = np.zeros(x.shape[:2] + (len(hs), pl + w + pr + kw + sw), f32)
    buf[..., pl:pl + w] = col
    acc = buf[..., starts]
    for j in range(1, kw):
        acc = (acc + buf[..., starts + j]).astype(f32)
    return acc


# -- ReduceMean ----------------------------------------------------------------------------------
def reduce_mean(x: np.ndarray, attrs, threads: int) -> np.ndarray:
    axes = reduce_axes(x.shape, attrs)
    red = [i in axes for i in range(x.ndim)]
    runs = []  # (size, reduced) of the merged axes (onnxruntime's OptimizeShapeForFastReduce)
    for size, r in zip(x.shape, red):
        if runs and runs[-1][1] == r:
            runs[-1][0] *= size
        else:
            runs.append([size, r])
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    kind = "".join("R" if r else "K" for _, r in runs)
    sizes = [s for s, _ in runs]
    v = np.ascontiguousarray(x, f32).reshape(sizes)
    if kind in ("R", "KR"):
        s = _eigen_rows(v.reshape(-1, sizes[-1])).reshape(sizes[:-1])
    elif kind == "KRK" and sizes[0] >= max(2, threads):
        s = _m1_ones(v)
    elif kind == "RKR" and sizes[1] >= max(2, threads):
        parts = _eigen_rows(v.reshape(-1, sizes[2])).reshape(sizes[:2])  # slice i of output d: row i * K + d
        s = _chain(parts, axis=0)
    else:
        keep = [i for i in range(x.ndim) if not red[i]]
        flat = np.transpose(x, keep + axes).reshape([x.shape[i] for i in keep] + [-1])
        s = _chain(flat)
    keepdims = bool(int(attrs.get("keepdims", 1)))
    shape = tuple(1 if red[i] else d for i, d in enumerate(x.shape)) if keepdims else \
        tuple(d for i, d in enumerate(x.shape) if not red[i])
    return (np.asarray(s, f32) / f32(count)).astype(f32).reshape(shape)


def _eigen_rows(v: np.ndarray) -> np.ndarray:
    """Eigen's sum() of each row of ``v`` (R, n), the buffer 16-byte aligned (see the module doc)."""
    r, n = v.shape
    out = np.empty(r, f32)
    head_of = (-(np.arange(r) * n)) % 4  # unaligned floats before the row's first aligned one
    for head in np.unique(head_of):
        idx = np.nonzero(head_of == head)[0]
        rows, a = v[idx], min(int(head), n)
        size4 = (n - a) // 4 * 4
        if size4 == 0:
            out[idx] = np.add.accumulate(rows, axis=1, dtype=f32)[:, -1]  # a plain chain from the first
            continue
        size8 = (n - a) // 8 * 8
        p0 = rows[:, a:a + 4]
        if size4 > 4:
            pairs = rows[:, a:a + size8].reshape(len(idx), -1, 2, 4)
            acc = np.add.accumulate(pairs, axis=1, dtype=f32)[:, -1]  # packets 0 / 1 each in order
            p0 = (acc[:, 0] + acc[:, 1]).astype(f32)
            if size4 > size8:
                p0 = (p0 + rows[:, a + size8:a + size4]).astype(f32)
        s = ((p0[:, 0] + p0[:, 2]).astype(f32) + (p0[:, 1] + p0[:, 3]).astype(f32)).astype(f32)
        rest = np.concatenate([rows[:, :a], rows[:, a + size4:]], axis=1)
        out[idx] = np.add.accumulate(np.concatenate([s[:, None], rest], axis=1), axis=1, dtype=f32)[:, -1]
    return out


def _m1_ones(v: np.ndarray) -> np.ndarray:
    """(K0, R, K2) summed over R as MlasSgemmKernelM1Avx multiplies a row of ones by it."""
    k = v.shape[1]
    c = np.zeros((v.shape[0], v.shape[2]), f32)
    full = k // 4 * 4
    if full:
        q = v[:, :full].reshape(v.shape[0], -1, 4, v.shape[2])
        t = (((q[:, :, 0] + q[:, :, 1]).astype(f32) + q[:, :, 2]).astype(f32) + q[:, :, 3]).astype(f32)
        c = _chain(t, axis=1)
    if k - full >= 2:
        c = ((v[:, full] + v[:, full + 1]).astype(f32) + c).astype(f32)
    if (k - full) % 2:
        c = (v[:, k - 1] + c).astype(f32)
    return c
