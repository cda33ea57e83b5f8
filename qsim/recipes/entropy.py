"""Recipe ``entropy``: activation ranges by KL-divergence calibration, as TensorRT calibrates int8.

Reference: Szymon Migacz, "8-bit Inference with TensorRT", GTC 2017 (the entropy calibrator of
TensorRT's INT8 flow); the details the slides leave open follow NVIDIA's reference implementation in
the TensorRT repository (tools/pytorch-quantization, ``calib/histogram.py``, ``_compute_amax_entropy``).
Per activation tensor: a histogram of ``|x|`` over ``[0, amax]`` in 2048 bins, over every calibration
batch; the zero bin takes its neighbour's count (a ReLU output's spike at 0 would otherwise dominate);
for each candidate ``i`` in 128..2048 bins, the reference distribution ``P`` is the first ``i`` bins
with the outliers (bins ``i..``) added to bin ``i - 1``; ``Q`` is the first ``i`` bins merged into 128
levels (bins split at ``linspace(0, i, 129)``) and spread back evenly over the bins that were
non-zero; ``KL(P || Q)`` is minimised (the last minimum on ties) and the threshold is the upper edge
of bin ``i - 1``. Ranges are symmetric ``[-t, t]`` (TensorRT's int8 is symmetric: scale ``t / 127``),
or ``[max(min, -t), t]`` with ``symmetric=False``.

``apply(graph, calib, plan="int8", ...)`` returns the quantized graph (``quantize_graph`` with these
ranges; other keywords go to it). ``entropy_threshold(hist, edges)`` is the numpy reference.
"""
from __future__ import annotations

import numpy as np

from qsim.recipes._common import traces

# Per activation tensor one fp32 scale and no zero point (symmetric): no bytes beyond a per-tensor
# int8 scheme; the clipping costs nothing at inference; calibration: an amax pass, then the histograms.
METADATA = {"name": "entropy", "activation_granularity": "per_tensor", "scale_bytes_per_tensor": 4,
            "extra_scale_bytes": 0, "extra_inference_passes": 0, "calibration_passes": 2,
            "reference": "Migacz, 8-bit Inference with TensorRT, GTC 2017"}


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """sum p log(p / q) over p > 0 of the normalised distributions (inf where q = 0 < p)."""
    if q.sum() == 0:
        return float("inf")
    p = p / p.sum()
    q = q / q.sum()
    nz = p > 0
    if np.any(q[nz] == 0):
        return float("inf")
    return float(np.sum(p[nz] * np.log(p[nz] / q[nz])))


def candidate_q(counts: np.ndarray, levels: int) -> np.ndarray:
    """``counts`` (i bins) merged into ``levels`` groups and spread back over its non-zero bins."""
    i = counts.size
    group = np.digitize(np.arange(i), np.linspace(0, i, levels + 1)) - 1
    sums = np.bincount(group, weights=counts, minlength=levels)
    nonzero = counts != 0
    used = np.bincount(group[nonzero], minlength=levels)
    q = np.zeros(i)
    q[nonzero] = sums[group[nonzero]] / used[group[nonzero]]
    return q


def entropy_threshold(hist: np.ndarray, edges: np.ndarray, levels: int = 128, start: int = 128) -> float:
    """The KL-optimal clipping threshold of a histogram of ``|x|`` (bins from 0)."""
    hist = np.asarray(hist, np.float64).copy()
    hist[0] = hist[1]
    best, best_i = float("inf"), hist.size
    for i in range(start, hist.size + 1):
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()
        if p.sum() == 0:
            continue
        kl = kl_divergence(p, candidate_q(hist[:i], levels))
        if kl <= best:
            best, best_i = kl, i
    return float(edges[best_i])


def ranges(graph, calib, bins: int = 2048, levels: int = 128, symmetric: bool = True) -> dict[str, tuple]:
    """tensor -> (lo, hi) for every float activation of the graph."""
    runs = traces(graph, calib, "entropy")
    names = [t for t, s in graph.tensors.items() if s.kind == "activation" and s.dtype == "float32"]
    out = {}
    for t in names:
        amax = max(float(np.abs(r[t]).max()) for r in runs)
        lo = min(float(r[t].min()) for r in runs)
        if amax == 0:
            out[t] = (0.0, 0.0)
            continue
        hist = sum(np.histogram(np.abs(r[t]), bins=bins, range=(0.0, amax))[0] for r in runs)
        th = entropy_threshold(hist, np.linspace(0.0, amax, bins + 1), levels)
        out[t] = (-th, th) if symmetric else (max(lo, -th), th)
    return out


def apply(graph, calib, plan="int8", bins: int = 2048, levels: int = 128, symmetric: bool = True, **options):
    """The graph quantized for ``plan`` with entropy-calibrated activation ranges."""
    from qsim.sim.quantize_graph import quantize_graph

    r = ranges(graph, calib, bins, levels, symmetric)
    return quantize_graph(graph, plan, list(calib), symmetric_activations=symmetric, activation_ranges=r, **options)
