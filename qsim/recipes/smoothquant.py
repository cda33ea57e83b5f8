"""SmoothQuant: migrate activation outliers into the weights before W8A8 quantization.

Xiao, Lin, Seznec, Wu, Demouth, Han, "SmoothQuant: Accurate and Efficient Post-Training
Quantization for Large Language Models", ICML 2023 (arXiv:2211.10438), eq. 4: per input channel
``j`` of a linear layer, ``s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)``; the activation becomes
``X / s`` and the weight ``W * s`` (``diag(s)`` on its input columns), so ``X W^T`` is unchanged.
The division is folded offline into the op that produces ``X``: a LayerNorm / RMSNorm (its gamma and
beta) or a linear (its output rows and bias), as the paper does for the QKV and FC1 inputs. Several
linears reading the same normalization output share one ``s`` (their ``max|W_j|`` is taken over
all of them).

``{name: smoothquant, alpha: 0.5, nodes: [...]}``: ``nodes`` (default: every Gemm whose input has
such a producer) lists Gemm nodes to smooth. A named node without one, or a graph where no Gemm has
one, is refused with a message naming the node: the scale would have to run as an extra op. The
rewritten float graph is checked to compute the same outputs on a calibration batch.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from qsim.errors import WorkloadError
from qsim.ir.graph import Graph
from qsim.recipes import RecipeMetadata, RecipeState
from qsim.recipes._common import absorber_groups, check_equivalent, gemm_inputs, migrate_scales

METADATA = RecipeMetadata(stage="float", params={"alpha": 0.5, "nodes": []},
                          extra_scale_bytes="none (the smoothing factors are folded into the weights offline)",
                          extra_inference_passes=0)


def check_params(alpha=0.5, nodes=()):
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise WorkloadError(f"alpha: expected a number in [0, 1], got {alpha!r}")
    if not isinstance(nodes, (list, tuple)) or not all(isinstance(n, str) for n in nodes):
        raise WorkloadError(f"nodes: expected a list of Gemm node names, got {nodes!r}")


def smoothing_factors(act_amax: np.ndarray, weights: list[np.ndarray], alpha: float) -> np.ndarray:
    """The numpy reference of eq. 4: ``s_j = amax_x_j^alpha / amax_w_j^(1-alpha)`` (1 where a
    channel is all zero)."""
    w_amax = np.max([np.abs(w).max(axis=0) for w in weights], axis=0).astype(np.float64)
    a = np.asarray(act_amax, np.float64)
    s = np.power(np.maximum(a, 1e-5), alpha) / np.power(np.maximum(w_amax, 1e-5), 1 - alpha)
    return np.where((a > 0) & (w_amax > 0), s, 1.0)


def smooth(graph: Graph, calib, alpha: float = 0.5, nodes=()) -> Graph:
    groups = absorber_groups(graph, list(nodes), "smoothquant")
    xs = gemm_inputs(graph, calib, [linears[0] for linears in groups.values()], max_rows=1 << 30)
    factors = {}
    for src, linears in groups.items():
        amax = np.abs(xs[linears[0]]).max(axis=0)
        ws = [graph.constants[graph.node(n).weights["weight"]] for n in linears]
        factors[src] = (linears, smoothing_factors(amax, ws, alpha))
    out = migrate_scales(graph, factors)
    check_equivalent(graph, out, calib[0], "smoothquant")
    return out


def run(state: RecipeState, alpha=0.5, nodes=()) -> RecipeState:
    graph = smooth(state.graph, list(state.calib), alpha, nodes)
    return replace(state, graph=graph, notes=state.notes + (f"SmoothQuant alpha {alpha}",))
