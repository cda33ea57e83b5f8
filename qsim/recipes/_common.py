"""Helpers the recipes share: float graph copies, calibration traces and samples of matrix-op
inputs, dynamic quantize-dequantize with the numerics' own formulas, scale migration into the op
that produces an input, refusals."""
from __future__ import annotations

import copy
from typing import Mapping, Sequence

import numpy as np

from qsim.errors import QsimError
from qsim.ir.graph import Graph, Node
from qsim.numerics.formats import get_format
from qsim.numerics.quantize import dequantize, quantize
from qsim.numerics.tensor_quant import TensorQuant
from qsim.sim.executor import run_float
from qsim.sim.observers import quantized_format, scale_zero_point

NORMS = ("LayerNorm", "RMSNorm")
CHANNEL_VIEWS = ("Reshape", "Transpose")  # channel-preserving on the head split / merge paths


def dynamic_qdq(x: np.ndarray, fmt, reduce_axes: Sequence[int] | None, symmetric: bool = True) -> np.ndarray:
    """Quantize-dequantize ``x`` with one scale per slice over ``reduce_axes`` (None: one scale for
    the tensor), computed from the values themselves (dynamic quantization), with the
    observers' scale / zero point rule and ``qsim.numerics.quantize`` (ONNX rounding)."""
    x = np.asarray(x, np.float32)
    fmt = quantized_format(get_format(fmt))
    axes = tuple(range(x.ndim)) if reduce_axes is None else tuple(a % x.ndim for a in reduce_axes)
    keep = [a for a in range(x.ndim) if a not in axes]
    moved = np.transpose(x, keep + list(axes))
    rows = moved.reshape(int(np.prod([x.shape[a] for a in keep], dtype=np.int64)), -1)
    lo, hi = rows.min(axis=1), rows.max(axis=1)
    if symmetric:
        hi = np.maximum(np.abs(lo), np.abs(hi))
        lo = -hi
    scale, zero = scale_zero_point(lo, hi, fmt, symmetric)
    tq = TensorQuant(scale, zero.astype(np.float32 if fmt.is_float else fmt.storage_dtype), fmt, axis=0)
    back = dequantize(quantize(rows, tq), tq).reshape(moved.shape)
    return np.transpose(back, np.argsort(keep + list(axes)))


def with_constants(graph: Graph, updates: Mapping[str, np.ndarray]) -> Graph:
    """The same graph structure with some constant values replaced (the structure is shared)."""
    g = copy.copy(graph)
    g.constants = {**graph.constants, **{t: np.asarray(v, np.float32) for t, v in updates.items()}}
    g.quant_params = dict(graph.quant_params)
    return g


def gemm_inputs(graph: Graph, calib: Sequence[Mapping[str, np.ndarray]], names: Sequence[str],
                max_rows: int = 4096) -> dict[str, np.ndarray]:
    """The float reference's input rows (tokens, in_features) of each named node over the calibration
    batches (an evenly spaced subset of ``max_rows`` rows when there are more)."""
    if not calib:
        raise QsimError("this recipe needs at least one calibration batch")
    parts: dict[str, list] = {n: [] for n in names}
    for batch in calib:
        env = run_float(graph, batch, trace=True)
        for n in names:
            x = env[graph.node(n).inputs[0]]
            parts[n].append(x.reshape(-1, x.shape[-1]))
    out = {}
    for n, xs in parts.items():
        x = np.concatenate(xs).astype(np.float64)
        out[n] = x[np.linspace(0, len(x) - 1, max_rows).astype(int)] if len(x) > max_rows else x
    return out


def absorber(graph: Graph, node: Node) -> Node | None:
    """The op that can absorb a per-input-channel scale of ``node``'s input: a LayerNorm / RMSNorm
    or a Gemm producing it, reached through head split / merge views and the value operand of
    an attention MatMul, whose output feeds nothing else. None when there is none."""
    t = node.inputs[0]
    while True:
        users = graph.consumers(t)
        producer = graph.producer(t)
        if producer is None:
            return None
        if producer.op in NORMS or producer.op == "Gemm":
            same = all(u.op == "Gemm" and u.inputs[0] == t for u in users)
            return producer if (same if producer.op in NORMS else len(users) == 1) else None
        if len(users) != 1:
            return None
        if producer.op in CHANNEL_VIEWS:
            t = producer.inputs[0]
        elif producer.op == "MatMul" and graph.producer(producer.inputs[0]) is not None \
                and graph.producer(producer.inputs[0]).op == "Softmax":
            t = producer.inputs[1]  # probs @ V: each output channel is V's channel
        else:
            return None


def migrate_scales(graph: Graph, groups: Mapping[str, tuple[list[str], np.ndarray]]) -> Graph:
    """Divide the output channels of each absorber by ``s`` and multiply the input columns of the
    linears it feeds by ``s`` (``groups``: absorber name -> (linear names, s)); checked: the float
    outputs on a probe must stay the same."""
    updates: dict[str, np.ndarray] = {}
    for name, (linears, s) in groups.items():
        src = graph.node(name)
        s = np.asarray(s, np.float64)
        for role, t in src.weights.items():
            w = np.asarray(updates.get(t, graph.constants[t]), np.float64)
            updates[t] = w / (s[:, None] if w.ndim == 2 else s)
        for lin in linears:
            t = graph.node(lin).weights["weight"]
            updates[t] = np.asarray(updates.get(t, graph.constants[t]), np.float64) * s[None, :]
    return with_constants(graph, updates)


def check_equivalent(before: Graph, after: Graph, probe: Mapping[str, np.ndarray], recipe: str) -> None:
    """A scale migration must leave the float function unchanged (to float rounding)."""
    a, b = run_float(before, probe), run_float(after, probe)
    for t in before.outputs:
        err = np.max(np.abs(a[t] - b[t])) / max(float(np.max(np.abs(a[t]))), 1e-12)
        if err > 1e-3:
            raise QsimError(f"{recipe}: migrating scales changed output {t!r} by {err:.2e} (relative); "
                            "the graph's channel layout is not one this recipe understands")


def absorber_groups(graph: Graph, names: Sequence[str], recipe: str) -> dict[str, list[str]]:
    """Absorber name -> the linears whose input it produces, for the Gemm nodes ``names`` (empty:
    every Gemm that has an absorber). A named Gemm without one is refused, naming it; so is a
    graph where no Gemm has one."""
    gemms = [n for n in graph.nodes() if n.op == "Gemm"]
    if names:
        known = {n.name for n in gemms}
        for name in names:
            if name not in known:
                raise QsimError(f"{recipe}: no Gemm node named {name!r} in graph {graph.name!r}")
    chosen = [n for n in gemms if not names or n.name in names]
    groups: dict[str, list[str]] = {}
    for node in chosen:
        src = absorber(graph, node)
        if src is None:
            if names or node is chosen[-1] and not groups:
                raise QsimError(f"{recipe}: node {node.name!r} ({node.op}): its input is not produced by a "
                                "LayerNorm, RMSNorm or linear whose only consumers it could compensate, so the "
                                "scale cannot be migrated", node=None)
            continue
        members = [u.name for u in graph.consumers(node.inputs[0])] if src.op in NORMS else [node.name]
        groups.setdefault(src.name, [])
        groups[src.name] += [m for m in members if m not in groups[src.name]]
    return groups


def float_copy(graph: Graph, recipe: str) -> Graph:
    """A copy of a float graph whose constants a recipe may change; a quantized graph is refused."""
    if graph.quant_params:
        raise QsimError(f"recipe {recipe}: graph {graph.name!r} is already quantized; it transforms float graphs")
    from qsim.sim.quantize_graph import _rebuild

    g = _rebuild(graph, {}, {})  # same nodes, names and element types
    g.constants.update({k: np.array(v, copy=True) for k, v in graph.constants.items()})
    return g


def traces(graph: Graph, calib: Sequence[Mapping[str, np.ndarray]], recipe: str) -> list[dict]:
    """Every tensor of the float reference on every calibration batch."""
    from qsim.sim.executor import run_float

    batches = list(calib)
    if not batches:
        raise QsimError(f"recipe {recipe} needs at least one calibration batch (a dict of graph inputs)")
    return [run_float(graph, b, trace=True) for b in batches]


def weight_of(graph: Graph, node, role: str, recipe: str) -> np.ndarray:
    t = node.weights.get(role)
    if t is None or t not in graph.constants:
        raise QsimError(f"recipe {recipe}: node {node.name!r} ({node.op}) has no {role} values")
    return np.asarray(graph.constants[t], np.float32)
