"""Recipe ``equalization``: cross-layer equalization (CLE) of consecutive layers' weight ranges.

Reference: Markus Nagel, Mart van Baalen, Tijmen Blankevoort, Max Welling, "Data-Free Quantization
Through Weight Equalization and Bias Correction", ICCV 2019, section 4.1.

For a pair ``layer1 -> ReLU -> layer2`` of Conv / Gemm layers (ReLU is positively homogeneous:
``relu(x / s) = relu(x) / s`` for ``s > 0``; a MaxPool between, and a Flatten before a Gemm, commute
with the scaling too), output channel ``i`` of layer 1 is divided by ``s_i`` and input channel ``i``
of layer 2 multiplied by it, with ``s_i = sqrt(r1_i * r2_i) / r2_i`` where ``r1_i = max |W1[i]|``
and ``r2_i = max |W2[:, i]|`` (for a depthwise layer 2, the paper's MobileNet case, ``max |W2[i]|``):
both ranges become ``sqrt(r1_i r2_i)``, which per-tensor weight quantization favours. The float
function is unchanged (up to float rounding). Pairs are found in the graph (or given by name); a given
pair that is not layer1 -> ReLU [-> MaxPool] [-> Flatten] -> layer2 is refused naming the node.
"""
from __future__ import annotations

import numpy as np

from qsim.errors import QsimError
from qsim.recipes._common import float_copy, weight_of

METADATA = {"name": "equalization", "extra_scale_bytes": 0, "extra_inference_passes": 0,
            "calibration_passes": 0,  # data free: weights only
            "reference": "Nagel et al., Data-Free Quantization, ICCV 2019, sec. 4.1"}
_BETWEEN = ("MaxPool", "Flatten")


def _chain(g, first, second=None):
    """The nodes from ``first``'s output to the next Conv / Gemm through ReLU [MaxPool] [Flatten],
    or a QsimError naming the node that breaks it (None when searching and nothing fits)."""
    node, path = first, []
    while True:
        users = g.consumers(node.outputs[0])
        if len(users) != 1 or node.outputs[0] in g.outputs:
            why = f"node {node.name!r}'s output feeds {len(users)} nodes" + (" and the graph output" if
                                                                           node.outputs[0] in g.outputs else "")
            break
        node = users[0]
        if node.op in ("Conv", "Gemm"):
            if not path or path[0].op != "Relu":
                why = f"node {node.name!r} follows {first.name!r} without a Relu between"
                break
            if node.op == "Conv" and int(node.attrs.get("groups", 1)) != 1 and not depthwise(g, node):
                why = f"node {node.name!r} is a grouped Conv that is not depthwise"
                break
            if second is not None and node.name != second:
                why = f"the layer after {first.name!r} is {node.name!r}, not {second!r}"
                break
            return path, node
        if node.op != "Relu" and node.op not in _BETWEEN or node.op == "Relu" and path:
            why = (f"node {node.name!r} ({node.op}) between {first.name!r} and the next layer is not "
                   "Relu/MaxPool/Flatten")
            break
        path.append(node)
    if second is None:
        return None
    raise QsimError(f"recipe equalization: pair ({first.name!r}, {second!r}) is not conv-relu-conv: {why}")


def depthwise(g, node) -> bool:
    """A Conv with one filter per input channel (groups = input channels = output channels)."""
    groups = int(node.attrs.get("groups", 1))
    return node.op == "Conv" and groups > 1 and g.tensor(node.inputs[0]).shape[1] == groups == \
        g.tensor(node.outputs[0]).shape[1]


def scales(r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """s_i = sqrt(r1_i r2_i) / r2_i (1 where a channel is all zero)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.sqrt(r1 * r2) / r2
    return np.where(np.isfinite(s) & (s > 0), s, 1.0)


def equalize_pair(g, first, second) -> np.ndarray:
    """Rescale one pair in place; returns the scales."""
    w1 = weight_of(g, first, "weight", "equalization")
    w2 = weight_of(g, second, "weight", "equalization")
    c = w1.shape[0]
    r1 = np.abs(w1.reshape(c, -1)).max(axis=1)
    if depthwise(g, second):  # input channel i of a depthwise conv is its filter i
        r2 = np.abs(w2.reshape(c, -1)).max(axis=1)
        s = scales(r1.astype(np.float64), r2.astype(np.float64))
        _scale_first(g, first, w1, s)
        g.constants[second.weights["weight"]] = (w2 * s.reshape((c,) + (1,) * (w2.ndim - 1))).astype(np.float32)
        return s
    if w2.shape[1] % c:
        raise QsimError(f"recipe equalization: node {second.name!r} has {w2.shape[1]} inputs, not a multiple of "
                        f"{first.name!r}'s {c} channels")
    per = w2.shape[1] // c  # a Gemm after Flatten: each channel is `per` consecutive features
    w2c = w2.reshape(w2.shape[0], c, per, -1)
    r2 = np.abs(np.moveaxis(w2c, 1, 0).reshape(c, -1)).max(axis=1)
    s = scales(r1.astype(np.float64), r2.astype(np.float64))
    _scale_first(g, first, w1, s)
    g.constants[second.weights["weight"]] = (w2c * s.reshape(1, c, 1, 1)).reshape(w2.shape).astype(np.float32)
    return s


def _scale_first(g, first, w1: np.ndarray, s: np.ndarray) -> None:
    """Output channel i of the first layer (weight and bias) divided by s_i."""
    g.constants[first.weights["weight"]] = (w1 / s.reshape((-1,) + (1,) * (w1.ndim - 1))).astype(np.float32)
    if "bias" in first.weights:
        b = first.weights["bias"]
        g.constants[b] = (np.asarray(g.constants[b], np.float64) / s).astype(np.float32)


def pairs_of(g) -> list[tuple[str, str]]:
    out = []
    for n in g.nodes():
        if n.op in ("Conv", "Gemm"):
            found = _chain(g, n)
            if found:
                out.append((n.name, found[1].name))
    return out


def apply(graph, calib=None, pairs=None, iterations: int = 1):
    """A float copy of ``graph`` with every pair (found, or given as ``[(first, second), ...]``)
    equalized; ``iterations`` sweeps over the pairs (chains of more than two layers converge)."""
    g = float_copy(graph, "equalization")
    chosen = pairs_of(g) if pairs is None else [tuple(p) for p in pairs]
    checked = [(g.node(a), _chain(g, g.node(a), b)[1]) for a, b in chosen]
    for _ in range(int(iterations)):
        for first, second in checked:
            equalize_pair(g, first, second)
    return g
