"""Numpy reference kernels: the executable specification of qsim's integer arithmetic.

Plain and slow on purpose; `qsim.kernels.jit` has the same signatures and must return identical
arrays. Shared conventions (documented once here):

Accumulation. Every product is formed exactly, `(x - x_zp) * (w - w_zp)`, and summed in int64.
Saturating accumulators are order-dependent, so the order is part of the spec:
    conv2d: acc = bias; then for c in the group's input channels, for ky in kh, for kx in kw:
            acc = clamp(acc + product)
    matmul: acc = bias; then for k ascending: acc = clamp(acc + product)
The bias itself is clamped first when it does not fit the accumulator.
Padded taps contribute 0 (the pad value is x_zp); skipping them cannot change a clamped sum.

Overflow events (the returned count), one unit for both modes: the number of OUTPUTS affected.
    wrap:     outputs whose exact sum (bias + all products) lies outside the acc_bits range, i.e.
              whose stored value differs from the mathematical one. Intermediate excursions that come
              back into range are not counted: wraparound is exact modulo 2^acc_bits, so they leave
              no trace in the result.
    saturate: outputs at which at least one clamp happened (the bias clamp included).
The returned accumulator is int64 holding the value the target's acc_bits register holds.
"""
from __future__ import annotations

import numpy as np

from qsim.kernels._common import (KernelInputError, bias_vector, check_acc, check_int_array,
                                  conv_geometry, matmul_out_shape, matmul_shapes, pool_geometry,
                                  zero_point, zp_in_range)
from qsim.numerics.formats import Rounding
from qsim.numerics.rounding import wrap

ROUNDINGS = (Rounding.HALF_AWAY, Rounding.HALF_EVEN, Rounding.HALF_UP, Rounding.FLOOR)
"""Average-pool roundings of sum/count (``Rounding`` members; their names are accepted too):
half_away  LiteRT/TFLite reference AveragePool (uint8 `(acc + n/2) / n`; int8 the same mirrored for
           negative sums) and CMSIS-NN arm_avgpool_s8;
half_even  integer sum / count rounded half to even. Close to, but NOT bit-exact with, onnxruntime
           QLinearAveragePool, which dequantizes, averages in fp32 and rounds ``y/s + zp`` with
           the zero point added before rounding (qsim.sim.int_ops implements that formula);
half_up    floor((2*sum + n) / (2*n)), round-half-toward-+inf hardware;
floor      a shift/truncating divider (floor toward -inf)."""


def pool_rounding(rounding) -> Rounding:
    """The average-pool rounding as a ``Rounding`` (a name is converted here, where it enters)."""
    mode = next((r for r in ROUNDINGS if r == rounding), None)
    if mode is None:
        raise KernelInputError(f"rounding must be one of {[r.value for r in ROUNDINGS]}, got {rounding!r}")
    return mode


def _finish(exact: np.ndarray, acc_bits: int, lo: int, hi: int) -> tuple[np.ndarray, int]:
    count = int(np.count_nonzero((exact < lo) | (exact > hi)))
    return wrap(exact, acc_bits), count


def _accumulate(terms, acc0: np.ndarray, lo: int, hi: int, saturate: bool):
    """Sum an iterable of int64 term arrays onto acc0 in iteration order (see module doc)."""
    if not saturate:
        acc = acc0.copy()
        for t in terms:
            acc += t
        return acc, None
    clamped = (acc0 < lo) | (acc0 > hi)
    acc = np.clip(acc0, lo, hi)
    for t in terms:
        acc = acc + t
        clamped |= (acc < lo) | (acc > hi)
        np.clip(acc, lo, hi, out=acc)
    return acc, int(np.count_nonzero(clamped))


def conv2d_acc(x, w, x_zp, w_zp, bias, stride, pads, dilation, groups, acc_bits=32,
               overflow="wrap"):
    """Integer 2-D convolution accumulator (ONNX ConvInteger semantics plus bias).

    x (N, C, H, W) integer; w (M, C/groups, kh, kw) integer; x_zp scalar; w_zp scalar or (M,);
    bias int (M,) or None; stride (sh, sw); pads (top, left, bottom, right); dilation (dh, dw).
    Returns (acc int64 (N, M, OH, OW), overflow_count).
    """
    x, w = check_int_array("x", x), check_int_array("w", w)
    g = conv_geometry(x, w, stride, pads, dilation, groups)
    lo, hi, saturate = check_acc(acc_bits, overflow)
    xz = int(zero_point("x_zp", x_zp, None)[0])
    wz = zero_point("w_zp", w_zp, g.m)
    b = bias_vector(bias, g.m)
    pt, pl, pb, pr = g.pads
    xs = np.pad(x.astype(np.int64) - xz, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    ws = w.astype(np.int64) - wz[:, None, None, None]
    (sh, sw), (dh, dw) = g.stride, g.dilation
    # Input channel c of output channel m's group: (m // mg) * cg + c.
    group_base = (np.arange(g.m) // g.mg) * g.cg

    def terms():
        for c in range(g.cg):
            xc = xs[:, group_base + c]                          # (N, M, Hp, Wp)
            for ky in range(g.kh):
                for kx in range(g.kw):
                    patch = xc[:, :, ky * dh: ky * dh + sh * (g.oh - 1) + 1: sh,
                               kx * dw: kx * dw + sw * (g.ow - 1) + 1: sw]
                    yield patch * ws[None, :, c, ky, kx, None, None]

    acc0 = np.broadcast_to(b[None, :, None, None], (g.n, g.m, g.oh, g.ow))
    acc, count = _accumulate(terms(), acc0, lo, hi, saturate)
    return (acc, count) if saturate else _finish(acc, acc_bits, lo, hi)


def matmul_acc(a, b, a_zp, b_zp, bias=None, acc_bits=32, overflow="wrap"):
    """Integer matmul accumulator (ONNX MatMulInteger semantics plus bias).

    a (..., M, K), b (..., K, N) integer with numpy.matmul broadcasting and 1-D promotion;
    a_zp scalar; b_zp scalar or per column (N,); bias int (N,) or None.
    Returns (acc int64 of the numpy.matmul result shape, overflow_count).
    """
    a, b = check_int_array("a", a), check_int_array("b", b)
    lo, hi, saturate = check_acc(acc_bits, overflow)
    a3, b3, batch, sq_m, sq_n = matmul_shapes(a, b)
    n = b3.shape[2]
    az = int(zero_point("a_zp", a_zp, None)[0])
    bz = zero_point("b_zp", b_zp, n)
    bv = bias_vector(bias, n)
    as_ = a3.astype(np.int64) - az
    bs = b3.astype(np.int64) - bz
    acc0 = np.broadcast_to(bv, (a3.shape[0], a3.shape[1], n))
    if saturate:
        terms = (as_[:, :, k, None] * bs[:, None, k, :] for k in range(a3.shape[2]))
        acc, count = _accumulate(terms, acc0, lo, hi, True)
    else:
        acc, count = _finish(acc0 + np.matmul(as_, bs), acc_bits, lo, hi)
    return acc.reshape(matmul_out_shape(batch, a3.shape[1], n, sq_m, sq_n)), count


def _windows(xp: np.ndarray, kh, kw, sh, sw, oh, ow):
    for ky in range(kh):
        for kx in range(kw):
            yield xp[:, :, ky: ky + sh * (oh - 1) + 1: sh, kx: kx + sw * (ow - 1) + 1: sw]


def maxpool2d(x, kernel, stride, pads, ceil_mode=False):
    """Max pool over NCHW integers; padding never wins (ONNX MaxPool). Returns x's dtype."""
    x = check_int_array("x", x)
    kh, kw, sh, sw, pt, pl, pb, pr, oh, ow = pool_geometry(x, kernel, stride, pads, ceil_mode)
    # Extra bottom/right room for ceil_mode windows that run past the stated padding.
    eb = max(0, (oh - 1) * sh + kh - (x.shape[2] + pt + pb))
    er = max(0, (ow - 1) * sw + kw - (x.shape[3] + pl + pr))
    lowest = np.iinfo(np.int64).min
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (pt, pb + eb), (pl, pr + er)),
                constant_values=lowest)
    return np.max(np.stack(list(_windows(xp, kh, kw, sh, sw, oh, ow))), axis=0).astype(x.dtype)


def round_div(t: np.ndarray, n: np.ndarray, rounding: Rounding) -> np.ndarray:
    """Integer t / n (n > 0) rounded as named in ROUNDINGS."""
    rounding = pool_rounding(rounding)
    if rounding is Rounding.FLOOR:
        return t // n
    if rounding is Rounding.HALF_UP:
        return (2 * t + n) // (2 * n)
    if rounding is Rounding.HALF_AWAY:
        return np.sign(t) * ((2 * np.abs(t) + n) // (2 * n))
    q, r = np.divmod(t, n)  # HALF_EVEN
    return q + ((2 * r > n) | ((2 * r == n) & (q % 2 == 1)))


def avgpool2d(x, kernel, stride, pads, count_include_pad, rounding, x_zp=0):
    """Average pool over NCHW integers with an exact integer sum and the named rounding.

    count_include_pad: sum = the window's values with padded cells holding x_zp (real value 0),
    count = kh*kw. Otherwise padded cells are left out of both sum and count. Returns round(sum / count)
    in x's dtype. See ROUNDINGS for which runtime each rounding matches.
    """
    x = check_int_array("x", x)
    rounding = pool_rounding(rounding)
    kh, kw, sh, sw, pt, pl, pb, pr, oh, ow = pool_geometry(x, kernel, stride, pads, False)
    xz = zp_in_range("x_zp", int(zero_point("x_zp", x_zp, None)[0]), x.dtype)
    padw = ((0, 0), (0, 0), (pt, pb), (pl, pr))
    xp = np.pad(x.astype(np.int64), padw, constant_values=xz if count_include_pad else 0)
    total = sum(_windows(xp, kh, kw, sh, sw, oh, ow))
    if count_include_pad:
        count = np.full_like(total, kh * kw)
    else:
        valid = np.pad(np.ones((1, 1) + x.shape[2:], dtype=np.int64), padw)
        count = np.broadcast_to(sum(_windows(valid, kh, kw, sh, sw, oh, ow)), total.shape)
    return round_div(total, count, rounding).astype(x.dtype)
