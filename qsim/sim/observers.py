"""Calibration observers: from a user's calibration data to quantization parameters (``TensorQuant``).

An ``Observer`` sees a tensor batch after batch (``update``) and then derives a clipping range and
the scale and zero point for an element format (``tensor_quant``). Three ways to choose the range:

* ``minmax``: the observed minimum and maximum (onnxruntime's MinMax, PyTorch's MinMaxObserver);
* ``percentile``: the ``percentile``-th and (100 - ``percentile``)-th percentiles (default 99.99 %),
  which ignores a few outliers (onnxruntime's Percentile method);
* ``mse``: the clipping range, shrunk from min/max over a grid of ratios, that minimises the mean
  squared quantize-dequantize error on the observed data (per channel when per channel).

Granularity: per tensor (``axis=None``) or per channel along any axis. Percentile and MSE need the
values, not only the extremes: an observer keeps at most ``max_samples`` values per channel (a
seeded random subsample of each batch beyond that), while min and max are always exact.

Scale and zero point follow onnxruntime's ``compute_scale_zp`` bit for bit (range in fp32, scale
computed in float64 and stored as fp32, zero point from the float64 scale; the range contains 0):
asymmetric ``scale = (hi - lo) / (qmax - qmin)``, ``zero_point = round(qmin - lo / scale)``;
symmetric uses ``[-amax, amax]`` with the signed range narrowed to ``[-qmax, qmax]`` (int8:
-127..127, zero point 0; unsigned symmetric formats get the mid zero point, 128 for uint8). A range
of width 0 gets scale 1. fp8 (E4M3, E5M2) has no zero point (0) and, by default
(``fp8_scale="amax"``), the scale that maps amax to the format's largest finite value (448 for E4M3),
as NVIDIA Transformer Engine's delayed scaling does; ``fp8_scale="unit"`` keeps scale 1 (a plain cast).
"""
from __future__ import annotations

import numpy as np

from qsim.errors import QsimError
from qsim.numerics.tensor_quant import TensorQuant
from qsim.numerics.formats import FP8_E4M3, FP8_E5M2, FloatFormat, IntFormat, get_format
from qsim.numerics.minifloat import round_float

METHODS = ("minmax", "percentile", "mse")
FP8_SCALES = ("amax", "unit")
SCALED_FLOATS = (FP8_E4M3, FP8_E5M2)  # the float formats that carry a scale (and a zero point 0)


def quantized_format(fmt) -> IntFormat | FloatFormat:
    """The format (or name) if it can carry a scale and zero point, else a clear error."""
    f = get_format(fmt)
    if isinstance(f, IntFormat) or f in SCALED_FLOATS:
        return f
    raise QsimError(f"format {f.name!r} cannot carry a scale and zero point; quantized formats are "
                    "int2..int32, uint2..uint32, fp8_e4m3 and fp8_e5m2")


def element_name(fmt) -> str:
    """The element-type name a TensorSpec uses (the ONNX importer's spelling)."""
    return quantized_format(fmt).element_type


def storage_type(fmt) -> np.dtype:
    """numpy type holding values of a format in a graph's constants, as onnx's numpy_helper returns
    them (ml_dtypes int2/int4/float8 for the ONNX types numpy lacks, so that graphs match the ONNX
    importer's); other widths use the format's own storage type (int3 codes in int8)."""
    import ml_dtypes

    f = get_format(fmt)
    special = {"int4": ml_dtypes.int4, "uint4": ml_dtypes.uint4, "int2": ml_dtypes.int2,
               "uint2": ml_dtypes.uint2, "fp8_e4m3": ml_dtypes.float8_e4m3fn, "fp8_e5m2": ml_dtypes.float8_e5m2}
    return np.dtype(special[f.name]) if f.name in special else f.storage_dtype


def qrange(fmt: IntFormat, symmetric: bool) -> tuple[int, int]:
    """Integer range used for calibration: signed symmetric drops the most negative code."""
    if symmetric and fmt.signed:
        return -fmt.qmax, fmt.qmax
    return fmt.qmin, fmt.qmax


def scale_zero_point(lo, hi, fmt_name: str, symmetric: bool, fp8_scale: str = "amax"):
    """(scale float32, zero point float64 holding integers) for ranges ``lo``/``hi`` (arrays)."""
    fmt = get_format(fmt_name)
    lo = np.minimum(np.asarray(lo, np.float64), 0.0)
    hi = np.maximum(np.asarray(hi, np.float64), 0.0)
    if isinstance(fmt, FloatFormat):
        if fp8_scale not in FP8_SCALES:
            raise QsimError(f"unknown fp8_scale {fp8_scale!r}; known: {', '.join(FP8_SCALES)}")
        amax = np.maximum(-lo, hi)
        scale = amax / fmt.max if fp8_scale == "amax" else np.ones_like(amax)
        scale = np.where(scale > 0, scale, 1.0)
        return scale.astype(np.float32), np.zeros_like(amax)
    if not isinstance(fmt, IntFormat):
        raise QsimError(f"format {fmt.name!r} is not an integer or fp8 element format")
    qmin, qmax = qrange(fmt, symmetric)
    lo, hi = lo.astype(np.float32), hi.astype(np.float32)  # the observed fp32 values, as onnxruntime's
    if symmetric:
        amax = np.maximum(-lo, hi)
        lo, hi = -amax, amax
    wide = (hi.astype(np.float64) - lo.astype(np.float64)) / float(qmax - qmin)  # float64, then stored fp32
    tiny = wide < np.finfo(np.float32).tiny
    wide = np.where(tiny, 1.0, wide)
    scale = wide.astype(np.float32)
    zero = np.rint(qmin - lo / wide)
    if symmetric and not fmt.signed:  # qmin - (-amax)/scale = 127.5 for uint8: pin the midpoint
        zero = np.full_like(zero, (qmin + qmax + 1) // 2)
    return scale, np.where(tiny, 0.0, np.clip(zero, fmt.qmin, fmt.qmax))


def make_tensor_quant(scale, zero, fmt_name: str, axis: int | None) -> TensorQuant:
    dtype = quantized_format(fmt_name)
    scale = np.asarray(scale, np.float32)
    zero = np.asarray(zero).astype(storage_type(dtype))
    if scale.ndim == 0 or scale.size == 1 and axis is None:
        return TensorQuant(scale.reshape(()), zero.reshape(()), dtype, None)
    return TensorQuant(scale, zero, dtype, axis)


def fake_quant(x: np.ndarray, scale, zero, fmt_name: str) -> np.ndarray:
    """Quantize-dequantize with broadcastable ``scale``/``zero`` (float64; used by the MSE search)."""
    fmt = get_format(fmt_name)
    x = np.asarray(x, np.float64)
    scale = np.asarray(scale, np.float64)
    if isinstance(fmt, FloatFormat):
        return round_float(x / scale, fmt, saturate=True) * scale
    q = np.clip(np.rint(x / scale) + zero, fmt.qmin, fmt.qmax)
    return (q - zero) * scale


class Observer:
    """Collects statistics of one tensor over calibration batches.

    ``axis``: None for per tensor, else the channel axis (negative counts from the end)."""

    def __init__(self, method: str = "minmax", axis: int | None = None, percentile: float = 99.99,
                 max_samples: int = 1 << 15, seed: int = 0):
        if method not in METHODS:
            raise QsimError(f"unknown observer {method!r}; known: {', '.join(METHODS)}")
        if not 50.0 < percentile <= 100.0:
            raise QsimError(f"percentile must be in (50, 100], got {percentile}")
        self.method, self.axis, self.percentile = method, axis, float(percentile)
        self.max_samples = int(max_samples)
        self._rng = np.random.default_rng(seed)
        self.lo: np.ndarray | None = None
        self.hi: np.ndarray | None = None
        self._samples: list[np.ndarray] = []
        self._kept = 0

    def _channels(self, x: np.ndarray) -> np.ndarray:
        """(channels, values) view; per tensor: one channel."""
        if self.axis is None:
            return x.reshape(1, -1)
        return np.moveaxis(x, self.axis, 0).reshape(x.shape[self.axis], -1)

    def update(self, x) -> "Observer":
        x = np.asarray(x, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise QsimError("calibration data produced NaN or inf values; check the calibration inputs")
        c = self._channels(x)
        lo, hi = c.min(axis=1), c.max(axis=1)
        if self.lo is None:
            self.lo, self.hi = lo, hi
        elif self.lo.shape != lo.shape:
            raise QsimError(f"observer saw {lo.size} channels after {self.lo.size}: batches must agree")
        else:
            self.lo, self.hi = np.minimum(self.lo, lo), np.maximum(self.hi, hi)
        if self.method != "minmax" and self._kept < self.max_samples:
            take = min(c.shape[1], self.max_samples - self._kept)
            if take < c.shape[1]:  # a seeded random subsample keeps the statistics unbiased
                c = c[:, np.sort(self._rng.choice(c.shape[1], take, replace=False))]
            self._samples.append(c)
            self._kept += take
        return self

    def samples(self) -> np.ndarray:
        return np.concatenate(self._samples, axis=1)

    def value_range(self, fmt_name: str | None = None, symmetric: bool = False,
                    fp8_scale: str = "amax") -> tuple[np.ndarray, np.ndarray]:
        """The clipping range (lo, hi), one entry per channel (shape (1,) per tensor)."""
        if self.lo is None:
            raise QsimError("observer has seen no data")
        if self.method == "minmax":
            return self.lo, self.hi
        s = self.samples()
        if self.method == "percentile":
            hi = np.percentile(s, self.percentile, axis=1)
            lo = np.percentile(s, 100.0 - self.percentile, axis=1)
            return np.maximum(lo, self.lo), np.minimum(hi, self.hi)
        if fmt_name is None:
            raise QsimError("the mse observer needs the target format")
        return self._mse_range(s, fmt_name, symmetric, fp8_scale)

    def _mse_range(self, s, fmt_name, symmetric, fp8_scale, steps: int = 64):
        """Shrink [lo, hi] by ratios in (0, 1]; keep, per channel, the ratio of least error."""
        best = np.full(s.shape[0], np.inf)
        best_lo, best_hi = self.lo.copy(), self.hi.copy()
        for r in np.linspace(1.0, 1.0 / steps, steps):
            lo, hi = self.lo * r, self.hi * r
            scale, zero = scale_zero_point(lo, hi, fmt_name, symmetric, fp8_scale)
            err = ((fake_quant(s, scale[:, None], zero[:, None], fmt_name) - s) ** 2).mean(axis=1)
            better = err < best
            best = np.where(better, err, best)
            best_lo, best_hi = np.where(better, lo, best_lo), np.where(better, hi, best_hi)
        return best_lo, best_hi

    def tensor_quant(self, fmt_name: str, symmetric: bool = False, fp8_scale: str = "amax",
                     ndim: int | None = None) -> TensorQuant:
        """Quantization parameters for ``fmt_name`` (int8 uint8 int4 int16 ... fp8_e4m3 fp8_e5m2).
        ``ndim``: the tensor's rank, to store a negative channel axis as a non-negative one."""
        lo, hi = self.value_range(fmt_name, symmetric, fp8_scale)
        scale, zero = scale_zero_point(lo, hi, fmt_name, symmetric, fp8_scale)
        axis = self.axis
        if axis is not None and axis < 0 and ndim is not None:
            axis += ndim
        if axis is None:
            return make_tensor_quant(scale[0], zero[0], fmt_name, None)
        return make_tensor_quant(scale, zero, fmt_name, axis)


def calibrate(batches, fmt_name: str, method: str = "minmax", axis: int | None = None,
              symmetric: bool = False, percentile: float = 99.99, fp8_scale: str = "amax") -> TensorQuant:
    """One-call form: observe every array in ``batches`` and return the TensorQuant."""
    obs = Observer(method, axis, percentile)
    ndim = None
    for b in batches:
        b = np.asarray(b)
        obs.update(b)
        ndim = b.ndim
    return obs.tensor_quant(fmt_name, symmetric, fp8_scale, ndim)
