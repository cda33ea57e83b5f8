"""What dynamic activation quantization adds to a node's cost (``LayerPrecision.dynamic``).

A matrix op whose input activations are quantized at run time first finds the input's min and max
(per tensor, or per token: per row of the last axis): one more read of the input tensor at its
stored width, and two compares per element (min and max). The quantization itself (divide, round,
add the zero point) replaces the requantization a static plan does in the producer's epilogue, so
it is not charged again. Only nodes with MACs and activation inputs are charged: weights are
quantized ahead of time.
"""
from __future__ import annotations

from qsim.cost.footprint import activation_bits, packed_bytes
from qsim.precision import PrecisionPlan

COMPARES_PER_ELEMENT = 2  # running min and running max


def dynamic_pass(graph, node, plan: PrecisionPlan, macs: int) -> tuple[int, int]:
    """(extra vector ops, extra bytes read) of the node's min/max pass; (0, 0) when static."""
    prec = plan.for_node(node)
    if prec.dynamic is None or not macs:
        return 0, 0
    elems = sum(graph.tensor(t).numel for t in node.inputs)
    read = sum(packed_bytes(graph.tensor(t).numel, activation_bits(graph, t, plan)) for t in node.inputs)
    return COMPARES_PER_ELEMENT * elems, read
