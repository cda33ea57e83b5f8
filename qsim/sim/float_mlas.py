"""Float kernels as onnxruntime's MLAS computes them on x86-64 (FMA3 / AVX-512 kernels), bit for bit:
the float parts of a quantized model decide the codes of the next DynamicQuantizeLinear, so a last-bit
difference there becomes a code difference. Every ``fma`` below is one fused multiply-add
(``qsim.numerics.requant_ref.fma_f32``), as the vector kernels issue them.

* ``erf``: MLAS ``MlasErfKernel`` (core/mlas/lib/erf.cpp; the FMA3 kernel issues the same sequence):
  below |x| = 0.921875 an odd polynomial in x^2; above, ``1 - exp(-p(|x|))`` with MLAS's exp
  (a power of two times a degree-6 polynomial), |x| clamped at 3.925.
* ``tanh_f32``: MLAS ``MlasComputeTanhF32KernelFma3`` (Eigen's rational approximation, tanh.cpp's
  constants): |x| clamped at 9, p(x^2) * x / q(x^2), every multiply-add fused.
"""
from __future__ import annotations

import numpy as np

from qsim.numerics.requant_ref import fma_f32 as fma
from qsim.sim.int_runtime import ort_float_lanes, ort_nchwc_block

f32 = np.float32
_ERF_SMALL = [f32(v) for v in (-5.99104969e-4, 4.99339588e-3, -2.67667342e-2, 1.12818025e-1, -3.76124859e-1,
                               1.28379151e-1)]
_ERF_BIG = [f32(v) for v in (1.72948930e-5, -3.83208680e-4, 3.88393435e-3, -2.42545605e-2, 1.06777847e-1,
                             6.34846687e-1, 1.28717512e-1)]
_EXP_P = [f32(v) for v in (1.38319808e-3, 8.37550033e-3, 4.16689515e-2, 1.66664466e-1, 4.99999851e-1, 1.0, 1.0)]
_EXP_LOWER, _LOG2E, _LOG2_HI, _LOG2_LO = f32(-88.3762626647949), f32(1.44269504088896341), f32(-6.93145752e-1), \
    f32(-1.42860677e-6)
_ROUNDER = f32(1.25829120e+7)  # 1.5 * 2**23: adding and subtracting it rounds to an integer (half to even)


def _horner(coeffs, x):
    y = np.full(x.shape, coeffs[0], np.float32)
    for c in coeffs[1:]:
        y = fma(y, x, c)
    return y


def erf(inputs, w, attrs) -> list:
    return [erf_f32(inputs[0])]


def erf_f32(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    sign = np.signbit(x)
    a = np.minimum(f32(3.925), np.abs(x))
    small = fma(_horner(_ERF_SMALL, (a * a).astype(np.float32)), a, a)
    big_a = np.where(a > f32(0.921875), a, f32(0))
    r_big = fma(_horner(_ERF_BIG, big_a), big_a, big_a)
    t = np.maximum(_EXP_LOWER, -r_big)
    r = (fma(_LOG2E, t, _ROUNDER) - _ROUNDER).astype(np.float32)
    fx = fma(r, _LOG2_LO, fma(r, _LOG2_HI, t))
    y = (_horner(_EXP_P, fx) * np.ldexp(f32(1), r.astype(np.int32)).astype(np.float32)).astype(np.float32)
    out = np.where(a > f32(0.921875), (f32(1) - y).astype(np.float32), small)
    return np.where(sign, -out, out).astype(np.float32)


_TANH_P = [f32(v) for v in (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11,
                            5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)]
_TANH_Q = [f32(v) for v in (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)]


def tanh_f32(x: np.ndarray) -> np.ndarray:
    """onnxruntime's float Tanh on x86-64 (numpy's tanh differed on 63 % of 700,011 values; this on
    none, infinities and 1e-40 included: onnxruntime 1.32 on an AVX2 host)."""
    v = np.minimum(f32(9), np.maximum(f32(-9), np.asarray(x, np.float32)))
    v2 = (v * v).astype(np.float32)
    p = (_horner(_TANH_P, v2) * v).astype(np.float32)
    return (p / _horner(_TANH_Q, v2)).astype(np.float32)


# -- exp / softmax: MlasComputeSoftmax with the AVX-512F kernels (compute.cpp, SoftmaxKernelAvx512F.S,
# TransKernelAvx512F.S): exp(x - max) by range reduction and a degree-6 polynomial, scaled by 2**m
# (vscalefps), summed in 16 lanes (lane l adds elements l, l + 16, l + 32, ... in order), the lanes
# reduced as (l, l + 8) pairs then two horizontal adds; the output is exp * fp32(1 / sum). Without
# AVX-512F (the FMA3 kernels) the sum runs in 8 lanes, reduced by the two horizontal adds alone
# (measured on an AVX2 host, rows of 7 to 384: tests/sim/test_dynamic_float_mlas.py). Infinities and
# all -inf rows match bit for bit; a NaN input makes its row all NaN as in onnxruntime, but the NaNs'
# sign bits can differ (MLAS's row max may hide the NaN: qsim's does not), which no code depends on.
_SM_LOWER = f32(-103.9720840454)
_SM_POLY = [f32(float.fromhex(h)) for h in ("0x1.694000p-10", "0x1.125edcp-7", "0x1.555b5ap-5", "0x1.555450p-3",
                                             "0x1.fffff6p-2", "0x1.000000p+0", "0x1.000000p+0")]


def _exp_scaled(t: np.ndarray, lanes: int = 16) -> np.ndarray:
    """exp(t) as the SumExp kernel computes it. AVX-512F scales by 2**m with vscalefps (gradual
    underflow, from -103.97); the FMA3 kernel (8 lanes) clamps at -88.376 and builds 2**m from the
    exponent bits (m + 127) << 23, which for m = -127 is +0.0: exp of t below about -87.68 is 0,
    where the 16-lane form gives a subnormal (1,036 of 76,800 softmax outputs of int8 codes at scales
    up to 0.4 were such subnormals, onnxruntime's 0; measured on an AVX2 host)."""
    t = np.maximum(_SM_LOWER if lanes == 16 else _EXP_LOWER, t)
    m = (fma(_LOG2E, t, _ROUNDER) - _ROUNDER).astype(np.float32)
    t = fma(m, _LOG2_LO, fma(m, _LOG2_HI, t))
    p = _horner(_SM_POLY, t)
    if lanes == 16:
        return np.ldexp(p, m.astype(np.int32)).astype(np.float32)
    return np.where(m < -126, f32(0), np.ldexp(p, np.maximum(m, -126).astype(np.int32))).astype(np.float32)


def _lane_sum(e: np.ndarray, lanes: int) -> np.ndarray:
    """The kernel's sum of the last axis in 16 (AVX-512F) or 8 lanes (see above)."""
    d = e.shape[-1]
    padded = np.zeros(e.shape[:-1] + (-(-d // lanes) * lanes,), np.float32)
    padded[..., :d] = e
    chunks = padded.reshape(e.shape[:-1] + (-1, lanes))
    acc = np.zeros(e.shape[:-1] + (lanes,), np.float32)
    for k in range(chunks.shape[-2]):
        acc = (acc + chunks[..., k, :]).astype(np.float32)
    a = (acc[..., :8] + acc[..., 8:]).astype(np.float32) if lanes == 16 else acc
    h1 = (a[..., 0::2] + a[..., 1::2]).astype(np.float32)  # (a0+a1, a2+a3, a4+a5, a6+a7)
    h2 = (h1[..., 0::2] + h1[..., 1::2]).astype(np.float32)  # ((a0+a1)+(a2+a3), (a4+a5)+(a6+a7))
    return (h2[..., 0] + h2[..., 1]).astype(np.float32)


# Rows of up to 16 elements sum alike in 8 and 16 lanes: each lane adds at most one element to 0,
# and the 16-lane (l, l + 8) pairs are the sums the 8-lane kernel forms in its second pass; the
# horizontal adds then match. Only a longer softmax axis lets the lane count change a result.
_LANE_FREE_ROW = 16


def lane_dependent(graph) -> bool:
    """Whether a float run of ``graph`` (the fp32 reference of an accuracy measurement, the
    calibration run, a plan's float islands) can change with ``ort_float_lanes``: the graph has a
    node whose float kernel is this softmax over an axis longer than 16 elements (or of unknown
    length), or an average pool over a channel count that is a multiple of 8 but not of 16 (onnxruntime
    takes its NCHWc pool, whose order differs, where the channels fill its blocks: 8 with AVX2, 16
    with AVX-512F; ``float_pool``, ``global_avgpool``). Every other float kernel here is lane-free
    (erf: elementwise; matmul: one FMA chain per output). Left aside: a row of at most 16 whose
    logits span more than ~87.7, where the 8-lane exp gives 0 and the 16-lane one a subnormal."""
    from qsim.ir.registry import OPS, sim_kernel

    kernel = sim_kernel("float_mlas.softmax")
    for node in graph.nodes():
        shape = tuple(graph.tensor(node.inputs[0]).shape) if node.inputs else ()
        if node.op in ("AvgPool", "GlobalAvgPool") and len(shape) == 4:
            c = shape[1]
            if not isinstance(c, (int, np.integer)) or (c % 8 == 0 and c % 16):
                return True
        op = OPS.get(node.op)
        if op is None or op.float_kernel != kernel:
            continue
        d = shape[int(node.attrs.get("axis", -1))] if shape else 1
        if not isinstance(d, (int, np.integer)) or d > _LANE_FREE_ROW:
            return True
    return False


def float_lanes_tag(graph, cpu: str | None = None) -> int | None:
    """The MLAS float lanes a float run of ``graph`` depends on (``ort_float_lanes(cpu)``), or None
    where it cannot depend on them (``lane_dependent``). Accuracy keys hold it under every policy:
    the fp32 reference and the calibration run these kernels whatever policy the integer part follows."""
    return ort_float_lanes(cpu) if lane_dependent(graph) else None


def softmax(inputs, w, attrs) -> list:
    x = np.asarray(inputs[0], np.float32)
    axis = int(attrs.get("axis", -1)) % max(x.ndim, 1)
    x = np.moveaxis(x, axis, -1)
    lanes = ort_float_lanes()
    e = _exp_scaled((x + (-x.max(axis=-1, keepdims=True))).astype(np.float32), lanes)
    scale = (f32(1) / _lane_sum(e, lanes)).astype(np.float32)
    return [np.moveaxis((e * scale[..., None]).astype(np.float32), -1, axis)]


# -- MatMul: MLAS SGEMM (SgemmKernelAvx512F / Fma3): each output is a chain of fused multiply-adds
# over k in order, from 0: measured equal for K <= 1024 (larger K is split into passes, and M = 1 takes
# a GEMV kernel: numpy order there).
_STRIDE_K = 1024
_EXACT_MACS = 2 ** 26  # larger products take numpy's (BLAS) order: the emulation costs ~10 numpy ops per k


def matmul(inputs, w, attrs) -> list:
    a, b = (np.asarray(v, np.float32) for v in inputs[:2])
    if attrs.get("ort_sgemm"):  # an onnxruntime float QDQ MatMul unit (int_float.float_island)
        return [_alpha(_ort_matmul(a, b), attrs)]
    if a.ndim < 2 or b.ndim < 2 or a.shape[-2] == 1 or a.shape[-1] > _STRIDE_K:  # not MLAS's SGEMM order
        return [_alpha(np.matmul(a, b), attrs)]
    acc = np.zeros(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1]), np.float32)
    if acc.size * a.shape[-1] > _EXACT_MACS:
        return [_alpha(np.matmul(a, b), attrs)]
    for k in range(a.shape[-1]):
        acc = fma(a[..., :, k:k + 1], b[..., k:k + 1, :], acc)
    return [_alpha(acc, attrs)]


def _ort_matmul(a, b):
    """onnxruntime's float MatMul of two activations (matmul.cc: MlasGemmBatch over the batch slices) in
    MLAS's SGEMM order (``float_mlas_gemm.batched``)."""
    from qsim.sim.float_mlas_gemm import batched, session_threads

    return batched(a, b, session_threads("MatMul"))


def _alpha(y: np.ndarray, attrs) -> np.ndarray:
    """onnxruntime's FusedMatMul scales the finished product by alpha (the kernel's output stage)."""
    alpha = attrs.get("alpha")
    return y if alpha is None else (y * f32(alpha)).astype(np.float32)


# -- GlobalAveragePool: onnxruntime's float pool, measured on an AVX2 host against onnxruntime 1.32
# (tests/golden/test_float_gap_order.py; found by the differential long run on MobileNetV3-small, whose
# squeeze-excitation pool quantize_static's QOperator format leaves in float: numpy's pairwise mean
# put codes on the other side of a .5 boundary). Where the NCHWc transformer takes the pool (ORT_ENABLE_ALL,
# 4-D, channels a multiple of its block, reading a graph input: the importer's ``graph_input``) each
# channel is summed in pixel order; elsewhere MLAS's
# MlasPoolGlobalKernel sums four fp32 lanes (lane j adds pixels j, j + 4, ...), reduces them as
# (l0 + l2) + (l1 + l3) and adds the remaining pixels one by one. Then the sum / the window size.
# (arm64's lane reduction follows MLAS's NEON source, unmeasured.)
def global_avgpool(inputs, w, attrs) -> list:
    x = np.asarray(inputs[0], np.float32)
    rows = x.reshape(x.shape[0] * x.shape[1], -1)
    size = rows.shape[1]
    block = ort_nchwc_block()
    if size == 0:
        s = np.zeros(rows.shape[0], f32)
    elif attrs.get("graph_input") and x.ndim == 4 and block and x.shape[1] % block == 0:
        s = np.add.accumulate(rows, axis=1, dtype=f32)[:, -1]  # accumulate rounds each partial sum to fp32
    else:
        full = size // 4 * 4
        lanes = np.add.accumulate(rows[:, :full].reshape(rows.shape[0], -1, 4), axis=1, dtype=f32)[:, -1] \
            if full else np.zeros((rows.shape[0], 4), f32)
        s = ((lanes[:, 0] + lanes[:, 2]).astype(f32) + (lanes[:, 1] + lanes[:, 3]).astype(f32)).astype(f32)
        for k in range(full, size):
            s = (s + rows[:, k]).astype(f32)
    mean = (s / f32(size)).astype(f32) if size else s
    return [mean.reshape(x.shape[:2] + (1,) * (x.ndim - 2))]
