"""Elementwise integer kernels with requantization: numpy references (``elementwise_jit`` has the
numba twins, same signatures). Each function says which runtime it is bit-exact with and how that
was checked (tests/golden/test_policy_elementwise.py builds the LiteRT models).

Inputs are integer arrays (int8 unless said), outputs int64 arrays already clamped to [qmin, qmax].
Scales are float32 values as stored in the model; zero points are ints.
"""
from __future__ import annotations

import math
from functools import partial

import numpy as np

from qsim.kernels.elementwise_libm import tanhf_array
from qsim.numerics.formats import Rounding
from qsim.numerics.multipliers import quantize_multiplier
from qsim.numerics.requant_ref import multiply_by_quantized_multiplier as _mbqm
from qsim.numerics.rounding import round_to_int

_F32 = np.float32


def tflite_add_params(s1, s2, s_out, left_shift: int = 20) -> np.ndarray:
    """TFLite ``PrepareGeneralSubOp``/``PrepareAdd`` (int8/uint8: left_shift 20; int16: 15):
    ``twice_max = 2 * max(s1, s2)`` in double; input multipliers ``s_i / twice_max``, output
    multiplier ``twice_max / (2^left_shift * s_out)``, each through QuantizeMultiplier.
    Returns int64 [q1, shift1, q2, shift2, q_out, shift_out, left_shift]."""
    s1, s2, so = (float(_F32(v)) for v in (s1, s2, s_out))
    twice_max = 2.0 * max(s1, s2)
    q1, e1 = quantize_multiplier(s1 / twice_max)
    q2, e2 = quantize_multiplier(s2 / twice_max)
    qo, eo = quantize_multiplier(twice_max / ((1 << left_shift) * so))
    return np.array([q1[0], e1[0], q2[0], e2[0], qo[0], eo[0], left_shift], np.int64)


def _single(x, q, shift):
    """TFLITE_SINGLE_ROUNDING MultiplyByQuantizedMultiplier: (x*q + 2^(30-shift)) >> (31-shift)."""
    total = 31 - np.asarray(shift, np.int64)
    return (np.asarray(x, np.int64) * q + (np.int64(1) << (total - 1))) >> total


def add_tflite(x1, x2, s1, zp1, s2, zp2, s_out, zp_out, qmin=-128, qmax=127, left_shift=20,
               kernels: str = "reference"):
    """TFLite/LiteRT int8 ADD: shift each offset input left by ``left_shift``, scale it with its own
    Q31 multiplier, add, scale the sum with the output multiplier (MultiplyByQuantizedMultiplier).

    ``kernels="reference"``: ``reference_integer_ops::Add``, gemmlowp double rounding throughout.
    ``kernels="optimized"``: LiteRT's builtin kernel on x86 (measured, LiteRT 2.3): for inputs of the
    same shape, elements in full 16-element vectors of the flattened tensor scale the inputs with
    single rounding (ties up, once) and the sum with gemmlowp double rounding; the scalar tail
    (the last size % 16 elements) is gemmlowp throughout, like the reference. In the vectors of
    the 8-bit kernel (left_shift 20) the scaled sum is narrowed to int16 without saturation
    (``vmovn_s32``), the output zero point added in int16 lanes (wrapping), then saturated to int8:
    where the output scale is far below the input scales (|sum| * s_in / s_out past 32767 - zp,
    reached from s_in / s_out near 64 with zero points at the int8 ends), the codes wrap. This form
    matched LiteRT on all 65,536 int8 pairs for s_in / s_out from 1 to 5e5, zero points at both
    ends (tests/golden/test_tflite_add_narrowing.py).

    Zero points in the storage type's range only, as converters write them: out of range, LiteRT's
    optimized kernel shifts (x - zp) left by left_shift + its input shift in int32 lanes, which wrap,
    before its rounding doubling high multiply (that form matched it on all 9 sets of scales and zero
    points up to 5000 tried), and the reference kernel overflows otherwise. qsim's TFLite loader refuses such files
    (``qsim.ir.tflite_context``; tests/golden/test_tflite_zero_point_range.py)."""
    if kernels not in ("reference", "optimized"):
        raise ValueError(f"unknown ADD kernels {kernels!r}; known: reference, optimized")
    p = tflite_add_params(s1, s2, s_out, left_shift)
    x1_in, x2_in = x1, x2
    x1, x2 = np.broadcast_arrays(np.asarray(x1, np.int64), np.asarray(x2, np.int64))
    a = (x1 - zp1) << left_shift
    b = (x2 - zp2) << left_shift
    raw = _mbqm(a, p[0], p[1]) + _mbqm(b, p[2], p[3])
    if kernels != "optimized":
        return np.clip(_mbqm(raw, p[4], p[5]) + zp_out, qmin, qmax)
    shape1, shape2 = np.shape(x1_in), np.shape(x2_in)
    layout = litert_broadcast_layout(shape1, shape2)
    if layout is None:  # BroadcastAdd6DSlow: the reference form throughout
        return np.clip(_mbqm(raw, p[4], p[5]) + zp_out, qmin, qmax)
    chunk, width, scalar = layout
    pos = np.arange(a.size) % chunk
    vec = (pos < chunk - chunk % width).reshape(a.shape)
    if scalar is None:  # AddElementwise rows: single rounding on both inputs
        vsum = _single(a, p[0], p[1]) + _single(b, p[2], p[3])
    else:  # AddScalarBroadcast (measured, whichever operand is the scalar): the first operand with
        # gemmlowp's rounding, the second with the rounding high multiply then a flooring shift
        vsum = _mbqm(a, p[0], p[1]) + _srdhm_floor(b, p[2], p[3])
    out = _mbqm(np.where(vec, vsum, raw), p[4], p[5])
    if left_shift == 20:  # the 8-bit kernel's vectors: int16 lanes before the zero point
        out = np.where(vec, _wrap16(_wrap16(out) + zp_out) - zp_out, out)
    return np.clip(out + zp_out, qmin, qmax)


def _srdhm_floor(x, q, shift):
    """gemmlowp's SaturatingRoundingDoublingHighMul (ties away from zero), then an arithmetic
    (flooring) right shift by -shift: LiteRT's AddScalarBroadcast vectors scale the row this way."""
    ab = np.asarray(x, np.int64) * q
    v = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    hi = np.where(v >= 0, v >> 31, -((-v) >> 31))
    return hi >> np.maximum(-np.asarray(shift, np.int64), 0)


def litert_broadcast_layout(shape1, shape2):
    """How LiteRT's optimized int8 ADD (``BroadcastAddDispatch``) splits a broadcast, from TFLite's
    ``ProcessBroadcastShapes`` and ``BinaryBroadcastFiveFold``: None for the generic category
    (``BroadcastAdd6DSlow``, the reference form); else (chunk, width, scalar). The output, in C
    order, is cut into chunks of ``chunk`` elements; in each the first ``chunk - chunk % width`` run
    in vectors, the rest in scalar code. ``scalar`` None: chunks are rows of y4 > 1 elements
    (AddElementwise, 16-wide vectors); else y4 == 1 and chunks of y3 elements broadcast one element
    of operand ``scalar`` (0 or 1) (AddScalarBroadcast: 16- then 8-wide vectors). Equal shapes:
    one chunk of every element, 16 wide. Measured on every element (tests/golden/test_tflite_add_broadcast.py)."""
    nd = max(len(shape1), len(shape2))
    e1 = (1,) * (nd - len(shape1)) + tuple(shape1)
    e2 = (1,) * (nd - len(shape2)) + tuple(shape2)
    if e1 == e2:
        return max(1, int(np.prod(e1, dtype=np.int64))), 16, None
    first = None
    for d1, d2 in zip(reversed(e1), reversed(e2)):
        if d1 == d2:
            continue
        if d1 == 1 or d2 == 1:
            first = d1 == 1  # kFirstInputBroadcastsFast
            break
        return None
    sa, sb = (e1, e2) if first else (e2, e1)
    y = [1] * 5
    i = nd - 1
    for k, test in ((4, lambda i: sa[i] == sb[i]), (3, lambda i: sa[i] == 1), (2, lambda i: sa[i] == sb[i]),
                    (1, lambda i: sb[i] == 1), (0, lambda i: sa[i] == sb[i])):
        while i >= 0 and test(i):
            y[k] *= sa[i] if k in (1, 2) else sb[i]
            i -= 1
    if i >= 0:
        return None
    if y[4] > 1:
        return y[4], 16, None
    return y[3], 8, 0 if first else 1


def _wrap16(v):
    return ((np.asarray(v, np.int64) + 32768) & 0xFFFF) - 32768


def tflite_mul_params(s1, s2, s_out) -> np.ndarray:
    """TFLite MUL (``mul.cc`` Prepare): ``input1->params.scale * input2->params.scale /
    output->params.scale`` is float arithmetic, widened to double only when assigned, then
    QuantizeMultiplier (a long-run seed, 901511: the double quotient gives a multiplier 26 lower,
    which rounds 2815.49998 where LiteRT's rounds 2815.50002)."""
    q, e = quantize_multiplier(float(_F32(_F32(_F32(s1) * _F32(s2)) / _F32(s_out))))
    return np.array([q[0], e[0]], np.int64)


def mul_tflite(x1, x2, s1, zp1, s2, zp2, s_out, zp_out, qmin=-128, qmax=127, kernels: str = "reference"):
    """TFLite/LiteRT int8 MUL (reference ``reference_integer_ops::Mul``): the product of the offset
    inputs, requantized once with MultiplyByQuantizedMultiplier. ``kernels="optimized"``: LiteRT's
    builtin kernel (same-shape inputs): in full 16-element vectors the requantized product is
    narrowed to int16 with saturation, the zero point added in int16 lanes (wrapping), then
    saturated to int8; the size % 16 tail as the reference. It differs where |product| * m passes
    32767 - |zp_out| (m = s1 * s2 / s_out from about 0.5, zero points at the int8 ends): matched
    on all 65,536 pairs for m from 0.001 to 0.999 (tests/golden/test_tflite_add_narrowing.py)."""
    if kernels not in ("reference", "optimized"):
        raise ValueError(f"unknown MUL kernels {kernels!r}; known: reference, optimized")
    p = tflite_mul_params(s1, s2, s_out)
    x1, x2 = np.broadcast_arrays(np.asarray(x1, np.int64), np.asarray(x2, np.int64))
    out = _mbqm((x1 - zp1) * (x2 - zp2), p[0], p[1])
    if kernels == "optimized":
        vec = (np.arange(out.size) < out.size - out.size % 16).reshape(out.shape)
        out = np.where(vec, _wrap16(np.clip(out, -32768, 32767) + zp_out) - zp_out, out)
    return np.clip(out + zp_out, qmin, qmax)


def xnnpack_add_params(s1, zp1, s2, zp2, s_out) -> np.ndarray:
    """XNNPACK ``xnn_init_qs8_add_minmax_scalar_params``: multipliers ``lrintf(s_i/s_out * 2^shift)``
    with ``shift = 20 - floor(log2(max(s1/s_out, s2/s_out)))`` so the larger one has 21-22 bits;
    the rounding term 2^(shift-1) and both zero points are folded into one int32 bias.
    Returns int64 [a_mult, b_mult, bias, shift]."""
    a = _F32(_F32(s1) / _F32(s_out))
    b = _F32(_F32(s2) / _F32(s_out))
    exp = math.frexp(float(max(a, b)))[1] - 1
    shift = 20 - exp
    am = int(np.rint(np.float64(a) * 2.0 ** shift))  # a * 2^shift is exact: lrintf rounds once
    bm = int(np.rint(np.float64(b) * 2.0 ** shift))
    bias = (1 << (shift - 1)) - am * int(zp1) - bm * int(zp2)
    return np.array([am, bm, bias, shift], np.int64)


def mul_xnnpack(x1, x2, s1, zp1, s2, zp2, s_out, zp_out, qmin=-128, qmax=127):
    """XNNPACK qs8 VMUL (LiteRT with the XNNPACK delegate): fp32 requantization of the product of
    the offset inputs with ``fp32(fp32(s1 * s2) / s_out)``, ties to even, then + zero point."""
    scale = _F32(_F32(_F32(s1) * _F32(s2)) / _F32(s_out))
    prod = (np.asarray(x1, np.int64) - zp1) * (np.asarray(x2, np.int64) - zp2)
    r = np.rint((prod.astype(_F32) * scale).astype(np.float64))
    return np.clip(np.clip(r, qmin - zp_out - 1, qmax - zp_out + 1).astype(np.int64) + zp_out, qmin, qmax)


def add_xnnpack(x1, x2, s1, zp1, s2, zp2, s_out, zp_out, qmin=-128, qmax=127):
    """XNNPACK qs8 VADD (LiteRT with the XNNPACK delegate): ``(bias + a*a_mult + b*b_mult) >> shift``
    (arithmetic shift; the rounding is in the bias: ties toward +inf), then + zero point."""
    am, bm, bias, shift = xnnpack_add_params(s1, zp1, s2, zp2, s_out)
    acc = bias + np.asarray(x1, np.int64) * am + np.asarray(x2, np.int64) * bm
    return np.clip((acc >> shift) + zp_out, qmin, qmax)


# ---- table-based activations: one 256-entry int8 table per (kernel set, function) -------------
# Each kernel set builds its table with its own float function and its own rounding; LUT_TABLES
# below names, per (kernel set, function), how. The functions take and return float32 arrays.

def _sigmoid(v):
    with np.errstate(over="ignore"):  # expf overflows to inf there too: 1 / (1 + inf) = 0
        e = np.exp(-v.astype(np.float64)).astype(_F32)
    return _F32(1.0) / (_F32(1.0) + e)


def _tanh(v):
    # the correctly rounded tanh: its half-away tables equal LiteRT's reference kernels on 5,000
    # random parameter sets, as glibc's tanhf does (half-away rounding hides its one-ulp errors)
    return np.tanh(v.astype(np.float64)).astype(_F32)


def _gelu(v):
    # GeluTransform: 0.5f * x * (1.0f + std::erf(x * M_SQRT1_2)): the erf argument and everything
    # after it are double (M_SQRT1_2 is a double constant), the result is returned as float.
    d = v.astype(np.float64)
    erf = np.array([math.erf(t * math.sqrt(0.5)) for t in d.tolist()])
    return (np.float64(_F32(0.5) * v) * (1.0 + erf)).astype(_F32)


def _gelu_tanh(v):
    # GeluApproximateTransform: 0.5f * x * (1.0f + std::tanh(kSqrt2dPi * (x + 0.044715f * x^3)))
    # with kSqrt2dPi = M_2_SQRTPI * M_SQRT1_2 (double): the tanh argument is double.
    x3 = _F32(_F32(0.044715) * v) * v * v
    arg = (2.0 / math.sqrt(math.pi)) * math.sqrt(0.5) * (v + x3).astype(np.float64)
    return (np.float64(_F32(0.5) * v) * (1.0 + np.tanh(arg))).astype(_F32)


def _xnnpack_sigmoid(v):
    # XNNPACK SigmoidOp (src/reference/unary-elementwise.cc): 1 above 100, 0 below -100, else
    # e = exp(double(x)) and float(e / (1 + e)), all in double (glibc's exp, as Python's math.exp)
    def one(x: float) -> float:
        if x > 100.0:
            return 1.0
        if x < -100.0:
            return 0.0
        e = math.exp(x)
        return e / (1.0 + e)
    return np.array([one(x) for x in np.asarray(v, np.float64).tolist()]).astype(_F32)


def _xnnpack_tanh(v):
    # XNNPACK TanHOp: std::tanh(float), which LiteRT's binary links to glibc's tanhf
    return tanhf_array(v)


def _codes(signed: bool) -> np.ndarray:
    lo = -128 if signed else 0
    return np.arange(lo, lo + 256, dtype=np.int64)


def tflite_table(transform, s_in, zp_in, s_out, zp_out, signed: bool = True) -> np.ndarray:
    """TFLite ``LUTPopulate`` (tensorflow/lite/kernels/internal/common.h) for 8-bit types: for
    every input code q, ``dequantized = s_in * float(q - zp_in)`` (fp32), ``transformed =
    transform(dequantized)``, ``round_half_away(transformed * (1 / s_out)) + zp_out``, clamped. Returns the int64 table indexed by ``q - qmin`` (256 entries)."""
    q = _codes(signed)
    deq = _F32(s_in) * (q - zp_in).astype(_F32)
    r = transform(deq) * _F32(_F32(1.0) / _F32(s_out))
    return np.clip(round_to_int(r, Rounding.HALF_AWAY).astype(np.int64) + zp_out, q[0], q[-1])


def xnnpack_table(transform, s_in, zp_in, s_out, zp_out, signed: bool = True) -> np.ndarray:
    """XNNPACK's quantized unary operators (``unary_ukernel_quantized`` in
    src/reference/unary-elementwise.cc with ``dequantize`` / ``quantize`` of reference-utils.h), as
    LiteRT 2.3's binary compiles them (read from its machine code: no contracted multiply-adds,
    ``nearbyintf``): ``x = (float(q) - float(zp_in)) * s_in``, ``y = transform(x)``, then
    ``nearbyintf(fp32(fp32(y * fp32(1 / s_out)) + float(zp_out)))`` -- ties to even, and the zero
    point added in fp32 before rounding -- clamped to the type's range."""
    q = _codes(signed)
    deq = (q.astype(_F32) - _F32(zp_in)).astype(_F32) * _F32(s_in)
    r = ((transform(deq) * _F32(_F32(1.0) / _F32(s_out))).astype(_F32) + _F32(zp_out)).astype(_F32)
    return np.clip(np.rint(r).astype(np.int64), q[0], q[-1])


# (kernel set, function) -> how that kernel set computes its table. "tflite": LiteRT's reference and
# optimized kernels (activations.cc / gelu.cc Prepare: LUTPopulate with the float functions above);
# "xnnpack": the XNNPACK delegate, which takes LOGISTIC and TANH; it leaves GELU to the builtin kernel
# (measured: the node stays GELU, not DELEGATE), so that is TFLite's table.
LUT_TABLES = {
    ("tflite", "sigmoid"): partial(tflite_table, _sigmoid),
    ("tflite", "tanh"): partial(tflite_table, _tanh),
    ("tflite", "gelu"): partial(tflite_table, _gelu),
    ("tflite", "gelu_tanh"): partial(tflite_table, _gelu_tanh),
    ("xnnpack", "sigmoid"): partial(xnnpack_table, _xnnpack_sigmoid),
    ("xnnpack", "tanh"): partial(xnnpack_table, _xnnpack_tanh),
    ("xnnpack", "gelu"): partial(tflite_table, _gelu),
    ("xnnpack", "gelu_tanh"): partial(tflite_table, _gelu_tanh),
}


def lut_table(fn: str, s_in, zp_in, s_out, zp_out, kernels: str = "tflite", signed: bool = True) -> np.ndarray:
    """The int64 table (indexed by ``q - qmin``) of ``fn`` ("sigmoid", "tanh", "gelu" exact,
    "gelu_tanh" approximate) as ``kernels`` ("tflite" or "xnnpack") builds it."""
    builder = LUT_TABLES.get((kernels, fn))
    if builder is None:
        raise ValueError(f"no {fn!r} table for kernel set {kernels!r}; known: "
                         + ", ".join(f"{k}/{f}" for k, f in LUT_TABLES))
    return builder(s_in, zp_in, s_out, zp_out, signed=signed)


def tflite_lut(fn: str, s_in, zp_in, s_out, zp_out, signed: bool = True) -> np.ndarray:
    """TFLite's table of ``fn`` (see ``tflite_table``)."""
    return lut_table(fn, s_in, zp_in, s_out, zp_out, "tflite", signed)


def lut_apply(x, table, signed: bool = True) -> np.ndarray:
    return table[np.asarray(x, np.int64) - (-128 if signed else 0)]


def activation_tflite(fn: str, x, s_in, zp_in, s_out, zp_out, kernels: str = "tflite") -> np.ndarray:
    """int8 LOGISTIC (``sigmoid``), TANH, GELU (``gelu`` exact, ``gelu_tanh`` approximate) as
    LiteRT's table kernels compute them: a 256-entry table, built as ``kernels`` builds it."""
    return lut_apply(x, lut_table(fn, s_in, zp_in, s_out, zp_out, kernels))


def softmax_table(s_in, beta: float = 1.0) -> np.ndarray:
    """TFLite ``PopulateSoftmaxLookupTable``: ``table[255 - d] = expf(-s_in * beta * d)``, fp32."""
    d = np.arange(256, dtype=np.float32)
    scale = _F32(-_F32(s_in) * _F32(beta))
    return np.exp((scale * d).astype(np.float64)).astype(_F32)[::-1].copy()


def softmax_tflite_scaled(x, s_in, s_out, beta: float = 1.0) -> np.ndarray:
    """The quotient ``e * inv`` of ``softmax_tflite`` before rounding (fp32 table values and sum)."""
    table = softmax_table(s_in, beta)
    x = np.asarray(x, np.int64)
    mx = x.max(axis=-1, keepdims=True)
    e = table[255 - mx + x]  # = expf(-s_in * beta * (max - x))
    total = np.zeros(x.shape[:-1] + (1,), _F32)
    for j in range(x.shape[-1]):  # fp32 sum in order: the runtime's loop
        total = (total + e[..., j:j + 1]).astype(_F32)
    inv = (_F32(1.0) / (total * _F32(s_out))).astype(_F32)
    return (e * inv).astype(np.float64)


def softmax_tflite(x, s_in, s_out, zp_out, beta: float = 1.0, qmin=-128, qmax=127):
    """int8 SOFTMAX over the last axis with the float exp table (TFLite optimized ``Softmax`` with
    ``params.table``): fp32 sum of table values in order, ``inv = 1 / (sum * s_out)``, output
    ``round_half_away(e * inv) + zp_out``."""
    r = softmax_tflite_scaled(x, s_in, s_out, beta)
    q = round_to_int(r, Rounding.HALF_AWAY).astype(np.int64)
    return np.clip(q + zp_out, qmin, qmax)
