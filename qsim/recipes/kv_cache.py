"""KV-cache quantization: the keys and values a decoder stores, in int8, fp8 (E4M3) or int4.

Hooper, Kim, Mohammadzadeh, Mahoney, Shao, Keutzer, Gholami, "KVQuant: Towards 10 Million Context
Length LLM Inference with KV Cache Quantization", 2024 (arXiv:2401.18079), and Liu et al., "KIVI: A
Tuning-Free Asymmetric 2bit Quantization for KV Cache", ICML 2024 (arXiv:2402.02750), for the
granularities; vLLM and TensorRT-LLM ship int8 / fp8 caches with static scales.

The cached tensors are the outputs of the key and value projections: a Gemm whose output reaches
the second operand of an attention MatMul through the head split (Reshape to ``(..., heads,
head_dim)``, Transpose). Granularity:

* ``token``: one scale per token and head, computed when the token is written (dynamic), symmetric;
* ``head``: one static scale per head, ``amax / qmax`` over the calibration data (fp8: amax / 448).

Every position is quantized where it is produced, so a full-sequence (prefill) evaluation sees
exactly the values a token-by-token decode would read back from the cache. Execution: **value
emulation** (the IR's graphs built from MatMul nodes carry no cache state to store codes in).

``{name: kv_cache, format: int8, granularity: token}`` (format: int8 | fp8_e4m3 | int4 ...).
"""
from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np

from qsim.errors import QsimError, WorkloadError
from qsim.ir.graph import Graph
from qsim.numerics.quantize import dequantize, quantize
from qsim.numerics.tensor_quant import TensorQuant
from qsim.recipes import Hook, RecipeMetadata, RecipeState
from qsim.recipes._common import CHANNEL_VIEWS, dynamic_qdq
from qsim.sim.executor import run_float
from qsim.sim.observers import quantized_format, scale_zero_point

GRANULARITIES = ("token", "head")
METADATA = RecipeMetadata(stage="runtime", params={"format": "int8", "granularity": "token"},
                          extra_scale_bytes="token: one fp32 scale per cached token and head (K and V); "
                                            "head: one fp32 scale per head",
                          extra_inference_passes=1,
                          executed_by="value emulation (KV codes are not stored in graph state)")


def check_params(format="int8", granularity="token"):
    quantized_format(format)
    if granularity not in GRANULARITIES:
        raise WorkloadError(f"granularity: expected one of {', '.join(GRANULARITIES)}, got {granularity!r}")


def _source(graph: Graph, t: str):
    """(Gemm projecting ``t``'s channels, head_dim from its head split) or None."""
    head_dim = None
    while (p := graph.producer(t)) is not None and p.op in CHANNEL_VIEWS:
        if p.op == "Reshape" and len(p.attrs.get("shape", ())) >= 2:
            head_dim = int(p.attrs["shape"][-1])
        t = p.inputs[0]
    return (p, head_dim) if p is not None and p.op == "Gemm" and head_dim else None


def cache_projections(graph: Graph) -> dict[str, int]:
    """Output tensor of each key / value projection -> head_dim."""
    found = {}
    for node in graph.nodes():
        if node.op == "MatMul":
            src = _source(graph, node.inputs[1])
            if src is not None:
                found[src[0].outputs[0]] = src[1]
    if not found:
        raise QsimError(f"kv_cache: graph {graph.name!r} has no attention MatMul whose key / value operand comes "
                        "from a projection Gemm through a head split; there is no KV cache to quantize")
    return found


def per_token_head(x: np.ndarray, fmt, head_dim: int) -> np.ndarray:
    """Dynamic: one symmetric scale per token and head."""
    split = x.reshape(x.shape[:-1] + (x.shape[-1] // head_dim, head_dim))
    return dynamic_qdq(split, fmt, (-1,), True).reshape(x.shape)


def head_quant(amax: np.ndarray, fmt) -> TensorQuant:
    scale, zero = scale_zero_point(-amax, amax, fmt, True)
    f = quantized_format(fmt)
    return TensorQuant(scale, zero.astype(np.float32 if f.is_float else f.storage_dtype), f, axis=1)


def per_head(x: np.ndarray, tq: TensorQuant, head_dim: int) -> np.ndarray:
    """Static: one calibrated scale per head (axis 1 of the (tokens, heads, head_dim) view)."""
    heads = x.reshape(-1, x.shape[-1] // head_dim, head_dim)
    return dequantize(quantize(heads, tq), tq).reshape(x.shape)


def run(state: RecipeState, format="int8", granularity="token") -> RecipeState:
    tensors = cache_projections(state.graph)
    hooks = []
    if granularity == "token":
        hooks = [Hook("output", t, partial(per_token_head, fmt=format, head_dim=hd)) for t, hd in tensors.items()]
    else:
        amax = {t: 0.0 for t in tensors}
        for batch in state.calib:
            env = run_float(state.graph, batch, trace=True)
            for t, hd in tensors.items():
                x = env[t]
                amax[t] = np.maximum(amax[t], np.abs(x.reshape(-1, x.shape[-1] // hd, hd)).max(axis=(0, 2)))
        hooks = [Hook("output", t, partial(per_head, tq=head_quant(amax[t], format), head_dim=hd))
                 for t, hd in tensors.items()]
    return replace(state, hooks=state.hooks + tuple(hooks),
                   notes=state.notes + (f"KV cache {quantized_format(format).name} per {granularity}",))
