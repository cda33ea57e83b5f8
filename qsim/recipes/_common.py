"""Helpers the CNN recipes share: a float graph copy, calibration traces, refusals."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from qsim.errors import QsimError
from qsim.ir.graph import Graph


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
