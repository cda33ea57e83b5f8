"""Elementwise integer kernels with requantization: numpy references (``elementwise_jit`` has the
numba twins, same signatures). Each function says which runtime it is bit-exact with and how that
was checked (tests/golden/test_policy_elementwise.py builds the LiteRT models). LiteRT's builtin ADD
and MUL live in ``litert_binary`` and are re-exported here.

Inputs are integer arrays (int8 unless said), outputs int64 arrays already clamped to [qmin, qmax].
Scales are float32 values as stored in the model; zero points are ints.
"""
from __future__ import annotations

import math
from functools import partial

import numpy as np

from qsim.kernels.elementwise_libm import tanhf_array
from qsim.kernels.litert_binary import (_single, _srdhm_floor, _wrap16, add_pot_int16,  # noqa: F401  (re-exported)
                                        add_tflite, litert_broadcast_layout, litert_vectors, mul_tflite,
                                        tflite_add_params, tflite_mul_params)
from qsim.numerics.formats import Rounding
from qsim.numerics.rounding import round_to_int

_F32 = np.float32


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
