"""Single-node onnxruntime models for the kernel goldens, built at test (or benchmark) time."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

_TYPES = {np.dtype(np.int8): TensorProto.INT8, np.dtype(np.uint8): TensorProto.UINT8,
          np.dtype(np.int32): TensorProto.INT32, np.dtype(np.float32): TensorProto.FLOAT}


def session(node, feeds: dict, inits: dict, out_type, opset=21, ms_domain=False, threads=1):
    """An onnxruntime session running `node`; feeds are graph inputs, inits become initializers."""
    import onnxruntime as ort
    inputs = [helper.make_tensor_value_info(k, _TYPES[v.dtype], v.shape) for k, v in feeds.items()]
    g = helper.make_graph([node], "g", inputs,
                          [helper.make_tensor_value_info(node.output[0], out_type, None)],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    ops = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("com.microsoft", 1)] if ms_domain else [])
    model = helper.make_model(g, opset_imports=ops)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def conv_integer(x, w, x_zp, w_zp, stride, pads, dilation, groups, threads=1):
    node = helper.make_node("ConvInteger", ["x", "w", "xz", "wz"], ["y"], strides=list(stride),
                            pads=[pads[0], pads[1], pads[2], pads[3]], dilations=list(dilation),
                            group=groups, kernel_shape=list(w.shape[2:]))
    s = session(node, {"x": x}, {"w": w, "xz": np.array(x_zp, x.dtype), "wz": np.array(w_zp, w.dtype)},
                TensorProto.INT32, opset=10, threads=threads)
    return s, {"x": x}


def qlinear_conv(x, w, x_zp, w_zp, stride, pads, dilation, groups, threads=1):
    """QLinearConv with unit scales (output = saturated requantized value; timing only)."""
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"],
                            strides=list(stride), pads=list(pads), dilations=list(dilation),
                            group=groups, kernel_shape=list(w.shape[2:]))
    one = np.array(1.0, np.float32)
    s = session(node, {"x": x}, {"xs": one, "xz": np.array(x_zp, x.dtype), "w": w, "ws": one,
                                 "wz": np.array(w_zp, w.dtype), "ys": np.array(1000.0, np.float32),
                                 "yz": np.array(x_zp, x.dtype)}, _TYPES[x.dtype], threads=threads)
    return s, {"x": x}


def matmul_integer(a, b, a_zp, b_zp, threads=1):
    node = helper.make_node("MatMulInteger", ["a", "b", "az", "bz"], ["y"])
    s = session(node, {"a": a}, {"b": b, "az": np.array(a_zp, a.dtype), "bz": np.asarray(b_zp, b.dtype)},
                TensorProto.INT32, threads=threads)
    return s, {"a": a}


def qlinear_avgpool(x, kernel, stride, pads, count_include_pad, x_zp, scale=1.0):
    node = helper.make_node("QLinearAveragePool", ["x", "s", "z", "s", "z"], ["y"],
                            domain="com.microsoft", kernel_shape=list(kernel), strides=list(stride),
                            pads=list(pads), count_include_pad=int(count_include_pad))
    s = session(node, {"x": x}, {"s": np.array(scale, np.float32), "z": np.array(x_zp, x.dtype)},
                _TYPES[x.dtype], ms_domain=True)
    return s.run(None, {"x": x})[0]


def maxpool(x, kernel, stride, pads, ceil_mode):
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=list(kernel), strides=list(stride),
                            pads=list(pads), ceil_mode=int(ceil_mode))
    return session(node, {"x": x}, {}, _TYPES[x.dtype]).run(None, {"x": x})[0]
