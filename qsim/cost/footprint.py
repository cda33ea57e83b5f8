"""Bytes: tensor sizes at a node's formats, and peak activation memory from a liveness pass.

Sub-byte formats are packed (two int4 per byte); biases of integer layers are stored at the
accumulator width (int32), as TFLite and onnxruntime store them.
"""
from __future__ import annotations

from math import ceil

from qsim.precision import LayerPrecision, PrecisionPlan

BIAS_ROLES = {"bias", "shift", "beta", "bq", "bk", "bv", "bo"}
INDEX_DTYPES = {"int64": 64, "int32": 32}  # token ids and other integer graph inputs


def packed_bytes(numel: int, bits: float) -> int:
    return int(ceil(numel * bits / 8))


def weight_bits(role: str, prec: LayerPrecision) -> float:
    if role in BIAS_ROLES and not prec.weight.is_float:
        return prec.accumulator.storage_bits
    return prec.weight.storage_bits


def activation_bits(graph, tensor: str, plan: PrecisionPlan) -> float:
    """Bits per element of an activation tensor: its producer's activation format; a graph input
    takes its first consumer's, except integer index inputs (token ids), which keep their dtype."""
    spec = graph.tensor(tensor)
    producer = graph.producer(tensor)
    if producer is not None:
        return plan.for_node(producer).activation.storage_bits
    if spec.dtype in INDEX_DTYPES:
        return INDEX_DTYPES[spec.dtype]
    consumers = graph.consumers(tensor)
    prec = plan.for_node(consumers[0]) if consumers else plan.default
    return prec.activation.storage_bits


def tensor_bytes(graph, tensor: str, plan: PrecisionPlan) -> int:
    return packed_bytes(graph.tensor(tensor).numel, activation_bits(graph, tensor, plan))


def weight_footprint(graph, plan: PrecisionPlan) -> int:
    """Stored bytes of every weight tensor, each counted once even if shared."""
    seen: dict[str, int] = {}
    for node in graph.nodes():
        prec = plan.for_node(node)
        for role, t in node.weights.items():
            if t not in seen:
                seen[t] = packed_bytes(graph.tensor(t).numel, weight_bits(role, prec))
    return sum(seen.values())


def state_footprint(graph, plan: PrecisionPlan) -> int:
    """Bytes of persistent state (KV caches) at each owner's activation format."""
    return sum(packed_bytes(graph.tensor(t).numel, plan.for_node(n).activation.storage_bits)
               for n in graph.nodes() for t in n.state.values())


def peak_activation_bytes(graph, plan: PrecisionPlan) -> tuple[int, str]:
    """Peak bytes of live activation tensors over the topological order, and the node where it occurs.

    A tensor is live from its producer (graph inputs: from the start) until its last consumer has
    run; graph outputs stay live to the end. While a node runs, its inputs and outputs are both
    live (no in-place reuse is assumed)."""
    order = graph.nodes()
    position = {n.name: i for i, n in enumerate(order)}
    last_use: dict[str, int] = {}
    for node in order:
        for t in node.inputs:
            last_use[t] = position[node.name]
    for t in graph.outputs:
        last_use[t] = len(order)
    size = {}
    live = 0
    for t in graph.inputs:
        size[t] = tensor_bytes(graph, t, plan)
        live += size[t]
    peak, where = live, order[0].name if order else ""
    for i, node in enumerate(order):
        for t in node.outputs:
            size[t] = tensor_bytes(graph, t, plan)
            live += size[t]
        if live > peak:
            peak, where = live, node.name
        for t in set(node.inputs) | set(node.outputs):
            if last_use.get(t, i) <= i:
                live -= size[t]
                last_use[t] = -1  # freed
    return peak, where
