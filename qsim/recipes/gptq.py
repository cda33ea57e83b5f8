"""GPTQ: second-order weight rounding, column by column, with the error pushed onto the columns
not yet quantized.

Frantar, Ashkboos, Hoefler, Alistarh, "GPTQ: Accurate Post-Training Quantization for Generative
Pre-trained Transformers", ICLR 2023 (arXiv:2210.17323), Algorithm 1: with ``H = 2 X^T X`` (X the
layer's calibration inputs, tokens x in_features) dampened by ``damp * mean(diag H)``, take the
upper Cholesky factor ``U`` of ``H^-1``; for each column ``j``: ``q_j = Q(w_j)``,
``e = (w_j - q_j) / U_jj``, ``w_k -= e U_jk`` for the later columns ``k``. Updates are applied
lazily in blocks of ``block`` columns (the paper's step 2). ``act_order`` quantizes columns in
order of decreasing ``diag H`` (the reference code's ``--act-order``).

The grid of each group is the quantizer's (``quantize_graph`` with ``weight_block`` = ``group``:
symmetric, ``amax / qmax`` from the original weights of the group; the reference code's
``static_groups``), so GPTQ only chooses the codes: the graph keeps its scales, and runs exactly as
an RTN-quantized graph does. Layers are taken in graph order, each with its inputs from the model
whose earlier layers are already quantized (as the reference code propagates quantized outputs).

``{name: gptq, group: 128, act_order: false, damp: 0.01, block: 128, sequential: true}``.
"""
from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np

from qsim.errors import QsimError, WorkloadError
from qsim.numerics.quantize import broadcast_param, dequantize, quantize
from qsim.numerics.tensor_quant import TensorQuant
from qsim.recipes import RecipeMetadata, RecipeState
from qsim.recipes._common import gemm_inputs, with_constants
from qsim.recipes.rtn import check_group

METADATA = RecipeMetadata(stage="quantized", params={"group": 128, "act_order": False, "damp": 0.01, "block": 128,
                                                           "sequential": True},
                          extra_scale_bytes="as rtn (one scale per group); with act_order the groups stay in "
                                            "column order (static groups), so no permutation is stored",
                          extra_inference_passes=0)


def check_params(group=128, act_order=False, damp=0.01, block=128, sequential=True):
    check_group(group)
    for key, value in (("act_order", act_order), ("sequential", sequential)):
        if not isinstance(value, bool):
            raise WorkloadError(f"{key}: expected true or false, got {value!r}")
    if isinstance(damp, bool) or not isinstance(damp, (int, float)) or not 0 < damp < 1:
        raise WorkloadError(f"damp: expected a number in (0, 1), got {damp!r}")
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise WorkloadError(f"block: expected a positive column count, got {block!r}")


def quantizer_options(group=128, **_):
    """GPTQ chooses codes on the quantizer's grid: its groups are the quantizer's."""
    return {"weight_block": group}


def gptq(w: np.ndarray, x: np.ndarray, tq: TensorQuant, act_order: bool = False, damp: float = 0.01,
         block: int = 128) -> np.ndarray:
    """The numpy reference: codes (same shape as ``w``) on the grid of ``tq`` (per channel or per
    group along axis 1, symmetric) chosen by GPTQ for inputs ``x`` (tokens, in_features)."""
    w = np.array(w, np.float64)
    cols = w.shape[1]
    scale = broadcast_param(tq.scale, tq, w.shape) * np.ones(w.shape, np.float32)
    h = 2.0 * x.T.astype(np.float64) @ x.astype(np.float64)
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    order = np.argsort(-np.diag(h), kind="stable") if act_order else np.arange(cols)
    w, h, scale = w[:, order], h[np.ix_(order, order)], scale[:, order]
    h[np.diag_indices(cols)] += damp * np.mean(np.diag(h))
    try:
        u = np.linalg.cholesky(np.linalg.inv(h)).T  # upper factor of H^-1
    except np.linalg.LinAlgError:
        raise QsimError("gptq: the dampened Hessian is not positive definite; raise damp") from None
    codes = np.zeros(w.shape)
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        w1, err = w[:, i1:i2].copy(), np.zeros((w.shape[0], i2 - i1))
        for i in range(i2 - i1):
            col = TensorQuant(scale[:, i1 + i], np.zeros(w.shape[0], np.int64), tq.fmt, axis=0)
            q = quantize(w1[:, i], col)
            codes[:, i1 + i] = q
            e = (w1[:, i] - dequantize(q, col)) / u[i1 + i, i1 + i]
            w1[:, i:] -= np.outer(e, u[i1 + i, i1 + i:i2])
            err[:, i] = e
        w[:, i2:] -= err @ u[i1:i2, i2:]
    out = np.empty_like(codes)
    out[:, order] = codes
    return out


def run(state: RecipeState, group=128, act_order=False, damp=0.01, block=128, sequential=True) -> RecipeState:
    """After quantization: replace the codes of every grouped / per-channel integer Gemm weight.
    Layers sharing an input are taken together, in graph order, each with inputs computed by the
    float graph whose earlier layers already hold their GPTQ weights (the reference code's
    sequential quantization: later layers see, and correct for, the earlier layers' rounding);
    ``sequential: false``: every layer's inputs from the float model, in one pass."""
    from qsim.sim.observers import storage_type

    q = state.qgraph
    targets = [n for n in q.nodes() if n.op == "Gemm" and n.weights["weight"] in q.quant_params
               and q.quant_params[n.weights["weight"]].int_fmt is not None]
    if not targets:
        raise QsimError("gptq: the plan quantizes no Gemm weight to an integer format (use e.g. w4a16)")
    by_input: dict[str, list] = {}
    for node in targets:
        by_input.setdefault(node.inputs[0] if sequential else "", []).append(node)
    constants, done = dict(q.constants), {}
    for nodes in by_input.values():
        xs = gemm_inputs(with_constants(state.graph, done), list(state.calib), [n.name for n in nodes])
        for node in nodes:
            t = node.weights["weight"]
            tq = q.quant_params[t]
            codes = gptq(state.graph.constants[t], xs[node.name], tq, act_order, damp, block)
            constants[t] = codes.astype(np.int64).astype(storage_type(tq.fmt))
            done[t] = dequantize(codes, tq)
    out = copy.copy(q)
    out.constants = constants
    return replace(state, qgraph=out, notes=state.notes + ("GPTQ codes",))
