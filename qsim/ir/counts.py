"""Per-node counts (MACs, vector ops, parameters, activation elements) and GEMM views from the op registry."""
from __future__ import annotations

from dataclasses import dataclass

from qsim.ir.registry import MatrixView, get_op


@dataclass(frozen=True)
class NodeCounts:
    macs: int
    vector_ops: int
    params: int  # weight elements
    state: int  # persistent state elements read per call (KV cache)
    input_elems: int
    output_elems: int


def node_counts(graph, node) -> NodeCounts:
    key = ("counts", node.name)
    if key not in graph.derived:
        graph.derived[key] = _node_counts(graph, node)
    return graph.derived[key]


def _node_counts(graph, node) -> NodeCounts:
    opdef = get_op(node.op)
    ins = [graph.tensor(t).shape for t in node.inputs]
    outs = tuple(graph.tensor(t).shape for t in node.outputs)
    return NodeCounts(
        macs=int(opdef.macs(ins, outs, node.attrs)),
        vector_ops=int(opdef.vector_ops(ins, outs, node.attrs)),
        params=sum(graph.tensor(t).numel for t in node.weights.values()),
        state=sum(graph.tensor(t).numel for t in node.state.values()),
        input_elems=sum(graph.tensor(t).numel for t in node.inputs),
        output_elems=sum(graph.tensor(t).numel for t in node.outputs),
    )


def node_matrix(graph, node) -> MatrixView | None:
    """The node as GEMMs (its op's ``matrix``), or None for ops without a GEMM view."""
    lower = get_op(node.op).matrix
    if lower is None:
        return None
    ins = [graph.tensor(t).shape for t in node.inputs]
    return lower(ins, tuple(graph.tensor(t).shape for t in node.outputs), node.attrs)


def graph_counts(graph) -> dict[str, int]:
    """Whole-graph MACs and parameters (shared weight tensors counted once)."""
    if "summary" not in graph.derived:
        graph.derived["summary"] = _graph_counts(graph)
    return dict(graph.derived["summary"])


def _graph_counts(graph) -> dict[str, int]:
    macs = sum(node_counts(graph, n).macs for n in graph.nodes())
    weights = {t for n in graph.nodes() for t in n.weights.values()}
    params = sum(graph.tensor(t).numel for t in weights)
    return {"nodes": len(graph), "macs": macs, "params": params}
