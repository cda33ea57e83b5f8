"""The precision plan an imported graph implies: per node, the stored formats of its weight and its
input activation (``TensorSpec.dtype``, which importers set from the file's quantization).

The plan's default is the per-node precision that covers the most MACs (a quantized CNN: uint8
or int8 activations with int8 weights); every node that differs (a float Softmax left at the end,
a float first layer) gets an override by name. Works for any Graph (ONNX, TFLite, builders).
"""
from __future__ import annotations

from collections import Counter

from qsim.errors import WorkloadError
from qsim.numerics.formats import FP32, Format
from qsim.precision import PrecisionPlan, layer_precision, plan_format


def _format(dtype: str) -> Format | None:
    try:
        return plan_format(dtype)
    except WorkloadError:  # ids (int64), masks (bool): not a number format of the data path
        return None


def _formats(g, node) -> tuple[Format | None, Format]:
    """(weight format or None for an op without weights, input activation format)."""
    acts = [_format(g.tensor(t).dtype) for t in node.inputs]
    act = next((f for f in acts if f), None) or _format(g.tensor(node.outputs[0]).dtype) or FP32
    role = "weight" if "weight" in node.weights else next(iter(node.weights), None)
    weight = _format(g.tensor(node.weights[role]).dtype) if role else None
    return weight, act


def plan_from_graph(g) -> PrecisionPlan:
    """Default: the precision that covers the most MACs (then the most nodes); an override by name
    for every node that differs. Ops without weights take the default's weight format."""
    from qsim.ir.counts import node_counts

    nodes = g.nodes()
    formats = [_formats(g, n) for n in nodes]
    weighted = Counter()
    for n, (w, a) in zip(nodes, formats):
        weighted[layer_precision(w or a, a)] += node_counts(g, n).macs * len(nodes) + 1
    if not weighted:
        return PrecisionPlan.uniform(FP32)
    default = max(weighted, key=weighted.__getitem__)
    overrides = []
    for n, (w, a) in zip(nodes, formats):
        p = layer_precision(w or default.weight, a)
        if p != default:
            overrides.append(({"name": n.name}, p))
    return PrecisionPlan(default, tuple(overrides))
