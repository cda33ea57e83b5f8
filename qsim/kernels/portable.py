"""Portable numba kernels: any integer dtype, wrap or saturate, any CPU.

In saturate mode they follow the accumulation order of `qsim.kernels.reference` exactly (bias,
then input channel, ky, kx for conv; k ascending for matmul), vectorizing across outputs: each
output is summed sequentially, many outputs at once. In wrap mode the sum is exact before it is
wrapped, so order is free and taps may be regrouped. The working integer type (int32 or int64) is
chosen by the caller from a bound on the exact sum, so numba compiles one specialization per width.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from qsim.numerics.formats import Rounding


MBLOCK = 8    # output channels per work item: the padded input block is built once per item


@njit(cache=True, parallel=True)
def conv_seq(x, xz, ws, bias, bias_hit, sh, sw, dh, dw, pt, pl, bits, lo, hi, saturate, checked,
             out):
    """Sequential-order convolution, written straight to the int64 result.

    x (N, C, H, W) raw integers; ws (M, cg, kh, kw) zero-point-subtracted in the working dtype
    (int32 or int64, also used for the padded input block and the accumulators); bias (M,) clamped
    when saturating, bias_hit (M,) marks those that were; out (N, M, OH, OW) int64.
    Returns per-item overflow counts: outputs that clamped (saturate) or whose exact sum left
    [lo, hi] (wrap; the stored value is then wrapped to `bits`). checked=False promises that no
    exact sum can leave the range, so wrap mode stores without testing."""
    n_, c_, h, w = x.shape
    m_, cg, kh, kw = ws.shape
    oh, ow = out.shape[2], out.shape[3]
    groups = c_ // cg
    mg = m_ // groups
    mblocks = (mg + MBLOCK - 1) // MBLOCK
    hp = max(h + pt, (oh - 1) * sh + (kh - 1) * dh + 1)
    wp = max(w + pl, (ow - 1) * sw + (kw - 1) * dw + 1)
    wq = (wp + sw - 1) // sw
    half = (np.int64(1) << (bits - 1)) if checked or saturate else np.int64(0)
    mask = (np.int64(1) << bits) - 1
    counts = np.zeros(n_ * groups * mblocks, dtype=np.int64)
    for item in prange(n_ * groups * mblocks):
        n = item // (groups * mblocks)
        g = (item // mblocks) % groups
        mb = item % mblocks
        # x - x_zp for this group's channels, zero in the padding (the pad value is x_zp),
        # split by column phase modulo sw so that every tap reads a contiguous run:
        # padded column j*sw + p lives at xs[p, c, y, j]. One spare row: the flat stride-1
        # loops read past the last row's end.
        xs = np.zeros((sw, cg, hp + 1, wq), dtype=ws.dtype)
        for c in range(cg):
            for y in range(h):
                src = x[n, g * cg + c, y]
                if sw == 1:
                    dst = xs[0, c, pt + y, pl: pl + w]     # a slice indexed from 0 vectorizes
                    for i in range(w):
                        dst[i] = src[i] - xz
                else:
                    for p in range(sw):
                        dst = xs[p, c, pt + y]
                        for j in range(wq):
                            i = j * sw + p - pl
                            if 0 <= i < w:
                                dst[j] = src[i] - xz
        cnt = 0
        for m in range(g * mg + mb * MBLOCK, g * mg + min(mg, (mb + 1) * MBLOCK)):
            if sh == 1 and sw == 1:
                cnt += _plane_flat(xs[0], ws[m], bias[m], bias_hit[m], dh, dw, oh, ow, lo, hi,
                                   half, mask, saturate, out[n, m])
            else:
                cnt += _plane_rows(xs, ws[m], bias[m], bias_hit[m], sh, sw, dh, dw, lo, hi,
                                   half, mask, saturate, out[n, m])
        counts[item] = cnt
    return counts


@njit(cache=True)
def _saturating_taps(acc, seg, wv, lo, hi, hit, n):
    """acc[i] += seg[i] * wv for i < n, clamping after every add (order matters when saturating)."""
    for i in range(n):
        v = acc[i] + seg[i] * wv
        cv = min(max(v, lo), hi)
        hit[i] |= cv != v
        acc[i] = cv


@njit(cache=True)
def wrap_row(src, lo, hi, half, mask, dst):
    """dst = src wrapped to two's complement (half = 2^(bits-1), mask = 2^bits - 1); return how
    many src values lie outside [lo, hi]."""
    cnt = 0
    for i in range(dst.size):
        e = np.int64(src[i])
        cnt += (e < lo) | (e > hi)
        dst[i] = ((e + half) & mask) - half
    return cnt


@njit(cache=True)
def _plane_flat(xs, wm, b, bhit, dh, dw, oh, ow, lo, hi, half, mask, saturate, dst):
    """Stride 1: treat the padded block as flat rows of width wp so that each tap is one long
    contiguous multiply-add (outputs oy*wp + ox; columns ox >= ow are computed and discarded)."""
    cg, kh, kw = wm.shape
    wp = xs.shape[2]
    flat = xs.reshape(cg, -1)
    n = oh * wp
    acc = np.empty(n, dtype=xs.dtype)
    acc[:] = b
    hit = np.zeros(n if saturate else 1, dtype=np.bool_)     # clamp flags: saturate only
    hit[:] = bhit
    for c in range(cg):
        for ky in range(kh):
            kx = 0
            while kx < kw:
                o = ky * dh * wp + kx * dw
                wv = wm[c, ky, kx]
                seg = flat[c, o: o + n]
                if saturate:
                    _saturating_taps(acc, seg, wv, lo, hi, hit, n)
                    kx += 1
                elif kx + 3 <= kw:
                    # Wrap sums are order-free: three taps per pass cut the accumulator traffic.
                    s1 = flat[c, o + dw: o + dw + n]
                    s2 = flat[c, o + 2 * dw: o + 2 * dw + n]
                    w1, w2 = wm[c, ky, kx + 1], wm[c, ky, kx + 2]
                    for i in range(n):
                        acc[i] += seg[i] * wv + s1[i] * w1 + s2[i] * w2
                    kx += 3
                else:
                    for i in range(n):
                        acc[i] += seg[i] * wv
                    kx += 1
    # Separate loop nests per mode, tests outside them: with the mode tested inside the row loop
    # the copy ran 2x slower.
    if not saturate and half == 0:
        # The caller proved no exact sum can leave the range: wrapping is the identity.
        for oy in range(oh):
            d = dst[oy]
            a = acc[oy * wp: oy * wp + ow]
            for i in range(ow):
                d[i] = a[i]
        return 0
    cnt = 0
    for oy in range(oh):
        if saturate:
            d = dst[oy]
            a = acc[oy * wp: oy * wp + ow]
            h = hit[oy * wp: oy * wp + ow]
            for i in range(ow):
                d[i] = a[i]
                cnt += h[i]
        else:
            cnt += wrap_row(acc[oy * wp: oy * wp + ow], lo, hi, half, mask, dst[oy])
    return cnt


@njit(cache=True)
def _plane_rows(xs, wm, b, bhit, sh, sw, dh, dw, lo, hi, half, mask, saturate, dst):
    """Any stride: one output row at a time; xs is split by column phase (see conv_seq)."""
    cg, kh, kw = wm.shape
    oh, ow = dst.shape
    acc = np.empty(ow, dtype=xs.dtype)
    hit = np.zeros(ow, dtype=np.bool_)
    cnt = 0
    for oy in range(oh):
        acc[:] = b
        hit[:] = bhit
        for c in range(cg):
            for ky in range(kh):
                for kx in range(kw):
                    wv = wm[c, ky, kx]
                    col = kx * dw
                    seg = xs[col % sw, c, oy * sh + ky * dh, col // sw: col // sw + ow]
                    if saturate:
                        _saturating_taps(acc, seg, wv, lo, hi, hit, ow)
                    else:
                        for i in range(ow):
                            acc[i] += seg[i] * wv
        d = dst[oy]
        if saturate:
            for i in range(ow):
                d[i] = acc[i]
                cnt += hit[i]
        elif half == 0:
            for i in range(ow):
                d[i] = acc[i]
        else:
            cnt += wrap_row(acc, lo, hi, half, mask, d)
    return cnt


@njit(cache=True, parallel=True)
def matmul_seq(a, b, bias, bias_hit, lo, hi, saturate, out):
    """Sequential-order matmul. a (B, M, K), b (B, K, N) zero-point-subtracted, working dtype;
    bias (N,) clamped when saturating, bias_hit (N,) marks those that were; out (B, M, N).
    Returns per-(batch, row block) counts of outputs that clamped (saturate) or zeros."""
    nb, m_, n_ = out.shape
    k_ = a.shape[2]
    mblocks = (m_ + MBLOCK - 1) // MBLOCK
    counts = np.zeros(nb * mblocks, dtype=np.int64)
    for item in prange(nb * mblocks):
        bi, m0 = item // mblocks, (item % mblocks) * MBLOCK
        rows = min(MBLOCK, m_ - m0)
        # MBLOCK rows share each row of b while it is in L1 (one row at a time streamed all of b
        # from memory per output row: 7 GOPS at 4096 x 4096).
        acc = np.empty((rows, n_), dtype=out.dtype)
        hit = np.empty((rows, n_), dtype=np.bool_)
        for r in range(rows):
            acc[r] = bias
            hit[r] = bias_hit
        for k in range(k_):
            brow = b[bi, k]
            for r in range(rows):
                av = a[bi, m0 + r, k]
                ar = acc[r]
                if saturate:
                    hr = hit[r]
                    for i in range(n_):
                        v = ar[i] + av * brow[i]
                        cv = min(max(v, lo), hi)
                        hr[i] |= cv != v
                        ar[i] = cv
                else:
                    for i in range(n_):
                        ar[i] += av * brow[i]
        out[bi, m0:m0 + rows] = acc
        counts[item] = np.count_nonzero(hit) if saturate else 0
    return counts


@njit(cache=True, parallel=True)
def wrap_count(v, bits, lo, hi, out):
    """out = v wrapped to `bits` two's complement; return how many v lie outside [lo, hi]."""
    flat_v = v.reshape(-1)
    flat_o = out.reshape(-1)
    nblk = (flat_v.size + 4095) // 4096
    counts = np.zeros(nblk, dtype=np.int64)
    half = np.int64(1) << (bits - 1)
    mask = (np.int64(1) << bits) - 1
    for b in prange(nblk):
        # 0-based slices: indexing the whole arrays from b * 4096 kept a wraparound test per access
        # (numba wraps negative indices), which stops vectorization.
        i0, i1 = b * 4096, min(flat_v.size, (b + 1) * 4096)
        counts[b] = wrap_row(flat_v[i0:i1], lo, hi, half, mask, flat_o[i0:i1])
    return counts.sum()


@njit(cache=True, parallel=True)
def maxpool(x, kh, kw, sh, sw, pt, pl, oh, ow, out):
    n_, c_, h, w = x.shape
    for item in prange(n_ * c_):
        n, c = item // c_, item % c_
        plane = x[n, c]
        for oy in range(oh):
            y0 = oy * sh - pt
            for ox in range(ow):
                x0 = ox * sw - pl
                best = np.int64(-(2**62))
                for y in range(max(y0, 0), min(y0 + kh, h)):
                    for xx in range(max(x0, 0), min(x0 + kw, w)):
                        best = max(best, np.int64(plane[y, xx]))
                out[n, c, oy, ox] = best


@njit(cache=True, parallel=True)
def maxpool_nhwc(xh, kh, kw, sh, sw, pt, pl, out):
    """Max pool over channels-last xh (N, H, W, C) into out (N, OH, OW, C), same dtype: the max over
    the window's cells inside the input (every window has one, ``pool_geometry``), all channels at
    once."""
    n_, h, w, c = xh.shape
    oh, ow = out.shape[1], out.shape[2]
    for item in prange(n_ * oh):
        n = item // oh
        y0 = (item % oh) * sh - pt
        for ox in range(ow):
            x0 = ox * sw - pl
            d = out[n, item % oh, ox]
            ya, xa = max(y0, 0), max(x0, 0)
            d[:] = xh[n, ya, xa]
            for y in range(ya, min(y0 + kh, h)):
                for xx in range(xa, min(x0 + kw, w)):
                    s = xh[n, y, xx]
                    for ch in range(c):  # max(), not a conditional store: the loop vectorizes (27x)
                        d[ch] = max(d[ch], s[ch])


# The one place where an average-pool rounding becomes the integer the compiled kernel switches on.
ROUND_HALF_AWAY, ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_FLOOR = range(4)
ROUNDING_CODES = {Rounding.HALF_AWAY: ROUND_HALF_AWAY, Rounding.HALF_EVEN: ROUND_HALF_EVEN,
                  Rounding.HALF_UP: ROUND_HALF_UP, Rounding.FLOOR: ROUND_FLOOR}


@njit(cache=True)
def _round_div(t, n, mode):
    """t / n (n > 0) rounded by ``mode`` (a ROUND_* code; see reference.round_div)."""
    if mode == ROUND_FLOOR:
        return t // n
    if mode == ROUND_HALF_UP:
        return (2 * t + n) // (2 * n)
    if mode == ROUND_HALF_AWAY:
        q = (2 * abs(t) + n) // (2 * n)
        return q if t >= 0 else -q
    q = t // n
    r = t - q * n
    if 2 * r > n or (2 * r == n and q % 2 != 0):
        q += 1
    return q


@njit(cache=True, parallel=True)
def avgpool(x, zp, kh, kw, sh, sw, pt, pl, oh, ow, include_pad, mode, out):
    n_, c_, h, w = x.shape
    for item in prange(n_ * c_):
        n, c = item // c_, item % c_
        plane = x[n, c]
        for oy in range(oh):
            y0 = oy * sh - pt
            ya, yb = max(y0, 0), min(y0 + kh, h)
            for ox in range(ow):
                x0 = ox * sw - pl
                xa, xb = max(x0, 0), min(x0 + kw, w)
                t = np.int64(0)
                for y in range(ya, yb):
                    for xx in range(xa, xb):
                        t += plane[y, xx]
                cnt = (yb - ya) * (xb - xa)
                if include_pad:
                    t += np.int64(zp) * (kh * kw - cnt)
                    cnt = kh * kw
                out[n, c, oy, ox] = _round_div(t, np.int64(cnt), mode)
