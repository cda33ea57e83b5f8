"""Affine quantize / dequantize with ``qsim.numerics.tensor_quant.TensorQuant`` parameters.

Three variants, each the formula of a runtime (they differ only on ties and near-ties):

* ``onnx``: ``saturate(round_half_even(fp32(x / scale)) + zero_point)``, the ONNX QuantizeLinear
  spec and onnxruntime's MLAS kernel. The zero point is added after rounding (onnx.reference adds it
  before rounding, which moves ties when the zero point is odd: not a valid golden for ties).
* ``fbgemm``: PyTorch (measured with torch 2.13 on x86-64, either engine): the zero point is added
  *before* rounding. ``quantize_per_tensor``: ``nearbyint(fma(x, fp32(1 / scale), zero_point))``
  (fused, one fp32 rounding); ``quantize_per_channel``: ``nearbyint(fp32(fp32(x * fp32(1 / scale))
  + zero_point))`` (two roundings).
* ``xnnpack``: ``nearbyint(fp32(x * fp32(1 / scale))) + zero_point``: LiteRT QUANTIZE with the
  optimized (builtin) kernels and with the XNNPACK delegate (measured with LiteRT 2.3).
* ``tflite``: ``round_half_away(fp32(x / scale)) + zero_point``: LiteRT reference QUANTIZE.

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
from qsim.numerics.requant_ref import fma_f32
from qsim.numerics.rounding import round_to_int

VARIANTS = ("onnx", "fbgemm", "xnnpack", "tflite")
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


def quantize(x, tq: TensorQuant, variant: str = "onnx", saturate: bool = True) -> np.ndarray:
    """Real values (cast to float32 first, as the runtimes take fp32 input) -> quantized values.

    ``saturate`` matters for fp8 outputs only (ONNX's attribute); integer outputs always saturate.
    """
    if variant not in VARIANTS:
        raise WorkloadError(f"unknown quantize variant {variant!r}; known: {', '.join(VARIANTS)}")
    x = np.asarray(x, dtype=np.float32)
    fmt = element_format(tq)
    scale = broadcast_param(tq.scale, tq, x.shape).astype(np.float32)
    zp = broadcast_param(tq.zero_point, tq, x.shape)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if variant == "fbgemm" and isinstance(fmt, IntFormat):
            inv = np.broadcast_to(np.float32(1.0) / scale, x.shape)
            zpf = np.broadcast_to(zp.astype(np.float32), x.shape)
            y = fma_f32(x, inv, zpf) if tq.scale.size == 1 else (x * inv + zpf).astype(np.float32)
            r = np.rint(y.astype(np.float64))
            return np.clip(np.where(np.isnan(r), 0.0, r), fmt.qmin, fmt.qmax).astype(fmt.storage_dtype)
        if variant in ("fbgemm", "xnnpack"):
            y = x * (np.float32(1.0) / scale)  # fp32 reciprocal, then an fp32 product
        else:
            y = x / scale  # fp32 division: numpy float32 / float32 is IEEE-rounded once
    if isinstance(fmt, FloatFormat):
        # ONNX: fp8 zero points must be 0; the cast rounds to nearest even, saturating or not.
        return round_float(y.astype(np.float64) + zp.astype(np.float64), fmt, Rounding.HALF_EVEN,
                           saturate).astype(np.float32)
    mode = Rounding.HALF_AWAY if variant == "tflite" else Rounding.HALF_EVEN
    r = round_to_int(y, mode)
    r = np.where(np.isnan(r), 0.0, r) + zp.astype(np.float64)  # zero point after rounding
    return np.clip(r, fmt.qmin, fmt.qmax).astype(fmt.storage_dtype)


def dequantize(q, tq: TensorQuant) -> np.ndarray:
    """``(q - zero_point) * scale`` in float32, as DequantizeLinear (the subtraction is exact in
    int32 for every supported width, then one fp32 conversion and one fp32 product)."""
    q = np.asarray(q)
    scale = broadcast_param(tq.scale, tq, q.shape).astype(np.float32)
    zp = broadcast_param(tq.zero_point, tq, q.shape)
    if np.issubdtype(q.dtype, np.floating):
        return ((q.astype(np.float32) - zp.astype(np.float32)) * scale).astype(np.float32)
    d = q.astype(np.int64) - zp.astype(np.int64)
    return (d.astype(np.float32) * scale).astype(np.float32)
