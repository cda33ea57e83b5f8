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

from qsim.kernels.llvm_ir import load8, store8


@njit(cache=True, parallel=True)
def im2col(xp, c, kh, kw, sh, sw, dh, dw, oh, ow, out):
    """out (NG, OH * OW, Kp) uint8: row oy * OW + ox of image i holds its receptive field in
    (ky, kx, ch) order, then zeros, from xp (NG, Hp, Wp * c): a padded NHWC image of c channels
    per entry of NG, each row's pixels flattened. (A stem's input padded to 4-byte pixels, 4x
    faster, then compacted here two pixels a word, took 2.5x longer to copy: 884 against 352 us
    for ResNet-18's stem on one thread.)"""
    nimg = xp.shape[0]
    for item in prange(nimg * oh):
        _rows(xp[item // oh], c, item % oh, kh, kw, sh, sw, dh, dw, ow, out[item // oh])


@njit(cache=True)
def _rows(img, c, oy, kh, kw, sh, sw, dh, dw, ow, dst):
    """Output row oy of one image. Where dw == 1 each tap row is kw * c contiguous bytes, copied as
    8-byte words, the last one ending at the run's end (overlapping its predecessor): nothing is
    written past the run, so rows of other threads are never touched (byte by byte: 4x slower)."""
    k = kh * kw * c
    run = kw * c
    kp = dst.shape[1]
    flat_src = img.reshape(-1)
    flat_dst = dst.reshape(-1)
    row_bytes = img.shape[1]
    for ox in range(ow):
        d0 = (oy * ow + ox) * kp
        for ky in range(kh):
            s0 = (oy * sh + ky * dh) * row_bytes + ox * sw * c
            dd = d0 + ky * run
            if dw == 1 and run >= 8:
                for i in range(0, run - 8, 8):
                    store8(flat_dst, dd + i, load8(flat_src, s0 + i))
                store8(flat_dst, dd + run - 8, load8(flat_src, s0 + run - 8))
            else:
                for kx in range(kw):
                    for ch in range(c):
                        flat_dst[dd + kx * c + ch] = flat_src[s0 + kx * dw * c + ch]
        for i in range(k, kp):
            flat_dst[d0 + i] = 0
