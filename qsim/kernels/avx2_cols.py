"""Receptive fields as rows (im2col) for the planned conv where MLAS's u8s8 byte pairs cross taps.

MLAS's AVX2 u8s8 kernel (``avx2``) saturates the sums of the byte pairs (2j, 2j+1) of the reduction
index over (ky, kx, c). The tiles read each tap's channels padded to whole quads, so with an odd
channel count per group and several taps their pairs are not MLAS's (a stem's 3 channels: MLAS
pairs channel 2 of one tap with channel 0 of the next). Copied out as one row of K = kh * kw * cg
bytes per output pixel (padded to whole quads with zeros, under zero weights), the reduction is a
single tap whose pairs are MLAS's, as in its own im2col; ``vnni_ops.plan_conv`` plans it so.
"""
from __future__ import annotations

from numba import njit, prange


@njit(cache=True, parallel=True)
def im2col(xp, c, kh, kw, sh, sw, dh, dw, oh, ow, out):
    """out (NG, OH * OW, Kp) uint8: row oy * OW + ox of image i holds its receptive field in
    (ky, kx, ch) order, then zeros, from xp (NG, Hp, Wp * c): a padded NHWC image of c channels
    per entry of NG, each row's pixels flattened."""
    nimg = xp.shape[0]
    for item in prange(nimg * oh):
        _row(xp[item // oh], c, item % oh, kh, kw, sh, sw, dh, dw, ow, out[item // oh])


@njit(cache=True)
def _row(img, c, oy, kh, kw, sh, sw, dh, dw, ow, dst):
    """Output row oy of one image: ow rows of dst from kh input rows (kw * c contiguous bytes
    each where dw == 1)."""
    k = kh * kw * c
    run = kw * c
    for ox in range(ow):
        d = dst[oy * ow + ox]
        for ky in range(kh):
            src = img[oy * sh + ky * dh]
            x0 = ox * sw * c
            if dw == 1:
                for i in range(run):
                    d[ky * run + i] = src[x0 + i]
            else:
                for kx in range(kw):
                    for ch in range(c):
                        d[ky * run + kx * c + ch] = src[x0 + kx * dw * c + ch]
        for i in range(k, d.shape[0]):
            d[i] = 0
