"""TEMPORARY CONTRACT SHIM, to be deleted once ``qsim.simulate`` honours the runtime I/O contract
(outputs keyed by the model's output names, in the runtime's dtype and layout; .tflite fed and
answered in NHWC). Until then it adapts qsim's current answer so that the values can be fuzzed:
outputs mapped to the model's names by position, .tflite feeds/outputs transposed, integer codes
dequantized where the runtime returns float. Every adaptation it makes is counted in ``ADAPTED``
so the report shows what still differs in the contract itself.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

ENABLED = True
ADAPTED: Counter = Counter()


def _graph(path: str):
    if path.endswith(".tflite"):
        from qsim.ir.tflite_import import load_tflite
        return load_tflite(path)
    from qsim.ir.onnx_import import load_onnx
    return load_onnx(path)


def feeds_in(path: str, feeds: dict) -> dict:
    if not (ENABLED and path.endswith(".tflite")):
        return feeds
    out = {}
    for k, v in feeds.items():
        v = np.asarray(v)
        if v.ndim == 4:
            ADAPTED["tflite input NHWC->NCHW"] += 1
            v = np.ascontiguousarray(v.transpose(0, 3, 1, 2))
        out[k] = v
    return out


def outputs_out(path: str, got: dict, ref: dict) -> dict:
    if not ENABLED:
        return got
    from qsim.numerics.quantize import dequantize

    graph = _graph(path)
    if set(got) != set(ref):
        ADAPTED["output names (mapped by position)"] += 1
        got = {name: got[internal] for name, internal in zip(ref, graph.outputs)}
        inner = dict(zip(ref, graph.outputs))
    else:
        inner = {k: k for k in got}
    out = {}
    for name, v in got.items():
        v, want = np.asarray(v), ref[name]
        if path.endswith(".tflite") and v.ndim == 4:
            ADAPTED["tflite output NCHW->NHWC"] += 1
            v = v.transpose(0, 2, 3, 1)
        q = graph.quant_params.get(inner[name])
        if want.dtype.kind == "f" and v.dtype.kind in "iu" and q is not None:
            ADAPTED["integer codes where the runtime returns float"] += 1
            v = dequantize(v, q)
        out[name] = v
    return out
