"""AWQ: activation-aware weight quantization by a per-input-channel scale search.

Lin, Tang, Tang, Yang, Chen, Wang, Xiao, Dang, Gan, Han, "AWQ: Activation-aware Weight Quantization
for LLM Compression and Acceleration", MLSys 2024 (arXiv:2306.00978), section 3.2: salient weight
channels are those with large activations; scaling input channel ``j`` of the weight up by ``s_j``
(and the activation down) shrinks its relative rounding error. ``s = s_x^r`` with ``s_x`` the mean
``|X_j|`` over calibration tokens, ``r`` searched over a grid of 20 points in [0, 1) to minimise
``|| X W^T - (X / s) Q(W s)^T ||^2`` with ``Q`` the round-to-nearest group quantizer that follows
(``qsim.recipes.rtn``); ``s`` is normalised by ``sqrt(max s * min s)`` as the reference code does.
The division is folded into the producing LayerNorm / RMSNorm / linear (as SmoothQuant's), so the
float graph computes the same function; quantization then rounds ``W s`` to nearest. Then (``clip``,
the reference code's ``auto_clip``) each group of each output channel is clipped to
``ratio * amax``, ``ratio`` in 1, 0.95 ... 0.55 chosen to minimise that group's share of the output
error on the calibration inputs; the quantizer's min/max scale of the clipped weights is then
``ratio * amax / qmax``. (Layers whose input has no absorber get the clipping search only.)

``{name: awq, group: 128, grid: 20, clip: true, nodes: [...]}``: ``group`` also sets the quantizer's
weight group.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from qsim.errors import WorkloadError
from qsim.ir.graph import Graph
from qsim.recipes import RecipeMetadata, RecipeState
from qsim.recipes._common import absorber_groups, check_equivalent, gemm_inputs, migrate_scales, with_constants
from qsim.recipes.rtn import check_group, rtn

METADATA = RecipeMetadata(stage="float", params={"group": 128, "grid": 20, "clip": True, "nodes": []},
                          extra_scale_bytes="as rtn (one scale per group); the AWQ scales are folded offline",
                          extra_inference_passes=0)


def check_params(group=128, grid=20, clip=True, nodes=()):
    check_group(group)
    if not isinstance(clip, bool):
        raise WorkloadError(f"clip: expected true or false, got {clip!r}")
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 1:
        raise WorkloadError(f"grid: expected a positive number of search points, got {grid!r}")
    if not isinstance(nodes, (list, tuple)) or not all(isinstance(n, str) for n in nodes):
        raise WorkloadError(f"nodes: expected a list of Gemm node names, got {nodes!r}")


def search_scale(x: np.ndarray, weights: list[np.ndarray], fmt, group: int, grid: int = 20) -> tuple[np.ndarray, float]:
    """(best s, its ratio r) for activations ``x`` (tokens, in) feeding ``weights`` (out, in) each.
    r = 0 (s = 1) is plain round-to-nearest, so the result is never worse than it on ``x``."""
    x = np.asarray(x, np.float64)
    s_x = np.abs(x).mean(axis=0)
    refs = [x @ w.T.astype(np.float64) for w in weights]
    best = (np.inf, np.ones(x.shape[1]), 0.0)
    for r in np.arange(grid) / grid:
        s = np.power(np.maximum(s_x, 1e-4), r)
        s = s / np.sqrt(s.max() * s.min())
        loss = sum(float(np.sum((x @ (rtn((w * s).astype(np.float32), fmt, group) / s).T - ref) ** 2))
                   for w, ref in zip(weights, refs))
        if loss < best[0]:
            best = (loss, s, float(r))
    return best[1], best[2]


def search_clip(x: np.ndarray, w: np.ndarray, fmt, group: int, steps: int = 10) -> np.ndarray:
    """``w`` with each (output channel, group) clipped to the ratio of its amax that minimises
    ``sum_tokens (x_g (w_g - Q(clip(w_g)))^T)^2`` (``x`` tokens x in; ratio 1: no clipping)."""
    w = np.asarray(w, np.float32)
    g = group or w.shape[1]
    if w.shape[1] % g:
        return w
    xs = np.asarray(x, np.float64).reshape(len(x), -1, g)
    wg = w.reshape(w.shape[0], -1, g)
    amax = np.abs(wg).max(axis=2, keepdims=True)
    best, best_err = wg, np.full(wg.shape[:2], np.inf)
    for ratio in 1 - np.arange(steps) / (2 * steps):
        clipped = np.clip(wg, -amax * ratio, amax * ratio).astype(np.float32)
        deq = rtn(clipped.reshape(w.shape), fmt, group).reshape(wg.shape)
        err = (np.einsum("ngk,ogk->nog", xs, wg - deq) ** 2).sum(axis=0)
        better = err < best_err
        best = np.where(better[..., None], clipped, best)
        best_err = np.where(better, err, best_err)
    return best.reshape(w.shape)


def awq(graph: Graph, calib, plan, group: int = 128, grid: int = 20, nodes=(), clip: bool = True) -> Graph:
    from qsim.sim.quantize_graph import quantizable

    groups = absorber_groups(graph, list(nodes), "awq")
    xs = gemm_inputs(graph, calib, [linears[0] for linears in groups.values()])
    factors = {}
    for src, linears in groups.items():
        fmt = plan.for_node(graph.node(linears[0])).weight
        if not quantizable(fmt):
            continue
        ws = [graph.constants[graph.node(n).weights["weight"]] for n in linears]
        factors[src] = (linears, search_scale(xs[linears[0]], ws, fmt, group, grid)[0])
    out = migrate_scales(graph, factors)
    check_equivalent(graph, out, calib[0], "awq")
    if not clip:
        return out
    gemms = [n for n in out.nodes() if n.op == "Gemm" and quantizable(plan.for_node(n).weight)
             and (not nodes or n.name in nodes)]
    xs = gemm_inputs(out, calib, [n.name for n in gemms], max_rows=512)
    return with_constants(out, {n.weights["weight"]: search_clip(xs[n.name], out.constants[n.weights["weight"]],
                                                                 plan.for_node(n).weight, group) for n in gemms})


def run(state: RecipeState, group=128, grid=20, clip=True, nodes=()) -> RecipeState:
    graph = awq(state.graph, list(state.calib), state.plan, group, grid, nodes, clip)
    return replace(state, graph=graph, options={**state.options, "weight_block": group},
                   notes=state.notes + (f"AWQ scales, groups of {group}",))
