"""The graph executor: run a Graph on numpy inputs, node by node in topological order.

Steps (kept as short as the ONNX reference evaluator's loop):
1. check the feeds against the graph inputs (names, shapes);
2. for each node in topological order: gather its inputs and weight values, run its kernel,
   store its outputs;
3. return the graph outputs, and with ``trace=True`` every intermediate tensor.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from qsim.errors import GraphError, QsimError
from qsim.ir.graph import Graph
from qsim.sim.float_ops import run_float_kernel


def check_feeds(graph: Graph, feeds: Mapping[str, np.ndarray]) -> None:
    missing = [t for t in graph.inputs if t not in feeds]
    extra = [t for t in feeds if t not in graph.inputs]
    if missing or extra:
        raise QsimError(f"graph {graph.name!r} inputs are {graph.inputs}; missing {missing}, unexpected {extra}")
    for t in graph.inputs:
        want, got = graph.tensor(t).shape, np.shape(feeds[t])
        if tuple(got) != tuple(want):
            raise QsimError(f"input {t!r}: shape {tuple(got)}, graph expects {want}")


def weight_values(graph: Graph, node) -> dict[str, np.ndarray]:
    values = {}
    for role, t in node.weights.items():
        if t not in graph.constants:
            raise GraphError(f"node {node.name!r} ({node.op}): weight {t!r} has no values (a weightless model "
                             "is enough for the cost model, not for simulation)")
        values[role] = graph.constants[t]
    return values


def run_float(graph: Graph, feeds: Mapping[str, np.ndarray], trace: bool = False) -> dict[str, np.ndarray]:
    """Float reference execution. Returns the outputs, or every tensor when ``trace``."""
    check_feeds(graph, feeds)
    env: dict[str, np.ndarray] = {t: np.asarray(feeds[t]) for t in graph.inputs}
    for node in graph.nodes():
        args = [env[t] for t in node.inputs]
        try:
            outs = run_float_kernel(node.op, args, weight_values(graph, node), node.attrs)
        except (ValueError, IndexError) as exc:
            raise GraphError(f"node {node.name!r} ({node.op}): {exc}") from None
        for t, value in zip(node.outputs, outs):
            env[t] = value
    return env if trace else {t: env[t] for t in graph.outputs}
