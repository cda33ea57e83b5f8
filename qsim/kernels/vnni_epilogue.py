"""Epilogues of the VNNI core (``vnni``): the int32 tile sums become exact accumulators (zero-point
correction, bias: ``vnni_ops`` has the algebra), wrapped to the accumulator width and counted, and
stored as int64 (``epilogue``) or requantized in place into the output type (``epilogue_q``)."""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from qsim.kernels.portable import wrap_row
from qsim.numerics.requant_jit import KIND_FLOAT32, float32_code, requant_run

# Epilogue rows per block: long enough that each transposed output run streams (2 KiB of int64),
# short enough that the block (64 columns) stays in L2.
EPI_ROWS = 256


@njit(cache=True, parallel=True)
def epilogue(c, sa, w0, const, bits, lo, hi, checked, transpose, out):
    """exact = c[i, j] + const[j] - w0[j] * sa[i] (rows i < len(sa), columns j < len(w0));
    out = exact wrapped to `bits`, stored as out[i, j] or, with transpose, out[j, i].
    Returns the number of exact values outside [lo, hi] (0 without checking when not checked)."""
    rows = sa.shape[0]
    cols = w0.shape[0]
    nblk = (rows + EPI_ROWS - 1) // EPI_ROWS
    counts = np.zeros(nblk, dtype=np.int64)
    half = (np.int64(1) << (bits - 1)) if checked else np.int64(0)
    mask = (np.int64(1) << bits) - 1
    for b in prange(nblk):
        r0 = b * EPI_ROWS
        r1 = min(rows, r0 + EPI_ROWS)
        # +8: a row pitch off the power of two keeps buf's column walk out of cache-set conflicts.
        buf = np.empty((cols, EPI_ROWS + 8) if transpose else (1, cols), dtype=np.int64)
        cnt = 0
        for i in range(r0, r1):
            crow = c[i, :cols]
            s = sa[i]
            # Rows of c are contiguous: form the exact values row by row, vectorized over j.
            if transpose:
                for j in range(cols):
                    buf[j, i - r0] = np.int64(crow[j]) + const[j] - w0[j] * s
            elif half == 0:       # unchecked: no exact value can leave the range
                d = out[i]
                for j in range(cols):
                    d[j] = np.int64(crow[j]) + const[j] - w0[j] * s
            else:
                row = buf[0]
                for j in range(cols):
                    row[j] = np.int64(crow[j]) + const[j] - w0[j] * s
                cnt += wrap_row(row, lo, hi, half, mask, out[i])
        if transpose:
            # ...then write each output channel's pixels as one contiguous run.
            for j in range(cols):
                d = out[j, r0:r1]
                src = buf[j, :r1 - r0]
                if half == 0:
                    for i in range(r1 - r0):
                        d[i] = src[i]
                else:
                    cnt += wrap_row(src, lo, hi, half, mask, d)
        counts[b] = cnt
    return counts.sum()


@njit(cache=True, parallel=True)
def epilogue_q(c, sa, w0, const, bits, lo, hi, checked, transpose, ch0, rq, out):
    """``epilogue`` with the requantization fused: the exact values (wrapped to ``bits`` and
    counted as there) of each block are requantized by ``requant_run`` (channel ``ch0 + j`` for
    column j, parameters ``rq``) while the block is in cache, and stored in out's type (uint8,
    int8, ...): no int64 accumulator array is written or read again."""
    rows = sa.shape[0]
    nblk = (rows + EPI_ROWS - 1) // EPI_ROWS
    counts = np.zeros(nblk, dtype=np.int64)
    half = (np.int64(1) << (bits - 1)) if checked else np.int64(0)
    for b in prange(nblk):
        # The block is a function of its own: the parameter tuple read inside a parallel loop's
        # body made the fixed-point loops ~100x slower (numba 0.68).
        counts[b] = _epilogue_block(c, sa, w0, const, b * EPI_ROWS, min(rows, (b + 1) * EPI_ROWS), bits, lo, hi,
                                    half, transpose, ch0, rq, out)
    return counts.sum()


@njit(cache=True)
def _epilogue_block(c, sa, w0, const, r0, r1, bits, lo, hi, half, transpose, ch0, rq, out):
    """Rows r0..r1 of ``epilogue_q``; returns their overflow count."""
    cols = w0.shape[0]
    mask = (np.int64(1) << bits) - 1
    cnt = 0
    if transpose:
        buf = np.empty((cols, EPI_ROWS + 8), dtype=np.int64)
        for i in range(r0, r1):
            crow = c[i, :cols]
            s = sa[i]
            for j in range(cols):
                buf[j, i - r0] = np.int64(crow[j]) + const[j] - w0[j] * s
        for j in range(cols):
            src = buf[j, :r1 - r0]
            if half != 0:
                cnt += wrap_row(src, lo, hi, half, mask, src)
            requant_run(src, ch0 + j, 0, rq, out[j, r0:r1])
    elif half == 0 and rq[0] == KIND_FLOAT32:
        # The common case in one pass: exact value and float32 requantization per element,
        # no int64 row in between (the values fit, nothing to wrap).
        mv = rq[1][ch0:ch0 + cols]
        zp, flo, fhi = rq[9], np.float64(rq[10]), np.float64(rq[11])
        for i in range(r0, r1):
            crow = c[i, :cols]
            s = sa[i]
            d = out[i]
            for j in range(cols):
                d[j] = float32_code(np.int64(crow[j]) + const[j] - w0[j] * s, mv[j], zp, flo, fhi)
    else:
        row = np.empty(cols, dtype=np.int64)
        for i in range(r0, r1):
            crow = c[i, :cols]
            s = sa[i]
            for j in range(cols):
                row[j] = np.int64(crow[j]) + const[j] - w0[j] * s
            if half != 0:
                cnt += wrap_row(row, lo, hi, half, mask, row)
            requant_run(row, ch0, 1, rq, out[i])
    return cnt
