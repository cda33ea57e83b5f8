"""The VNNI convolution with its requantizing epilogue in the same parallel loop (``conv_rows_q``).

``vnni.conv_rows`` writes an int32 matrix for the whole image and ``vnni_epilogue.epilogue_q``
reads it back in a second parallel region. Here each work item (a run of output pixels x one
panel of 64 output channels) computes its register tiles into a small buffer that stays in L1 and
requantizes it at once (zero-point correction, bias, wrap and overflow count, the policy's
requantization, as ``vnni_epilogue.epilogue_q``): one parallel region per image and group instead of
two (one per batch where the weights are symmetric), no image-sized int32 buffer written and read again.

Every output pixel p of an image reads its receptive field from byte ``offs[p]`` of the padded
NHWC input (``vnni_ops.pixel_offsets``), so the pixels are one flat run, cut into runs of
``run`` (``vnni_ops.plan_conv`` makes the runs about equal), whatever the stride, padding or row
length: the register tiles gather their rows through the table (``vnni.make_gather_tile``), every
tile is whole, and no padding pixel is computed (a 7x7 image's padded rows computed 61 pixels for
49, rows read one by one took 1- and 4-pixel tiles).

Work items are ordered panel by panel: numba's parallel loop gives each thread one contiguous
share of the items, so with few pixels (7x7: two runs) each thread takes whole panels and both
get the same work (run by run, the first thread took every full run and the second the short ones).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from qsim.kernels import avx2, epilogue_tflite, vnni
from qsim.kernels.vnni import MR, NR, NV
from qsim.kernels.portable import wrap_row
from qsim.numerics.requant_jit import requant_run
from qsim.numerics.rounding_jit import f32_code

# Rows per register tile: 6 x 4 accumulators + 4 weight vectors + 1 broadcast = 29 of the 32
# zmm registers; each weight vector loaded feeds 6 pixels instead of 4. (AVX2: 6 x 2 ymm
# accumulators per 16-column chunk of the panel, ``avx2``.)
MR_WIDE = 6
# The core is the host's: vpdpbusd where it has AVX-512 VNNI, else MLAS's AVX2 sequence (``avx2``;
# ``vnni_ops.plan_conv`` plans for it only what it computes exactly, or with MLAS's saturation).
CORE = "vnni" if vnni.HAS_VNNI or not avx2.HAS_AVX2 else "avx2"
RUN_MAJOR = CORE == "avx2"   # work items of many runs ordered run by run (``conv_rows_q``); VNNI: as it was
# The tiles take the panel's valid columns last: the AVX2 tiles skip the 16-column chunks past them
# (a 16- or 32-channel layer computed a whole 64-column panel); the VNNI ones compute the panel.
if CORE == "vnni":
    _vnni_wide, _vnni_main, _vnni_one = (vnni.make_gather_tile(mr, NV) for mr in (MR_WIDE, MR, 1))

    @njit(inline="always")
    def _tile_wide(u, u_off, offs, oi, taps, quads, w, w_off, c, c_off, ldc, cols):
        _vnni_wide(u, u_off, offs, oi, taps, quads, w, w_off, c, c_off, ldc)

    @njit(inline="always")
    def _tile_main(u, u_off, offs, oi, taps, quads, w, w_off, c, c_off, ldc, cols):
        _vnni_main(u, u_off, offs, oi, taps, quads, w, w_off, c, c_off, ldc)

    @njit(inline="always")
    def _tile_one(u, u_off, offs, oi, taps, quads, w, w_off, c, c_off, ldc, cols):
        _vnni_one(u, u_off, offs, oi, taps, quads, w, w_off, c, c_off, ldc)
else:
    _tile_wide, _tile_main, _tile_one = (avx2.make_gather_tile(mr) for mr in (MR_WIDE, MR, 1))
RUN = 36   # pixels per work item at most (6 wide register tiles; a 36 x 64 int32 buffer is 9 KiB)


@njit(cache=True, parallel=True)
def conv_rows_q(xp, w, taps, quads, offs, run, sa, w0, const, bits, lo, hi, checked, ch0, rq, out, fast=None,
                nimg=1, img_bytes=0):
    """Output pixel p (< len(offs)) of image n reads the input at byte n * img_bytes + offs[p] +
    taps[t]. out (nimg * pixels, cols) in the storage type gets the requantized channels
    (``vnni_epilogue.epilogue_q`` with ``transpose=False``; sa (nimg * pixels,) window sums, w0 /
    const (cols,)). Returns the overflow count (0 when not checked).

    ``fast``: None, or (w0, const, fmult) wrapped to int32 and the float32 multipliers of these
    columns, where ``fast_epilogue`` applies: the float32 kind (zero point and bounds below 2^17)
    and exact values the caller proved to fit int32 (not checked, an accumulator of <= 32 bits).

    ``nimg`` images of ``img_bytes`` each, their output pixels (and sa) one after the other: a
    batch in one parallel region instead of one per image."""
    npanel = w.shape[0]
    half = (np.int64(1) << (bits - 1)) if checked else np.int64(0)
    npix = offs.shape[0]
    nruns = (npix + run - 1) // run
    per_img = nruns * npanel
    counts = np.zeros(nimg * per_img, dtype=np.int64)
    # Many runs and weights that stay in L2 (256 KiB): run by run, each thread a contiguous share of
    # the runs x every panel. Panel by panel gave a 96-channel layer's first thread the full panel,
    # the second the 32-column one; with larger weights every run would stream them all again.
    run_major = RUN_MAJOR and nruns >= 8 and w.size * w.itemsize <= (1 << 18)
    for item in prange(nimg * per_img):
        n = item // per_img
        k = item - n * per_img
        j, r = k // nruns, k % nruns       # panel by panel (module doc)
        if run_major:
            r, j = k // npanel, k % npanel
        q0 = r * run
        # A function of its own: the parameter tuple inside a prange body slows its loops (vnni_epilogue).
        counts[item] = _item(xp, w, taps, quads, offs, n * img_bytes, q0, min(run, npix - q0), n * npix + q0, j,
                             sa, w0, const, bits, lo, hi, half, ch0, rq, out, fast)
    return counts.sum()


@njit(cache=True)
def _item(xp, w, taps, quads, offs, img0, q0, n, p, j, sa, w0, const, bits, lo, hi, half, ch0, rq, out, fast):
    """Pixels q0..q0+n of one image (output rows p..p+n) x panel j; returns the overflow count."""
    c = np.empty((n, NR), dtype=np.int32)
    j0 = j * NR
    j1 = min(w0.shape[0], j0 + NR)
    _tiles(xp, w, taps, quads, img0, offs, q0, n, j, c, j1 - j0)
    if fast is not None:
        w32, k32, mv = fast
        _f32_block(c, 0, sa, p, n, w32, k32, mv, j0, j1, np.float32(rq[9]), np.float32(rq[10]),
                   np.float32(rq[11]), out)
        return 0
    return _rq_block(c, 0, sa, p, n, w0, const, j0, j1, bits, lo, hi, half, ch0, rq, out)


@njit(cache=True)
def _tiles(xp, w, taps, quads, img0, offs, q0, n, j, c, cols):
    """c (n, NR) int32 = the register tiles of pixels q0..q0+n (input bytes img0 + offs[q]) x panel j
    (its first ``cols`` columns at least: the epilogue reads no more).
    A run of >= 6 pixels ends with a wide tile over its last 6 pixels, overlapping the previous
    one (rows written twice get the same sums): cheaper than 4- and 1-pixel tiles."""
    wb = j * (w.shape[1] * w.shape[2] * w.shape[3] * w.shape[4])
    if n >= MR_WIDE:
        for i in range(0, n - MR_WIDE + 1, MR_WIDE):
            _tile_wide(xp, img0, offs, q0 + i, taps, quads, w, wb, c, i * NR, NR, cols)
        if n % MR_WIDE:
            i = n - MR_WIDE
            _tile_wide(xp, img0, offs, q0 + i, taps, quads, w, wb, c, i * NR, NR, cols)
        return
    full = n - n % MR
    for i in range(0, full, MR):
        _tile_main(xp, img0, offs, q0 + i, taps, quads, w, wb, c, i * NR, NR, cols)
    for i in range(full, n):
        _tile_one(xp, img0, offs, q0 + i, taps, quads, w, wb, c, i * NR, NR, cols)


@njit(cache=True, parallel=True)
def tiles_only(xp, w, taps, quads, offs, run, nimg, img_bytes):
    """``conv_rows_q``'s work items without the epilogue (the sums are dropped): what the
    register tiles alone cost, for benchmarks/bench_conv_layers.py."""
    npanel = w.shape[0]
    npix = offs.shape[0]
    nruns = (npix + run - 1) // run
    per_img = nruns * npanel
    for item in prange(nimg * per_img):
        k = item % per_img
        q0 = k % nruns * run
        n = min(run, npix - q0)
        c = np.empty((n, NR), dtype=np.int32)
        _tiles(xp, w, taps, quads, item // per_img * img_bytes, offs, q0, n, k // nruns, c, NR)


@njit(cache=True)
def _f32_block(c, c0, sa, p0, n, w32, k32, mv, j0, j1, zp, flo, fhi, out):
    """The float32-kind epilogue of rows c[c0:c0+n] into out[p0:p0+n, j0:j1], in int32 / float32
    lanes: exact = c + const - w0 * sa computed modulo 2^32 (exact: the caller proved every exact
    value fits int32), then ``f32_code``."""
    cols = j1 - j0
    wv, kv, m = w32[j0:j1], k32[j0:j1], mv[j0:j1]
    for i in range(n):
        crow = c[c0 + i]
        s = np.int32(sa[p0 + i])
        d = out[p0 + i, j0:j1]
        if s == 0:
            for j in range(cols):
                d[j] = f32_code(np.int32(crow[j] + kv[j]), m[j], zp, flo, fhi)
        else:
            for j in range(cols):
                d[j] = f32_code(np.int32(crow[j] + kv[j] - wv[j] * s), m[j], zp, flo, fhi)


@njit(cache=True)
def _rq_block(c, c0, sa, p0, n, w0, const, j0, j1, bits, lo, hi, half, ch0, rq, out):
    """``vnni_epilogue.epilogue_q``'s rows for every policy: exact values in int64, wrapped to
    ``bits`` and counted when checked, then ``requant_run``; returns the overflow count."""
    if epilogue_tflite.applies(half, rq):   # LiteRT's NEON kind, nothing to count: one pass
        epilogue_tflite.neon_block(c, c0, sa, p0, n, w0, const, j0, j1, ch0, rq, out)
        return 0
    cols = j1 - j0
    mask = (np.int64(1) << bits) - 1
    wv, kv = w0[j0:j1], const[j0:j1]
    row = np.empty(cols, dtype=np.int64)
    cnt = 0
    for i in range(n):
        crow = c[c0 + i]
        s = sa[p0 + i]
        for j in range(cols):
            row[j] = np.int64(crow[j]) + kv[j] - wv[j] * s
        if half != 0:
            cnt += wrap_row(row, lo, hi, half, mask, row)
        requant_run(row, ch0 + j0, 1, rq, out[p0 + i, j0:j1])
    return cnt
