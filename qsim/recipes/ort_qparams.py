"""onnxruntime's quantization arithmetic (``quant_utils.py``, ``qdq_quantizer.py``, 1.32) in numpy:
scale and zero point from a range, weights per tensor or per channel, int32 biases, and the weight
scale increase that keeps a bias inside int32.

The dtypes are the point: ``compute_scale_zp`` keeps the range in the tensor's fp32, forms the scale
in float64 (``(rmax - rmin) / (qmax - qmin)``), takes the zero point from that float64 scale
(``round(qmin - rmin / scale)``, half to even) and stores the scale as fp32; symmetric ranges get the
zero point ``round((qmin + qmax) / 2)`` (0 for int8, 128 for uint8, 64 for reduced uint8). A bias is
``round(float64(b) / float64(fp32(s_in * s_w)))`` clipped to int32. Values are quantized as
``clip(round(fp32(x) / scale) + zp)`` (``quantize_nparray``).
"""
from __future__ import annotations

import numpy as np

from qsim.errors import QsimError

QTYPES = {"QUInt8": ("uint8", 0, 255), "QInt8": ("int8", -128, 127), "QUInt16": ("uint16", 0, 65535),
          "QInt16": ("int16", -32768, 32767)}
_SYMMETRIC = {"int8": (-127, 127), "int16": (-32767, 32767)}
_REDUCED = {"uint8": (0, 127), "int8": (-64, 64), "uint16": (0, 32767), "int16": (-16384, 16384)}


def qtype(name) -> str:
    """numpy dtype name of a QuantType (given as ``QuantType.QInt8``, ``"QInt8"`` or ``"int8"``)."""
    key = getattr(name, "name", name)
    if key in QTYPES:
        return QTYPES[key][0]
    if key in {v[0] for v in QTYPES.values()}:
        return key
    raise QsimError(f"unsupported quantization type {key!r}; known: {', '.join(QTYPES)}")


def qmin_qmax(dtype: str, reduce_range: bool = False, symmetric: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """get_qmin_qmax_for_qType: (qmin, qmax) as 0-d arrays of the quantized dtype."""
    if reduce_range:
        lo, hi = _REDUCED[dtype]
    elif symmetric and dtype in _SYMMETRIC:
        lo, hi = _SYMMETRIC[dtype]
    else:
        info = np.iinfo(dtype)
        lo, hi = info.min, info.max
    return np.array(lo, dtype), np.array(hi, dtype)


def compute_scale_zp(rmin, rmax, qmin, qmax, symmetric: bool = False, min_real_range=None):
    """(zero point in the quantized dtype, scale in the range's dtype), as onnxruntime computes them."""
    rmin = np.asarray(rmin)
    rmax = np.asarray(rmax)
    rmin = np.minimum(rmin, np.array(0, dtype=rmin.dtype))
    rmax = np.maximum(rmax, np.array(0, dtype=rmax.dtype))
    if min_real_range is not None:
        rmax = max(rmax, rmin + np.asarray(min_real_range, dtype=rmin.dtype))
    if symmetric:
        absmax = np.maximum(np.abs(rmin), np.abs(rmax))
        rmin, rmax = -absmax, +absmax
    dr = np.array(rmax, dtype=np.float64) - np.array(rmin, dtype=np.float64)
    dq = np.array(qmax, dtype=np.float64) - np.array(qmin, dtype=np.float64)
    scale = np.array(dr / dq)
    stored = scale.astype(rmax.dtype)
    if scale < np.finfo(rmax.dtype).tiny:
        return np.array(0, dtype=qmin.dtype), np.array(1.0, dtype=rmax.dtype)
    if symmetric:
        zero = np.array(np.round((qmin + qmax) / np.array(2.0, dtype=np.float64)), dtype=qmin.dtype)
    else:
        zero = np.array(np.round(qmin - rmin / scale), dtype=qmin.dtype)
    return zero, stored


def quantize_values(x: np.ndarray, scale, zero, dtype: str) -> np.ndarray:
    """quantize_nparray for integer types."""
    qmin, qmax = qmin_qmax(dtype)
    q = np.asarray((x.astype(np.float32) / scale).round() + zero)
    np.clip(q, qmin, qmax, out=q)
    return q.astype(dtype)


def data_params(data: np.ndarray, dtype: str, symmetric: bool, reduce_range: bool, min_real_range=None):
    """compute_data_quant_params: (zero, scale) of a whole array (an initializer or one channel)."""
    rmin = np.array(data.min() if len(data) else 0.0, dtype=data.dtype)
    rmax = np.array(data.max() if len(data) else 0.0, dtype=data.dtype)
    qmin, qmax = qmin_qmax(dtype, reduce_range, symmetric)
    if not len(data):
        return np.array(0, dtype=qmin.dtype), np.array(1.0, dtype=data.dtype)
    return compute_scale_zp(rmin, rmax, qmin, qmax, symmetric, min_real_range)


def initializer_params(w: np.ndarray, dtype: str, symmetric: bool, reduce_range: bool, axis: int | None,
                       min_real_range=None) -> dict:
    """_calc_initializer_quant_params for one initializer: per tensor, or per channel along ``axis``
    (always symmetric then)."""
    if axis is None:
        zero, scale = data_params(w.flatten(), dtype, symmetric, reduce_range, min_real_range)
        return {"zero_point": zero, "scale": scale, "dtype": dtype, "axis": None}
    pairs = [data_params(w.take(i, axis).ravel(), dtype, True, reduce_range, min_real_range)
             for i in range(w.shape[axis])]
    return {"zero_point": np.asarray([z for z, _ in pairs]), "scale": np.asarray([s for _, s in pairs]),
            "dtype": dtype, "axis": axis}


def quantize_initializer(w: np.ndarray, p: dict) -> np.ndarray:
    """quantize_onnx_initializer: the stored codes of ``w`` for params ``p``."""
    if p["axis"] is None:
        return quantize_values(w.ravel(), p["scale"], p["zero_point"], p["dtype"]).reshape(w.shape)
    axis = p["axis"]
    dims = list(w.shape)
    dims[axis] = 1
    parts = [quantize_values(w.take(i, axis).ravel(), p["scale"][i], p["zero_point"][i], p["dtype"]).reshape(dims)
             for i in range(w.shape[axis])]
    return np.concatenate(parts, axis)


def adjust_weight_scale(input_scale: np.ndarray, weight_scale: np.ndarray, bias: np.ndarray,
                        per_channel: bool) -> np.ndarray | None:
    """_adjust_weight_scale_for_int32_bias: a larger weight scale where ``s_in * s_w`` would push the
    quantized bias out of int32 (None when nothing changes)."""
    if not weight_scale.size:
        return None
    info = np.iinfo(np.int32)
    eps = 1.0001
    qrange = np.array(info.max, dtype=np.float64) - np.array(info.min + 1, dtype=np.float64)
    weight_scale = weight_scale.copy()
    changed = False
    s_in = np.array(input_scale.item(), dtype=np.float64)
    if not per_channel:
        rmin = np.minimum(bias.min(), np.array(0, dtype=np.float64))
        rmax = np.maximum(bias.max(), np.array(0, dtype=np.float64))
        smallest = eps * (2.0 * np.maximum(np.abs(rmin), np.abs(rmax))) / qrange
        s_w = np.array(weight_scale.item(), dtype=np.float64)
        if 0.0 < s_in * s_w < smallest:
            weight_scale = (s_w * (smallest / (s_in * s_w))).astype(weight_scale.dtype)
            changed = True
    elif weight_scale.ndim == 1:
        for i in range(weight_scale.shape[0]):
            smallest = eps * (2.0 * np.abs(bias[i])) / qrange
            s_w = np.array(weight_scale[i].item(), dtype=np.float64)
            if 0.0 < s_in * s_w < smallest:
                weight_scale[i] = (s_w * (smallest / (s_in * s_w))).astype(weight_scale.dtype)
                changed = True
    return weight_scale if changed else None


def quantize_bias(bias: np.ndarray, input_scale: np.ndarray, weight_scale: np.ndarray, beta: float = 1.0):
    """quantize_bias_static_impl: (int32 codes, fp32 scale ``s_in * s_w * beta``)."""
    if beta == 0:
        bias, beta = np.zeros_like(bias), 1.0
    scale = input_scale * weight_scale * beta
    q = (np.asarray(bias, dtype=np.float64) / np.asarray(scale, dtype=np.float64)).round()
    q = np.clip(q, np.float64(np.iinfo(np.int32).min), np.float64(np.iinfo(np.int32).max)).astype(np.int32)
    return q.reshape(bias.shape), np.asarray(scale, dtype=bias.dtype).reshape(-1)
