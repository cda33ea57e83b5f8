"""Value emulation for recipes that no static ``TensorQuant`` describes (per-token dynamic
activations, KV-cache quantization): the quantized graph runs as ``run_fake_quant`` runs it (float
kernels, weights dequantized, every statically quantized tensor on its grid), and each ``Hook``
quantize-dequantizes a node input or an output tensor at run time. Returns real values.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from qsim.ir.graph import Graph
from qsim.sim.executor import check_feeds
from qsim.sim.float_ops import run_float_kernel
from qsim.sim.quantize_graph import _to_grid, real_weight


def run_emulated(qgraph: Graph, feeds: Mapping[str, np.ndarray], hooks: Sequence, trace: bool = False):
    check_feeds(qgraph, feeds)
    on_input = {(h.target, h.index): h.fn for h in hooks if h.kind == "input"}
    on_output = {h.target: h.fn for h in hooks if h.kind == "output"}
    real = {t: _to_grid(qgraph, t, feeds[t])[1] for t in qgraph.inputs}
    weights: dict[str, np.ndarray] = {}
    for node in qgraph.nodes():
        w = {}
        for role, t in node.weights.items():
            if t not in weights:
                weights[t] = real_weight(qgraph, t).astype(np.float32, copy=False)
            w[role] = weights[t]
        args = [on_input[(node.name, i)](x) if (node.name, i) in on_input else x
                for i, x in enumerate(real[t] for t in node.inputs)]
        for t, value in zip(node.outputs, run_float_kernel(node.op, args, w, node.attrs)):
            value = np.asarray(value, np.float32) if np.asarray(value).dtype.kind == "f" else value
            value = _to_grid(qgraph, t, value)[1]
            real[t] = on_output[t](value) if t in on_output else value
    return real if trace else {t: real[t] for t in qgraph.outputs}
