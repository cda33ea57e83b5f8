"""Helpers of the dynamic-quantization tests: one-node ONNX models, onnxruntime runs with every
intermediate tensor as a graph output, and the comparison of qsim's trace against them."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, shape_inference


def dql_model() -> bytes:
    """A one-node DynamicQuantizeLinear model with a free-shape float input."""
    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])
    graph = helper.make_graph([node], "dql", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, None),
                               helper.make_tensor_value_info("s", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("z", TensorProto.UINT8, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def ort_session(model, level: str = "ORT_ENABLE_ALL"):
    """An onnxruntime CPU session; ``level``: its graph optimization level. At ORT_ENABLE_EXTENDED and
    above onnxruntime fuses transformer patterns (SkipLayerNormalization, ...) whose float arithmetic
    qsim does not reproduce; ORT_ENABLE_BASIC keeps the file's ops."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def with_all_outputs(path) -> bytes:
    """The model with every node output whose type shape inference knows added as a graph output."""
    m = shape_inference.infer_shapes(onnx.load(str(path)))
    have = {o.name for o in m.graph.output}
    info = {v.name: v for v in m.graph.value_info}
    for n in m.graph.node:
        for o in n.output:
            if o in info and o not in have and n.op_type != "Constant":
                m.graph.output.append(info[o])
                have.add(o)
    return m.SerializeToString()


def ort_trace(path, feeds) -> dict[str, np.ndarray]:
    """Every tensor onnxruntime computes for ``feeds``, by ONNX name."""
    s = ort_session(with_all_outputs(path))
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds)))


def integer_mismatches(trace: dict, ref: dict) -> dict[str, int]:
    """Per integer tensor both traces hold: the number of elements that differ (absent: equal).
    Returns also the count of integer elements compared under the key ``"<compared>"``."""
    out, compared = {}, 0
    for name, want in ref.items():
        if name in trace and want.dtype.kind in "iub":
            got = np.asarray(trace[name])
            assert got.shape == want.shape, name
            compared += want.size
            bad = int(np.count_nonzero(got.astype(np.int64) != want.astype(np.int64)))
            if bad:
                out[name] = bad
    out["<compared>"] = compared
    return out
