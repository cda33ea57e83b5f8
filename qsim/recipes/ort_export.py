"""A float qsim Graph written as the float ONNX model onnxruntime's ``quantize_static`` would take,
so that the ``ort_static`` recipe applies to graphs built in Python (the digits CNN, builders).

Covered: Conv (groups, stride, dilation, pads, optional bias), Gemm (weight ``(out, in)`` as
``transB=1``), Relu, Sigmoid, Add, Mul, MaxPool / AvgPool (kernel, stride, pads, ceil_mode,
count_include_pad), GlobalAvgPool, Flatten, Softmax. Tensor names are the IR's. Another op is
refused with the node's name (write the model as ONNX yourself, or use quantize_graph).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from qsim.errors import QsimError
from qsim.ir.ops._attrs import pads, pair

OPSET = 17
_SIMPLE = {"Relu": "Relu", "Sigmoid": "Sigmoid", "Add": "Add", "Mul": "Mul", "GlobalAvgPool": "GlobalAveragePool"}


def _conv(node, w):
    a = node.attrs
    kw = {"kernel_shape": list(pair(a["kernel"], "kernel")), "strides": list(pair(a.get("stride", 1), "stride")),
          "dilations": list(pair(a.get("dilation", 1), "dilation")), "pads": list(pads(a.get("pad", 0))),
          "group": int(a.get("groups", 1))}
    return "Conv", [w["weight"]] + ([w["bias"]] if "bias" in w else []), kw


def _pool(node, w):
    a = node.attrs
    k = pair(a["kernel"], "kernel")
    kw = {"kernel_shape": list(k), "strides": list(pair(a.get("stride", k), "stride")),
          "pads": list(pads(a.get("pad", 0))), "ceil_mode": int(bool(a.get("ceil_mode", False)))}
    if node.op == "AvgPool":
        kw["count_include_pad"] = int(bool(a.get("count_include_pad", False)))
    return {"MaxPool": "MaxPool", "AvgPool": "AveragePool"}[node.op], [], kw


def _node(node):
    w = dict(node.weights)
    if node.op == "Conv":
        return _conv(node, w)
    if node.op == "Gemm":
        return "Gemm", [w["weight"]] + ([w["bias"]] if "bias" in w else []), {"transB": 1}
    if node.op in ("MaxPool", "AvgPool"):
        return _pool(node, w)
    if node.op == "Flatten":
        return "Flatten", [], {"axis": int(node.attrs.get("axis", 1))}
    if node.op == "Softmax":
        return "Softmax", [], {"axis": int(node.attrs.get("axis", -1))}
    if node.op in _SIMPLE and not w:
        return _SIMPLE[node.op], [], {}
    raise QsimError(f"node {node.name!r} ({node.op}): not written as ONNX for the ort_static recipe; covered: "
                    "Conv, Gemm, Relu, Sigmoid, Add, Mul, MaxPool, AvgPool, GlobalAvgPool, Flatten, Softmax")


def graph_to_onnx(graph) -> onnx.ModelProto:
    """The float ONNX model of a float qsim Graph with weights (see the module doc)."""
    if graph.quant_params:
        raise QsimError(f"graph {graph.name!r} is already quantized; ort_static takes a float model")
    nodes, used = [], []
    for node in graph.nodes():
        op, extra, kw = _node(node)
        nodes.append(helper.make_node(op, list(node.inputs) + extra, list(node.outputs), name=node.name, **kw))
        used += extra
    inits = []
    for t in dict.fromkeys(used):
        if t not in graph.constants:
            raise QsimError(f"weight {t!r} has no values; ort_static calibrates a model with weights")
        inits.append(numpy_helper.from_array(np.asarray(graph.constants[t], np.float32), t))
    vi = helper.make_tensor_value_info
    g = helper.make_graph(nodes, graph.name,
                          [vi(t, TensorProto.FLOAT, list(graph.tensor(t).shape)) for t in graph.inputs],
                          [vi(t, TensorProto.FLOAT, list(graph.tensor(t).shape)) for t in graph.outputs], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
