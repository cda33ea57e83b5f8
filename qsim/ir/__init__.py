"""Graph IR: ``Graph``, ``Node``, ``TensorSpec``, the op registry, model builders and importers."""
from qsim.ir import ops  # noqa: F401  (fills the registry)
from qsim.ir.counts import NodeCounts, graph_counts, node_counts
from qsim.ir.graph import Graph, Node, TensorSpec
from qsim.ir.registry import OPS, OpDef, get_op

__all__ = ["Graph", "Node", "TensorSpec", "OPS", "OpDef", "get_op", "NodeCounts", "node_counts",
           "graph_counts"]
