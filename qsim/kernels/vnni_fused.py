"""The VNNI convolution with its requantizing epilogue in the same parallel loop (``conv_rows_q``).

``vnni.conv_rows`` writes an int32 matrix for the whole image and ``vnni_epilogue.epilogue_q``
reads it back in a second parallel region. Here each work item (a run of output pixels x one
panel of 64 output channels) computes its register tiles into a small buffer that stays in L1 and
requantizes it at once (zero-point correction, bias, wrap and overflow count, the policy's
requantization, as ``vnni_epilogue.epilogue_q``): one parallel region per image and group instead of
two, no image-sized int32 buffer written and read again.

Pixels are addressed as ``row * row_bytes + col * col_bytes`` in the padded NHWC input: for a
general convolution a row is an output row (``row_bytes = stride_h * Wp * Cp``); a 1x1 convolution
at stride 1 without padding reads its input as one flat run of pixels cut into runs of ``RUN``
(the last one shorter), so small images (7x7) fill whole register tiles. Other stride-1
convolutions whose rows do not fill whole tiles run over the padded rows as one flat run too
(virtual pixels oy * Wp + ox): the Wp - OW pixels past each row's end are computed and dropped,
and every tile is whole (a 7-pixel row took one 4-row tile and three 1-row tiles).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from qsim.kernels import epilogue_tflite
from qsim.kernels.depthwise import f32_code
from qsim.kernels.vnni import MR, NR, NV, _make_tile, _tile_main, _tile_one
from qsim.kernels.portable import wrap_row
from qsim.numerics.requant_jit import requant_run

# Rows per register tile here: 6 x 4 accumulators + 4 weight vectors + 1 broadcast = 29 of the 32
# zmm registers; each weight vector loaded feeds 6 pixels instead of 4.
MR_WIDE = 6
_tile_wide = _make_tile(MR_WIDE, NV)
RUN = 36   # pixels per work item of a flat run (6 wide register tiles)


@njit(cache=True, parallel=True)
def conv_rows_q(xp, w, taps, quads, row_bytes, col_bytes, rows, run, nvirt, vw, ow, sa, w0, const, bits, lo,
                hi, checked, ch0, rq, out, fast=None, nimg=1, img_bytes=0):
    """Virtual pixel q = r * run + i (r < rows, i < run, q < nvirt) reads the input at byte
    r * row_bytes + i * col_bytes + taps[t]; it is output pixel (q // vw) * ow + q % vw where
    q % vw < ow and is dropped otherwise (vw = ow: every virtual pixel is an output pixel).
    out (pixels, cols) in the storage type gets the requantized channels
    (``vnni_epilogue.epilogue_q`` with ``transpose=False``; sa (pixels,) window sums, w0 / const
    (cols,)). Returns the overflow count (0 when not checked).

    ``fast``: None, or (w0, const, fmult) wrapped to int32 and the float32 multipliers of these
    columns, where ``fast_epilogue`` applies: the float32 kind (zero point and bounds below 2^17)
    and exact values the caller proved to fit int32 (not checked, an accumulator of <= 32 bits).

    ``nimg`` images of ``img_bytes`` each, their output pixels (and sa) one after the other: a
    batch in one parallel region instead of one per image."""
    npanel = w.shape[0]
    half = (np.int64(1) << (bits - 1)) if checked else np.int64(0)
    per_img = rows * npanel
    npix = (nvirt - 1) // vw * ow + min(ow, (nvirt - 1) % vw + 1)   # output pixels of one image
    counts = np.zeros(nimg * per_img, dtype=np.int64)
    for item in prange(nimg * per_img):
        n = item // per_img
        k = item - n * per_img
        # A function of its own: the parameter tuple inside a prange body slows its loops (vnni_epilogue).
        counts[item] = _item(xp, w, taps, quads, n * img_bytes, row_bytes, col_bytes, run, nvirt, vw, ow,
                             n * npix, k // npanel, k % npanel, sa, w0, const, bits, lo, hi, half, ch0, rq, out, fast)
    return counts.sum()


@njit(cache=True)
def _item(xp, w, taps, quads, img0, row_bytes, col_bytes, run, nvirt, vw, ow, pix0, r, j, sa, w0, const, bits, lo,
          hi, half, ch0, rq, out, fast):
    panel_bytes = w.shape[1] * w.shape[2] * w.shape[3] * w.shape[4]
    q0 = r * run
    n = min(run, nvirt - q0)
    c = np.empty((n, NR), dtype=np.int32)
    base = img0 + r * row_bytes
    wide = n - n % MR_WIDE
    for i in range(0, wide, MR_WIDE):
        _tile_wide(xp, base + i * col_bytes, col_bytes, taps, quads, w, j * panel_bytes, c, i * NR, NR)
    full = wide + (n - wide) // MR * MR
    for i in range(wide, full, MR):
        _tile_main(xp, base + i * col_bytes, col_bytes, taps, quads, w, j * panel_bytes, c, i * NR, NR)
    for i in range(full, n):
        _tile_one(xp, base + i * col_bytes, col_bytes, taps, quads, w, j * panel_bytes, c, i * NR, NR)
    j0 = j * NR
    j1 = min(w0.shape[0], j0 + NR)
    cnt = 0
    q = q0
    while q < q0 + n:      # runs of virtual pixels that are output pixels of one row
        oy = q // vw
        ox = q - oy * vw
        if ox >= ow:
            q = (oy + 1) * vw
            continue
        e = min(q0 + n, oy * vw + ow)
        p = pix0 + oy * ow + ox
        # Rows are indexed one at a time (c[i], out[i, j0:j1]): a 2-D slice of them would lose
        # numba's contiguous layout, and with it the vectorized loops.
        if fast is not None:
            w32, k32, mv = fast
            _f32_block(c, q - q0, sa, p, e - q, w32, k32, mv, j0, j1, np.float32(rq[9]), np.float32(rq[10]),
                       np.float32(rq[11]), out)
        else:
            cnt += _rq_block(c, q - q0, sa, p, e - q, w0, const, j0, j1, bits, lo, hi, half, ch0, rq, out)
        q = e
    return cnt


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
