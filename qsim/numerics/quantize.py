"""Affine quantize / dequantize with ``qsim.numerics.tensor_quant.TensorQuant`` parameters.

Four variants (``Kernels`` members; the names "onnx" and "tflite" are accepted), each the formula
of a runtime (they differ only on ties and near-ties):

* ``onnxruntime`` (``onnx``): ``saturate(round_half_even(fp32(x / scale)) + zero_point)``, the ONNX QuantizeLinear
  spec and onnxruntime's MLAS kernel. The zero point is added after rounding (onnx.reference adds it
  before rounding, which moves ties when the zero point is odd: not a valid golden for ties).
* ``fbgemm``: PyTorch (measured with torch 2.13 on x86-64, either engine): the zero point is added
  *before* rounding. ``quantize_per_tensor``: ``nearbyint(fma(x, fp32(1 / scale), zero_point))``
  (fused, one fp32 rounding); ``quantize_per_channel``: ``nearbyint(fp32(fp32(x * fp32(1 / scale))
  + zero_point))`` (two roundings).
* ``xnnpack``: ``nearbyint(fp32(x * fp32(1 / scale))) + zero_point``: LiteRT QUANTIZE with the
  optimized (builtin) kernels and with the XNNPACK delegate (measured with LiteRT 2.3).
* ``tflite-reference`` (``tflite``): ``round_half_away(fp32(x / scale)) + zero_point``: LiteRT reference QUANTIZE.
* ``tflite-optimized``: LiteRT's optimized (builtin) QUANTIZE, int8 and int16 (XNNPACK leaves int16 to
  it): the flat array in blocks of 8 as ``xnnpack``, the last ``size % 8`` elements as the scalar
  loop, ``round_half_away(fp64(x) / fp64(scale)) + zero_point`` (measured with LiteRT 2.3 on planted
  ties; the caller passes the array in the runtime's layout).

``dequantize`` has two variants: DequantizeLinear's ``fp32(q - zero_point) * scale`` (every runtime
but one) and LiteRT's optimized int8 DEQUANTIZE (``dequantize_variant`` = ``tflite-optimized``):
blocks of 8 as ``fp32(fp32(q) * scale + fp32(-zero_point * scale))``, the tail as the former.

Granularity follows the TensorQuant: per tensor (axis None), per channel (scale of shape (C,) along
``axis``), per block (``block_size`` > 0: scale has x's shape with ``axis`` divided by block_size,
rounded up, as ONNX QuantizeLinear-21). Integer outputs come back as the smallest numpy integer type
that holds them (int4/uint4 in int8/uint8); fp8 outputs as float32 holding the fp8 value.
"""
from __future__ import annotations

import numpy as np

from qsim.errors import WorkloadError
from qsim.numerics.tensor_quant import TensorQuant
from qsim.numerics.formats import FloatFormat, IntFormat, Rounding
from qsim.numerics.minifloat import round_float
from qsim.numerics.policies import Kernels, kernels_name
from qsim.numerics.requant_ref import fma_f32
from qsim.numerics.rounding import round_to_int, wrap

VARIANT_NAMES = ("onnx", "fbgemm", "xnnpack", "tflite", "tflite-optimized")  # short names of the runtimes' formulas
VARIANTS = tuple(kernels_name(v) for v in VARIANT_NAMES)
def element_format(tq: TensorQuant) -> IntFormat | FloatFormat:
    fmt = tq.fmt
    if not isinstance(fmt, (IntFormat, FloatFormat)):
        raise WorkloadError(f"quantize: {fmt.name!r} is not an element format; use qsim.numerics.mx")
    return fmt


def broadcast_param(p: np.ndarray, tq: TensorQuant, shape: tuple[int, ...]) -> np.ndarray:
    """Expand a scale or zero point to ``shape`` following the TensorQuant's granularity."""
    p = np.asarray(p)
    if tq.axis is None or p.ndim == 0 or p.size == 1 and tq.block_size == 0:
        return p.reshape(())
    axis = tq.axis % len(shape)
    if tq.block_size > 0:
        if p.ndim != len(shape):
            raise WorkloadError(f"per-block scale must have rank {len(shape)}, got shape {p.shape}")
        rep = np.repeat(p, tq.block_size, axis=axis)
        return np.take(rep, np.arange(shape[axis]), axis=axis)
    if p.ndim != 1 or p.shape[0] != shape[axis]:
        raise WorkloadError(f"per-channel scale of shape {p.shape} does not match axis {tq.axis} "
                            f"of a tensor of shape {shape}")
    view = [1] * len(shape)
    view[axis] = shape[axis]
    return p.reshape(view)


def quantize(x, tq: TensorQuant, variant: Kernels | str = Kernels.ONNXRUNTIME, saturate: bool = True) -> np.ndarray:
    """Real values (cast to float32 first, as the runtimes take fp32 input) -> quantized values.

    ``saturate`` matters for fp8 outputs only (ONNX's attribute); integer outputs always saturate.
    """
    try:
        variant = kernels_name(variant)
    except WorkloadError:
        pass
    if variant not in VARIANTS:
        raise WorkloadError(f"unknown quantize variant {variant!r}; known: {', '.join(VARIANT_NAMES)}")
    x = np.asarray(x, dtype=np.float32)
    fmt = element_format(tq)
    scale = broadcast_param(tq.scale, tq, x.shape).astype(np.float32)
    zp = broadcast_param(tq.zero_point, tq, x.shape)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if variant is Kernels.FBGEMM and isinstance(fmt, IntFormat):
            inv = np.broadcast_to(np.float32(1.0) / scale, x.shape)
            zpf = np.broadcast_to(zp.astype(np.float32), x.shape)
            y = fma_f32(x, inv, zpf) if tq.scale.size == 1 else (x * inv + zpf).astype(np.float32)
            r = np.rint(y.astype(np.float64))
            return np.clip(np.where(np.isnan(r), 0.0, r), fmt.qmin, fmt.qmax).astype(fmt.storage_dtype)
        if variant is Kernels.TFLITE_OPTIMIZED and isinstance(fmt, IntFormat):
            return _litert_optimized_quantize(x, scale, zp, fmt)
        if variant in (Kernels.FBGEMM, Kernels.XNNPACK):
            y = x * (np.float32(1.0) / scale)  # fp32 reciprocal, then an fp32 product
        else:
            y = x / scale  # fp32 division: numpy float32 / float32 is IEEE-rounded once
    if isinstance(fmt, FloatFormat):
        # ONNX: fp8 zero points must be 0; the cast rounds to nearest even, saturating or not.
        return round_float(y.astype(np.float64) + zp.astype(np.float64), fmt, Rounding.HALF_EVEN,
                           saturate).astype(np.float32)
    mode = Rounding.HALF_AWAY if variant is Kernels.TFLITE_REFERENCE else Rounding.HALF_EVEN
    r = round_to_int(y, mode)
    if variant is Kernels.TFLITE_REFERENCE:
        return _litert_x86_int32(r, zp, fmt)
    nan = np.isnan(r)
    r = np.where(nan, 0.0, r) + zp.astype(np.float64)  # zero point after rounding
    if variant is Kernels.ONNXRUNTIME:
        from qsim.sim.int_runtime import ort_nan_to_min

        if ort_nan_to_min():  # MLAS (x86 maxps, arm64 fmaxnm): a NaN becomes the type's minimum
            r = np.where(nan, fmt.qmin, r)
    elif variant is Kernels.XNNPACK:  # its f32-qs8/qu8-vcvt clamps with minps(q, qmax - zp) first: a NaN gives qmax
        r = np.where(nan, fmt.qmax, r)
    return np.clip(r, fmt.qmin, fmt.qmax).astype(fmt.storage_dtype)


def _litert_x86_int32(r: np.ndarray, zp: np.ndarray, fmt: IntFormat) -> np.ndarray:
    """LiteRT's builtin QUANTIZE (reference and optimized) on x86: the rounded quotient ``r`` goes
    to int32 by ``cvttss2si`` / ``cvtps2dq``, which give INT32_MIN for a NaN or a value outside int32,
    then the zero point is added in int32, wrapping, before the clamp. So a NaN or a huge value
    becomes the type's minimum, or its maximum where a negative zero point wraps INT32_MIN around
    (measured with LiteRT on an AVX2 host; ARM's conversions saturate instead, not modelled)."""
    ok = (r >= -2.0 ** 31) & (r < 2.0 ** 31)  # False for a NaN
    c = np.where(ok, r, -2.0 ** 31).astype(np.int64) + zp.astype(np.int64)
    return np.clip(wrap(c, 32), fmt.qmin, fmt.qmax).astype(fmt.storage_dtype)


def _optimized_tail(shape) -> np.ndarray:
    """LiteRT's optimized kernels run the flat array in blocks of 8, then a scalar loop: True on
    the elements of that last partial block."""
    n = int(np.prod(shape, dtype=np.int64))
    return (np.arange(n) >= n - n % 8).reshape(shape)


def _litert_optimized_quantize(x, scale, zp, fmt: IntFormat) -> np.ndarray:
    body = round_to_int(x * (np.float32(1.0) / scale), Rounding.HALF_EVEN)
    tail = round_to_int(x.astype(np.float64) / scale.astype(np.float64), Rounding.HALF_AWAY)
    return _litert_x86_int32(np.where(_optimized_tail(x.shape), tail, body), zp, fmt)


def dequantize(q, tq: TensorQuant, variant: Kernels | str | None = None) -> np.ndarray:
    """``(q - zero_point) * scale`` in float32, as DequantizeLinear (the subtraction is exact in
    int32 for every supported width, then one fp32 conversion and one fp32 product); ``variant``
    ``tflite-optimized``: LiteRT's optimized DEQUANTIZE (module doc; ``q`` in the runtime's layout)."""
    q = np.asarray(q)
    scale = broadcast_param(tq.scale, tq, q.shape).astype(np.float32)
    zp = broadcast_param(tq.zero_point, tq, q.shape)
    if np.issubdtype(q.dtype, np.floating):
        return ((q.astype(np.float32) - zp.astype(np.float32)) * scale).astype(np.float32)
    d = q.astype(np.int64) - zp.astype(np.int64)
    y = (d.astype(np.float32) * scale).astype(np.float32)
    if variant is not None and kernels_name(variant) is Kernels.TFLITE_OPTIMIZED:
        body = (q.astype(np.float32) * scale).astype(np.float32) + (-zp.astype(np.float64) * scale).astype(np.float32)
        y = np.where(_optimized_tail(q.shape), y, body.astype(np.float32))
    return y
