"""Dynamic activation quantization at the inputs of matrix ops: per token (LLM runtimes) or per
tensor (onnxruntime's ``quantize_dynamic``).

Per-token scales: Yao, Yazdani Aminabadi, Zhang, Wu, Li, He, "ZeroQuant: Efficient and Affordable
Post-Training Quantization for Large-Scale Transformers", NeurIPS 2022 (arXiv:2206.01861), sec. 4.1
("token-wise quantization"); with SmoothQuant's W8A8 (Xiao et al. 2023) it is the W8A8 scheme of
TensorRT-LLM and vLLM. Each row (token) of a Gemm input gets its own scale ``amax_row / qmax``
(symmetric, computed at run time); a MatMul of two activations takes per-row scales for its first
operand and per-column scales for its second (so each output is ``s_i * t_j * integer dot``: the
form an integer GEMM can run; for attention, Q and K per token, V per channel). ``granularity:
tensor`` uses one scale per tensor, asymmetric by default (onnxruntime's DynamicQuantizeLinear:
uint8, ``[min(x, 0), max(x, 0)]``).

Execution: the integer executor has no dynamic-scale path, so this recipe is **value emulation**:
weights on their quantized grid, each matrix-op input quantize-dequantized with its dynamic scales
(``qsim.numerics.quantize`` rounding), everything else in fp32. Activations of the nodes it covers
(a matrix op whose plan activation is an integer or fp8 format) are left float for the static
quantizer, so they are not also quantized statically.

``{name: dynamic, granularity: token, format: int8, symmetric: true}``; ``format`` defaults to
each node's plan activation format, ``symmetric`` to true per token and false per tensor.
"""
from __future__ import annotations

from dataclasses import replace
from functools import partial

from qsim.errors import WorkloadError
from qsim.numerics.formats import FP32
from qsim.recipes import Hook, RecipeMetadata, RecipeState
from qsim.recipes._common import dynamic_qdq

MATRIX_OPS = ("Gemm", "MatMul")
GRANULARITIES = ("token", "tensor")
METADATA = RecipeMetadata(
    stage="runtime", params={"granularity": "token", "format": "", "symmetric": ""},  # "": see the doc
    extra_scale_bytes="one fp32 scale per token (row) of each matrix-op input, computed at run time "
                      "(per tensor: one scale and zero point)",
    extra_inference_passes=1, executed_by="value emulation (no integer dynamic-scale kernel)")


def check_params(granularity="token", format="", symmetric=""):
    from qsim.sim.observers import quantized_format

    if granularity not in GRANULARITIES:
        raise WorkloadError(f"granularity: expected one of {', '.join(GRANULARITIES)}, got {granularity!r}")
    if format:
        quantized_format(format)
    if symmetric != "" and not isinstance(symmetric, bool):
        raise WorkloadError(f"symmetric: expected true or false, got {symmetric!r}")


def float_activations(plan):
    """``plan`` with every activation format set to fp32 (weights unchanged)."""
    from qsim.precision import PrecisionPlan, layer_precision

    def floated(prec):
        return layer_precision(prec.weight, FP32, None, prec.policy.value if prec.policy else None)

    return PrecisionPlan(floated(plan.default), tuple((m, floated(p)) for m, p in plan.overrides),
                         **({"recipes": plan.recipes} if hasattr(plan, "recipes") else {}))


def run(state: RecipeState, granularity="token", format="", symmetric="") -> RecipeState:
    from qsim.sim.quantize_graph import quantizable

    sym = (granularity == "token") if symmetric == "" else symmetric
    hooks = []
    for node in state.graph.nodes():
        fmt = format or state.plan.for_node(node).activation
        if node.op not in MATRIX_OPS or not quantizable(fmt):
            continue
        first = (-1,) if granularity == "token" else None
        hooks.append(Hook("input", node.name, partial(dynamic_qdq, fmt=fmt, reduce_axes=first, symmetric=sym), 0))
        if node.op == "MatMul":
            second = (-2,) if granularity == "token" else None
            hooks.append(Hook("input", node.name, partial(dynamic_qdq, fmt=fmt, reduce_axes=second,
                                                          symmetric=sym), 1))
    note = f"matrix-op inputs dynamic per {granularity} ({'symmetric' if sym else 'asymmetric'}), others fp32"
    return replace(state, plan=float_activations(state.plan), hooks=state.hooks + tuple(hooks),
                   notes=state.notes + (note,))
