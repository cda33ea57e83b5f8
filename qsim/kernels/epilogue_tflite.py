"""The fused VNNI conv epilogue of LiteRT's optimized (NEON-kind) requantization in one pass.

``vnni_fused._rq_block`` forms each row's exact accumulators in an int64 row and hands it to
``requant_jit.requant_run``: two passes over every output. For the NEON kind with the single-shift
terms (``requant_jit.neon_terms``) and nothing to wrap or count (the caller proved every exact sum
fits the accumulator), ``neon_block`` forms the exact value and requantizes it in the same loop,
over the contiguous per-channel terms of the row's columns: one int64 vector pass, the same
integers as ``_rq_block`` (the exact value is the same int64 expression, then ``neon_fx``, which
``neon_terms`` proves equal to ``neon_code``).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from qsim.numerics.requant_jit import KIND_NEON, neon_fx


@njit(cache=True, inline="always")
def applies(half, rq) -> bool:
    """Whether ``neon_block`` takes a block: no overflow check, the NEON kind, terms for every channel."""
    return half == 0 and rq[0] == KIND_NEON and rq[12].shape[0] == 4


@njit(cache=True)
def neon_block(c, c0, sa, p0, n, w0, const, j0, j1, ch0, rq, out):
    """Rows c[c0:c0+n] (int32 tile sums) into out[p0:p0+n, j0:j1]: exact = c + const - w0 * sa
    (int64, as ``vnni_fused._rq_block``), then ``neon_fx`` with channel ``ch0 + j`` for column j."""
    cols = j1 - j0
    fx = rq[12]
    a0, a1 = ch0 + j0, ch0 + j1
    q, ls, s, rnd = fx[0, a0:a1], fx[1, a0:a1], fx[2, a0:a1], fx[3, a0:a1]
    zp, qmin, qmax = np.int64(rq[9]), np.int64(rq[10]), np.int64(rq[11])
    wv, kv = w0[j0:j1], const[j0:j1]
    for i in range(n):
        crow = c[c0 + i]
        t = sa[p0 + i]
        d = out[p0 + i, j0:j1]
        if t == 0:   # symmetric weights (LiteRT's int8 convs) or a zero window sum: no product to form
            for j in range(cols):
                d[j] = neon_fx(np.int64(crow[j]) + kv[j], q[j], ls[j], s[j], rnd[j], zp, qmin, qmax)
        else:
            for j in range(cols):
                d[j] = neon_fx(np.int64(crow[j]) + kv[j] - wv[j] * t, q[j], ls[j], s[j], rnd[j], zp, qmin, qmax)


@njit(cache=True)
def neon_rows(acc, rq, dst):
    """acc (P, C) exact sums of channels 0..C-1 (int32 or int64, nothing to wrap) into dst (P, C):
    ``neon_fx`` per element, the channel terms sliced once for all P pixels (the depthwise kernel's
    output row; ``requant_run`` per pixel slices them again for every pixel)."""
    c = acc.shape[1]
    fx = rq[12]
    q, ls, s, rnd = fx[0, :c], fx[1, :c], fx[2, :c], fx[3, :c]
    zp, qmin, qmax = np.int64(rq[9]), np.int64(rq[10]), np.int64(rq[11])
    for p in range(acc.shape[0]):
        a = acc[p]
        d = dst[p]
        for j in range(c):
            d[j] = neon_fx(np.int64(a[j]), q[j], ls[j], s[j], rnd[j], zp, qmin, qmax)
