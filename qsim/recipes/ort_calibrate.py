"""onnxruntime's calibrators (``onnxruntime/quantization/calibrate.py``, 1.32) reproduced in numpy:
from the float tensors of every calibration batch to the (lowest, highest) range of each tensor.

``quantize_static`` runs its calibrator once over the whole data reader, so every method sees all
batches at once:

* ``MinMax``: per batch ``min`` / ``max`` (ReduceMin / ReduceMax, exact in fp32), then ``nanmin`` /
  ``nanmax`` over batches, or ``nanmean`` with ``CalibMovingAverage`` (the exponential averaging
  constant only weighs strided calls, ``CalibStridedMinMax``, which is reproduced too);
  ``CalibTensorRangeSymmetric`` gives ``(-amax, amax)``;
* ``Entropy``: one histogram of the stacked batches, 128 bins over ``[-t, t]`` (``t`` the largest
  magnitude), then the KL search of ``get_entropy_threshold`` with 128 quantized bins; with these
  defaults (``quantize_static`` passes no bin counts) the search has one candidate: ``[-t, t]``
  clipped to the observed ``[min, max]``;
* ``Percentile``: 2048 bins, symmetric by default (a histogram of ``|x|``; the threshold is the edge
  where the CDF reaches ``CalibPercentile`` = 99.999 %), clipped to ``[min, max]``;
* ``Distribution``: 2048 bins over ``[-t, t]``; an integer type uses (lowest edge, highest edge).

The float tensors come from a ``tracer``: ``"onnxruntime"`` runs the float model in an onnxruntime
session with optimizations off, as ``quantize_static``'s calibrator does, so the ranges are the ones
it sees bit for bit; ``"reference"`` runs ``onnx.reference`` (numpy kernels): float sums in another
order, so a range can differ in its last bits (``benchmarks``/tests measure how often).
"""
from __future__ import annotations

import copy

import numpy as np
import onnx

from qsim.errors import QsimError

METHODS = ("MinMax", "Entropy", "Percentile", "Distribution")
TRACERS = ("onnxruntime", "reference")


def trace_batches(model: onnx.ModelProto, feeds: list[dict], tensors: list[str], tracer: str) -> dict[str, list]:
    """Tensor name -> its float value on every batch."""
    if tracer not in TRACERS:
        raise QsimError(f"unknown tracer {tracer!r}; known: {', '.join(TRACERS)}")
    if tracer == "reference":
        from onnx.reference import ReferenceEvaluator

        ev = ReferenceEvaluator(model)
        runs = [ev.run(None, dict(f), intermediate=True) for f in feeds]
        return {t: [np.asarray(r[t]) for r in runs] for t in tensors}
    import onnxruntime as ort

    m = copy.deepcopy(model)
    m = onnx.shape_inference.infer_shapes(m)
    infos = {v.name: v for v in list(m.graph.value_info) + list(m.graph.input) + list(m.graph.output)}
    have = {o.name for o in m.graph.output}
    for t in tensors:
        if t not in have:
            if t not in infos:
                raise QsimError(f"tensor {t!r} has no inferred type: run onnx shape inference first")
            m.graph.output.append(infos[t])
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    out: dict[str, list] = {t: [] for t in tensors}
    for f in feeds:
        values = dict(zip(names, sess.run(None, dict(f))))
        for t in tensors:
            out[t].append(np.array(values[t], copy=True))
    return out


def _stacked(values: list[np.ndarray], tensor: str) -> np.ndarray:
    try:
        return np.asarray(values).flatten()
    except ValueError:
        raise QsimError(f"tensor {tensor!r}: calibration batches of different shapes cannot be stacked "
                        "(onnxruntime's histogram calibrators stack them too); give batches of one shape") from None


def minmax_ranges(values: dict[str, list], symmetric: bool = False, moving_average: bool = False,
                  averaging_constant: float = 0.01, stride: int | None = None) -> dict[str, tuple]:
    """MinMaxCalibrater.compute_data (and merge_range over strided calls)."""
    n = len(next(iter(values.values()))) if values else 0
    chunks = [(0, n)] if not stride else [(s, s + stride) for s in range(0, n, stride)]
    if stride and n % stride:
        raise QsimError(f"CalibStridedMinMax: {n} calibration batches are not a multiple of the stride {stride}")
    merged: dict[str, tuple] = {}
    for lo_i, hi_i in chunks:
        new = {}
        for t, vals in values.items():
            mins = [np.array([v.min()], v.dtype) for v in vals[lo_i:hi_i]]  # ReduceMin -> Reshape [-1]
            maxs = [np.array([v.max()], v.dtype) for v in vals[lo_i:hi_i]]
            if moving_average:
                lo, hi = np.nanmean(mins, axis=0), np.nanmean(maxs, axis=0)
            else:
                lo, hi = np.nanmin(mins, axis=0), np.nanmax(maxs, axis=0)
            if symmetric:
                amax = np.nanmax([np.abs(lo), np.abs(hi)], axis=0)
                lo, hi = -amax, amax
            new[t] = (lo, hi)
        if not merged:
            merged = new
            continue
        for t, (old_lo, old_hi) in merged.items():
            lo, hi = new[t]
            if moving_average:
                new[t] = (old_lo + averaging_constant * (lo - old_lo), old_hi + averaging_constant * (hi - old_hi))
            else:
                new[t] = (min(old_lo, lo), max(old_hi, hi))
        merged = new
    return merged


def histogram_ranges(values: dict[str, list], method: str, symmetric: bool | None = None,
                     percentile: float = 99.999) -> dict[str, tuple]:
    """HistogramCollector.collect + compute_collection_result for Entropy, Percentile, Distribution
    with the bin counts ``quantize_static`` uses (it passes none through)."""
    if method == "Entropy":
        num_bins, quantized_bins, sym = 128, 128, bool(symmetric)
    elif method == "Percentile":
        num_bins, quantized_bins, sym = 2048, 128, True if symmetric is None else bool(symmetric)
    else:
        num_bins, quantized_bins, sym = 2048, 128, False
    out = {}
    for t, vals in values.items():
        data = _stacked(vals, t)
        lo, hi = (np.nanmin(data), np.nanmax(data)) if data.size else (np.array(0, data.dtype),) * 2
        if method == "Percentile" and sym:
            hist, edges = np.histogram(np.absolute(data), bins=num_bins)
            edges = edges.astype(data.dtype)
        else:
            threshold = np.array(max(abs(lo), abs(hi)), dtype=data.dtype)
            hist, edges = np.histogram(data, num_bins, range=(-threshold, threshold))
        if method == "Percentile":
            out[t] = _percentile(hist, edges, lo, hi, percentile, sym)
        elif method == "Entropy":
            out[t] = entropy_threshold(hist, edges, lo, hi, quantized_bins)
        else:
            out[t] = (edges.min(), edges.max())
    return out


def _percentile(hist, edges, lo, hi, percentile: float, symmetric: bool) -> tuple:
    if not 0 <= percentile <= 100:
        raise QsimError(f"CalibPercentile must be in [0, 100], got {percentile}")
    cdf = np.cumsum(hist / hist.sum())
    if symmetric:
        right = np.searchsorted(cdf, percentile / 100.0)
        th = (-np.array(edges[right], dtype=edges.dtype), np.array(edges[right], dtype=edges.dtype))
    else:
        cut = (100.0 - percentile) / 200.0
        th = (np.array(edges[np.searchsorted(cdf, cut)], dtype=edges.dtype),
              np.array(edges[np.searchsorted(cdf, 1.0 - cut)], dtype=edges.dtype))
    if th[0] < lo:
        th = (lo, th[1])
    if th[1] > hi:
        th = (th[0], hi)
    return th


def _smooth(p: np.ndarray, eps: float = 0.0001):
    """quant_utils.smooth_distribution."""
    is_zeros = (p == 0).astype(np.float32)
    is_nonzeros = (p != 0).astype(np.float32)
    n_zeros = is_zeros.sum()
    n_nonzeros = p.size - n_zeros
    if not n_nonzeros:
        return None
    eps1 = eps * float(n_zeros) / float(n_nonzeros)
    hist = p.astype(np.float32)
    hist += eps * is_zeros + (-eps1) * is_nonzeros
    return hist


def _kl(pk: np.ndarray, qk: np.ndarray) -> np.float32:
    """calibrate.entropy: fp32 normalisation, scipy's rel_entr, sum."""
    pk = np.asarray(pk).astype(np.float32)
    pk = 1.0 * pk / np.sum(pk, axis=0, keepdims=True)
    qk = np.asarray(qk).astype(np.float32)
    pk, qk = np.broadcast_arrays(pk, qk)
    qk = 1.0 * qk / np.sum(qk, axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        res = np.empty(pk.shape, dtype=pk.dtype)
        res[:] = pk[:] * np.log(pk[:] / qk[:])
    res[(pk == 0) & (qk >= 0)] = 0
    res[~((pk > 0) & (qk > 0))] = np.inf
    return np.sum(res, axis=0).astype(pk.dtype)


def entropy_threshold(hist, edges, lo, hi, quantized_bins: int = 128) -> tuple:
    """HistogramCollector.get_entropy_threshold (the KL search over symmetric windows)."""
    num_bins = hist.size
    zero_bin = num_bins // 2
    half_q = quantized_bins // 2
    kl = np.zeros(zero_bin - half_q + 1)
    thresholds = [None] * kl.size
    for i in range(half_q, zero_bin + 1):
        start, end = zero_bin - i, min(zero_bin + i + 1, num_bins)
        thresholds[i - half_q] = (edges[start], edges[end])
        sliced = hist[start:end].copy()
        p = sliced.copy()
        p[0] += hist[:start].sum()
        p[-1] += hist[end:].sum()
        nonzeros = (p != 0).astype(np.int64)
        merged = sliced.size // quantized_bins
        qbins = np.array([sliced[k * merged:(k + 1) * merged].sum() for k in range(quantized_bins)], np.int64)
        qbins[-1] += sliced[quantized_bins * merged:].sum()
        q = np.zeros(p.size, dtype=np.int64)
        for k in range(quantized_bins):
            norm = nonzeros[k * merged:(k + 1) * merged].sum()
            if norm != 0:
                q[k * merged:(k + 1) * merged] = qbins[k] / norm  # truncated into int64, as onnxruntime
        ps, qs = _smooth(p), _smooth(q)
        kl[i - half_q] = np.inf if ps is None or qs is None else np.array(_kl(ps, qs), dtype=edges.dtype)
    best = thresholds[int(np.argmin(kl))]
    if best[0] < lo:
        best = (lo, best[1])
    if best[1] > hi:
        best = (best[0], hi)
    return best


def calibrate(values: dict[str, list], method: str, options: dict) -> dict[str, tuple]:
    """(lowest, highest) per tensor for ``calibrate_method`` and quantize_static's extra_options."""
    if method not in METHODS:
        raise QsimError(f"unknown calibrate_method {method!r}; known: {', '.join(METHODS)}")
    symmetric = options.get("CalibTensorRangeSymmetric")
    if method == "MinMax":
        return minmax_ranges(values, bool(symmetric), bool(options.get("CalibMovingAverage", False)),
                             float(options.get("CalibMovingAverageConstant", 0.01)),
                             options.get("CalibStridedMinMax"))
    return histogram_ranges(values, method, symmetric, float(options.get("CalibPercentile", 99.999)))
