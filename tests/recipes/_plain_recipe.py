"""A plain recipe module as CNN recipes are written: ``apply(graph, calib, **params) -> graph`` and a
dict ``METADATA``; it scales every Gemm's bias (a hand-checkable float rewrite)."""
from qsim.recipes._common import with_constants

METADATA = {"stage": "float", "params": {"factor": 2.0}, "extra_scale_bytes": "none", "extra_inference_passes": 0}


def apply(graph, calib, factor=2.0):
    biases = [n.weights["bias"] for n in graph.nodes() if n.op == "Gemm" and "bias" in n.weights]
    return with_constants(graph, {t: graph.constants[t] * factor for t in biases})
