"""Numba kernels with the signatures and results of `qsim.kernels.reference` (see its module doc
for accumulation order and the overflow-count definition).

Dispatch, per call:
  * wrap mode, 8-bit x and w, CPU with avx512_vnni, K <= vnni.MAX_K and >= vnni_ops.MIN_COLS
    output channels per group: the vpdpbusd core (`vnni`, `vnni_ops`); wraparound after an exact
    int32 sum is order-independent, so this is bit-exact with the sequential spec;
  * wrap-mode matmul otherwise: float BLAS (float32 or float64), exact while the bound on the sum
    of products stays below 2^24 / 2^53;
  * otherwise the portable sequential kernels (`portable`), which serve saturate mode, other
    convolutions (int16, depthwise/narrow groups, CPUs without VNNI). Their working width is
    int32 when a bound on the exact sum allows it, else int64.
"""
from __future__ import annotations

import numpy as np

from qsim.kernels import pool, portable, vnni_ops
from qsim.kernels._common import (bias_vector, check_acc, check_int_array, serial_below,
                                  conv_geometry, matmul_out_shape, matmul_shapes, pool_geometry,
                                  zero_point, zp_in_range)
from qsim.kernels.reference import pool_rounding

I32_LIMIT = 2**31 - 1


def value_span(dtype, zp: np.ndarray) -> int:
    """Largest |v - zp| over the dtype's values and the given zero points."""
    info = np.iinfo(dtype)
    zmin, zmax = (int(zp[0]), int(zp[0])) if zp.size == 1 else (int(zp.min()), int(zp.max()))
    return max(abs(info.min - zmin), abs(info.max - zmin), abs(info.min - zmax), abs(info.max - zmax))


def sum_bound(k: int, xspan: int, wspan: int, bias: np.ndarray) -> int:
    """An upper bound on |exact sum| of any output, partial sums included."""
    return k * xspan * wspan + int(np.max(np.abs(bias), initial=0))


def _work_dtype(bound: int, acc_bits: int, saturate: bool):
    """int32 when every value the sequential kernel stores fits, else int64."""
    if saturate:
        return np.int32 if acc_bits <= 32 else np.int64
    return np.int32 if bound <= I32_LIMIT else np.int64


# Integers below these magnitudes are exact in the float type, and so is every partial sum of a
# dot product whose absolute bound is below them, in any order BLAS chooses.
_FLOAT_EXACT = {np.float32: 2**24, np.float64: 2**53}


def _matmul_float(a3, b3, az, bz, bias, acc_bits, lo, hi, products):
    """Wrap-mode matmul through float BLAS, exact because |sum of products| < 2^mantissa: the
    fallback when the VNNI core does not apply (no avx512_vnni, 16-bit inputs, long K)."""
    ft = np.float32 if products < _FLOAT_EXACT[np.float32] else np.float64
    af = a3.astype(ft)
    af -= az
    bf = b3.astype(ft)
    bf -= bz.astype(ft)
    exact = np.matmul(af, bf).astype(np.int64)
    exact += bias
    out = np.empty(exact.shape, dtype=np.int64)
    return out, int(portable.wrap_count(exact, acc_bits, lo, hi, out))


def _canonical(x: np.ndarray) -> np.ndarray:
    """Inputs as int16 (8/16-bit signed, 8-bit unsigned) or int32 (uint16): one compiled
    specialization per width instead of one per dtype, which keeps cold-start compiles short."""
    return np.ascontiguousarray(x, dtype=np.int32 if x.dtype == np.uint16 else np.int16)


def _finish(work: np.ndarray, counts: np.ndarray, acc_bits: int, lo: int, hi: int, saturate: bool):
    if saturate:
        return work.astype(np.int64), int(counts.sum())
    out = np.empty(work.shape, dtype=np.int64)
    return out, int(portable.wrap_count(work, acc_bits, lo, hi, out))


# Below this many MACs a kernel runs on one thread: waking worker threads costs more than the work
# saves. (bench_kernels.py, 2 cores: a 1x4096x4096 GEMV took 0.30 ms on 1 thread, 0.19 ms on 2 with
# spinning OpenMP workers, 0.48 ms on 2 with OMP_WAIT_POLICY=PASSIVE.)
SERIAL_MACS = 1 << 22


# The depthwise kernel runs ~30x fewer MACs per second than the VNNI core (int32 lanes, no dot
# product instruction): its threshold is that much lower (2^20 MACs: ~0.1 ms on one thread).
SERIAL_DEPTHWISE_MACS = 1 << 20


def _threads_for(macs: int, limit: int = SERIAL_MACS):
    return serial_below(macs, limit)


def conv2d_acc(x, w, x_zp, w_zp, bias, stride, pads, dilation, groups, acc_bits=32,
               overflow="wrap"):
    """Integer 2-D convolution accumulator; see `qsim.kernels.reference.conv2d_acc`."""
    x, w = check_int_array("x", x), check_int_array("w", w)
    g = conv_geometry(x, w, stride, pads, dilation, groups)
    with _threads_for(x.shape[0] * g.m * g.oh * g.ow * g.cg * g.kh * g.kw):
        return _conv2d_acc(x, w, g, x_zp, w_zp, bias, acc_bits, overflow)


def conv2d_requant(x, w, x_zp, w_zp, bias, stride, pads, dilation, groups, acc_bits, requant):
    """``conv2d_acc`` in wrap mode followed by a requantization, fused into the epilogue of the
    VNNI core or of the channels-last depthwise kernel (``depthwise``, one channel per group):
    ``requant = (requant_jit.requant_spec(...), output dtype)``. Returns (output, overflow events),
    the output an NCHW view of channels-last data; or None where neither kernel applies (the
    caller then runs ``conv2d_acc`` and requantizes apart: the same bits).

    What the call derives from its weights and parameters (checks, geometry, packed weights,
    epilogue terms) is planned once and kept beside the packed weights when w is read-only
    (``vnni_ops.cached``): a node run again pays only its kernels."""
    x, w = check_int_array("x", x), check_int_array("w", w)
    spec = requant[0]
    key = ("requant", x.shape, x.dtype.str, _key(stride), _key(pads), _key(dilation), _key(groups), _key(x_zp),
           _key(w_zp), _key(bias), int(acc_bits), np.dtype(requant[1]).str, spec[0], _key(spec[1]), spec[9:12])
    plan = vnni_ops.cached(w, key, lambda: _requant_plan(x, w, x_zp, w_zp, bias, stride, pads, dilation, groups,
                                                         acc_bits, requant))
    if plan is None:
        return None
    with serial_below(plan[1], plan[2]):
        return plan[0](x, requant)


def _key(v):
    """A hashable stand-in for a call argument (arrays by dtype, shape and bytes)."""
    if v is None or isinstance(v, (int, str)):
        return v
    a = np.asarray(v)
    return a.dtype.str, a.shape, a.tobytes()


def _requant_plan(x, w, x_zp, w_zp, bias, stride, pads, dilation, groups, acc_bits, requant):
    """(run(x, requant), work, serial limit) for ``conv2d_requant``, or None where no fused kernel
    applies. Bad arguments raise here, with the messages of ``conv2d_acc``."""
    g = conv_geometry(x, w, stride, pads, dilation, groups)
    xz = int(zero_point("x_zp", x_zp, None)[0])
    lo, hi, _ = check_acc(acc_bits, "wrap")
    wz = zero_point("w_zp", w_zp, g.m)
    b = bias_vector(bias, g.m)
    bound = sum_bound(g.cg * g.kh * g.kw, value_span(x.dtype, np.array([xz])), value_span(w.dtype, wz), b)
    if g.cg == 1 and g.mg == 1:
        work = x.shape[0] * g.m * g.oh * g.ow * g.kh * g.kw
        return _depthwise_plan(w, g, xz, wz, b, bound, acc_bits, lo, hi), work, SERIAL_DEPTHWISE_MACS
    if g.mg < vnni_ops.MIN_COLS or not vnni_ops.usable(x.dtype, w.dtype, g.cg * g.kh * g.kw, xz):
        return None
    plan = vnni_ops.plan_conv(w, x.dtype, xz, wz, b, g, acc_bits, lo, hi, bound > hi, requant)
    return (lambda xx, rq: vnni_ops.run_planned(plan, xx, rq)), x.shape[0] * g.m * g.oh * g.ow * g.cg * g.kh * g.kw, \
        SERIAL_MACS


def _depthwise_plan(w, g, xz, wz, b, bound, acc_bits, lo, hi):
    """The run function of a depthwise conv (multiplier 1) channels-last with its requantization
    (``depthwise``); the output is an NCHW view of channels-last data, as the VNNI conv returns it."""
    dt = np.int32 if bound <= I32_LIMIT else np.int64   # 16 lanes per vector where the sums fit
    from qsim.kernels import depthwise  # here: a model without depthwise convs does not import it (cold start)

    ws = depthwise_weights(w, wz, dt)
    bd = b.astype(dt)
    (sh, sw), (dh, dw) = g.stride, g.dilation

    def run(x, requant):
        xh = x.transpose(0, 2, 3, 1)
        if not xh.flags.c_contiguous:          # a fused conv's output is channels-last already: no copy
            xh = np.ascontiguousarray(xh)
        out = np.empty((g.n, g.oh, g.ow, g.m), dtype=requant[1])
        count = depthwise.depthwise_nhwc(xh, xz, ws, bd, sh, sw, dh, dw, g.pads[0], g.pads[1], acc_bits, lo, hi,
                                         bound > hi, requant[0], out)
        return out.transpose(0, 3, 1, 2), int(count)

    return run


def depthwise_weights(w, wz, dt) -> np.ndarray:
    """(kh, kw, C) weights less their zero points, in the working type."""
    return np.ascontiguousarray((w[:, 0].astype(np.int64) - wz[:, None, None]).transpose(1, 2, 0)).astype(dt)


def _conv2d_acc(x, w, g, x_zp, w_zp, bias, acc_bits, overflow, requant=None):
    """conv2d_acc on checked arrays and their geometry."""
    lo, hi, saturate = check_acc(acc_bits, overflow)
    xz = int(zero_point("x_zp", x_zp, None)[0])
    wz = zero_point("w_zp", w_zp, g.m)
    b = bias_vector(bias, g.m)
    k = g.cg * g.kh * g.kw
    bound = sum_bound(k, value_span(x.dtype, np.array([xz])), value_span(w.dtype, wz), b)
    if not saturate and g.mg >= vnni_ops.MIN_COLS and vnni_ops.usable(x.dtype, w.dtype, k, xz):
        return vnni_ops.conv(x, w, xz, wz, b, g, acc_bits, lo, hi, checked=bound > hi, requant=requant)
    dt = _work_dtype(bound, acc_bits, saturate)
    ws = (w.astype(np.int64) - wz[:, None, None, None]).astype(dt)
    hit = ((b < lo) | (b > hi)) if saturate else np.zeros(g.m, dtype=np.bool_)
    bb = (np.clip(b, lo, hi) if saturate else b).astype(dt)
    out = np.empty((g.n, g.m, g.oh, g.ow), dtype=np.int64)
    (sh, sw), (dh, dw) = g.stride, g.dilation
    counts = portable.conv_seq(_canonical(x), xz, ws, bb, hit, sh, sw, dh, dw, g.pads[0],
                               g.pads[1], acc_bits, lo, hi, saturate, bound > hi, out)
    return out, int(counts.sum())


def matmul_acc(a, b, a_zp, b_zp, bias=None, acc_bits=32, overflow="wrap"):
    """Integer matmul accumulator; see `qsim.kernels.reference.matmul_acc`."""
    a, b = check_int_array("a", a), check_int_array("b", b)
    shapes = matmul_shapes(a, b)
    a3, b3 = shapes[0], shapes[1]
    with _threads_for(a3.shape[0] * a3.shape[1] * a3.shape[2] * b3.shape[2]):
        return _matmul_acc(a, b, shapes, a_zp, b_zp, bias, acc_bits, overflow)


def matmul_requant(a, b, a_zp, b_zp, bias, acc_bits, requant):
    """``matmul_acc`` in wrap mode with the requantization fused into the VNNI epilogue (see
    ``conv2d_requant``); None where the VNNI core does not apply."""
    a, b = check_int_array("a", a), check_int_array("b", b)
    shapes = matmul_shapes(a, b)
    a3, b3 = shapes[0], shapes[1]
    if not vnni_ops.usable(a.dtype, b.dtype, a3.shape[2], int(zero_point("a_zp", a_zp, None)[0])):
        return None
    with _threads_for(a3.shape[0] * a3.shape[1] * a3.shape[2] * b3.shape[2]):
        return _matmul_acc(a, b, shapes, a_zp, b_zp, bias, acc_bits, "wrap", requant)


def _matmul_acc(a, b, shapes, a_zp, b_zp, bias, acc_bits, overflow, requant=None):
    """matmul_acc on checked arrays and their ``matmul_shapes``."""
    lo, hi, saturate = check_acc(acc_bits, overflow)
    a3, b3, batch, sq_m, sq_n = shapes
    nb, m, k = a3.shape
    n = b3.shape[2]
    az = int(zero_point("a_zp", a_zp, None)[0])
    bz = zero_point("b_zp", b_zp, n)
    bv = bias_vector(bias, n)
    shape = matmul_out_shape(batch, m, n, sq_m, sq_n)
    products = sum_bound(k, value_span(a.dtype, np.array([az])), value_span(b.dtype, bz), np.zeros(0))
    bound = products + int(np.max(np.abs(bv), initial=0))
    if not saturate and vnni_ops.usable(a.dtype, b.dtype, k, az):
        acc, count = vnni_ops.matmul(a3, b3, b if b.ndim > 1 else b[:, None], az, bz, bv,
                                     acc_bits, lo, hi, checked=bound > hi, requant=requant)
        return acc.reshape(shape), count
    if not saturate and products < _FLOAT_EXACT[np.float64]:
        acc, count = _matmul_float(a3, b3, az, bz, bv, acc_bits, lo, hi, products)
        return acc.reshape(shape), count
    dt = _work_dtype(bound, acc_bits, saturate)
    as_ = (a3.astype(np.int64) - az).astype(dt)
    bs = (b3.astype(np.int64) - bz).astype(dt)
    hit = ((bv < lo) | (bv > hi)) if saturate else np.zeros(n, dtype=np.bool_)
    bb = (np.clip(bv, lo, hi) if saturate else bv).astype(dt)
    work = np.empty((nb, m, n), dtype=dt)
    counts = portable.matmul_seq(as_, bs, bb, hit, lo, hi, saturate, work)
    acc, count = _finish(work, counts, acc_bits, lo, hi, saturate)
    return acc.reshape(shape), count


# Pools read each input cell about once per output cell: below this many window reads a pool runs on
# one thread (2^20: ~0.1-0.2 ms on one thread).
SERIAL_POOL = 1 << 20


def maxpool2d(x, kernel, stride, pads, ceil_mode=False):
    """Max pool over NCHW integers; see `qsim.kernels.reference.maxpool2d`. Channels-last data (an
    NCHW view of NHWC memory, as the fused convolutions return it) is pooled and returned so."""
    x = check_int_array("x", x)
    kh, kw, sh, sw, pt, pl, _, _, oh, ow = pool_geometry(x, kernel, stride, pads, ceil_mode)
    xh = x.transpose(0, 2, 3, 1)
    with serial_below(x.shape[0] * x.shape[1] * oh * ow * kh * kw, SERIAL_POOL):
        if xh.flags.c_contiguous and x.shape[1] > 1:  # channels-last data: stays so
            out = np.empty((x.shape[0], oh, ow, x.shape[1]), dtype=x.dtype)
            portable.maxpool_nhwc(xh, kh, kw, sh, sw, pt, pl, out)
            return out.transpose(0, 3, 1, 2)
        out = np.empty(x.shape[:2] + (oh, ow), dtype=np.int32)
        portable.maxpool(_canonical(x), kh, kw, sh, sw, pt, pl, oh, ow, out)
    return out.astype(x.dtype)


def avgpool2d(x, kernel, stride, pads, count_include_pad, rounding, x_zp=0):
    """Average pool over NCHW integers; see `qsim.kernels.reference.avgpool2d` and ROUNDINGS.
    Channels-last data is pooled channels-last (``pool.avgpool_nhwc``) and returned so."""
    x = check_int_array("x", x)
    rounding = pool_rounding(rounding)
    kh, kw, sh, sw, pt, pl, _, _, oh, ow = pool_geometry(x, kernel, stride, pads, False)
    xz = zp_in_range("x_zp", int(zero_point("x_zp", x_zp, None)[0]), x.dtype)
    xh = x.transpose(0, 2, 3, 1)
    with serial_below(x.shape[0] * x.shape[1] * oh * ow * kh * kw, SERIAL_POOL):
        if xh.flags.c_contiguous and x.shape[1] > 1:
            out = np.empty((x.shape[0], oh, ow, x.shape[1]), dtype=x.dtype)
            # int32 sums where a whole window of extreme values fits them (16 lanes, not 8)
            acc = np.zeros(1, np.int32 if kh * kw * 65536 < I32_LIMIT else np.int64)
            pool.avgpool_nhwc(xh, xz, kh, kw, sh, sw, pt, pl, bool(count_include_pad),
                              portable.ROUNDING_CODES[rounding], acc, out)
            return out.transpose(0, 3, 1, 2)    # an average lies between the values (and x_zp) it averages
        out = np.empty(x.shape[:2] + (oh, ow), dtype=np.int32)
        portable.avgpool(_canonical(x), xz, kh, kw, sh, sw, pt, pl, oh, ow,
                         bool(count_include_pad), portable.ROUNDING_CODES[rounding], out)
    return out.astype(x.dtype)     # an average lies between the values (and x_zp) it averages
