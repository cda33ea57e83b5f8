"""Single-node ONNX models built at test time for onnxruntime goldens."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_NP2ONNX = {np.dtype(np.int8): TensorProto.INT8, np.dtype(np.uint8): TensorProto.UINT8,
            np.dtype(np.int16): TensorProto.INT16, np.dtype(np.uint16): TensorProto.UINT16,
            np.dtype(np.int32): TensorProto.INT32, np.dtype(np.float32): TensorProto.FLOAT}
ONNX_TYPES = {"int8": TensorProto.INT8, "uint8": TensorProto.UINT8, "int16": TensorProto.INT16,
              "uint16": TensorProto.UINT16, "int4": TensorProto.INT4, "uint4": TensorProto.UINT4,
              "float8e4m3fn": TensorProto.FLOAT8E4M3FN, "float8e5m2": TensorProto.FLOAT8E5M2}


def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def session(model: onnx.ModelProto):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _model(node, inputs, outputs, inits, opset=21):
    g = helper.make_graph([node], "g", inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 10
    return m


def qlinear_conv(x, w, bias, sx, zx, sw, zw, sy, zy, pad):
    """QLinearConv: x runtime input, everything else an initializer."""
    ins = [helper.make_tensor_value_info("x", _NP2ONNX[x.dtype], list(x.shape))]
    inits = [_init("sx", np.float32(sx)), _init("zx", np.asarray(zx, x.dtype)), _init("w", w),
             _init("sw", np.asarray(sw, np.float32)), _init("zw", np.asarray(zw, w.dtype)),
             _init("sy", np.float32(sy)), _init("zy", np.asarray(zy, x.dtype)),
             _init("b", np.asarray(bias, np.int32))]
    node = helper.make_node("QLinearConv", ["x", "sx", "zx", "w", "sw", "zw", "sy", "zy", "b"], ["y"],
                            pads=[pad] * 4)
    out = [helper.make_tensor_value_info("y", _NP2ONNX[x.dtype], None)]
    return _model(node, ins, out, inits)


def qlinear_matmul(a, b, sa, za, sb, zb, sy, zy):
    ins = [helper.make_tensor_value_info("a", _NP2ONNX[a.dtype], list(a.shape))]
    inits = [_init("sa", np.float32(sa)), _init("za", np.asarray(za, a.dtype)), _init("b", b),
             _init("sb", np.asarray(sb, np.float32)), _init("zb", np.asarray(zb, b.dtype)),
             _init("sy", np.float32(sy)), _init("zy", np.asarray(zy, a.dtype))]
    node = helper.make_node("QLinearMatMul", ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"], ["y"])
    out = [helper.make_tensor_value_info("y", _NP2ONNX[a.dtype], None)]
    return _model(node, ins, out, inits)


def quantize_linear(shape, scale, zero_point, dtype: str, axis=None, block_size=0, saturate=1):
    ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))]
    zp = helper.make_tensor("zp", ONNX_TYPES[dtype], list(np.shape(zero_point)),
                            np.asarray(zero_point).ravel().tolist())
    inits = [_init("s", np.asarray(scale, np.float32)), zp]
    attrs = {}
    if axis is not None:
        attrs["axis"] = axis
    if block_size:
        attrs["block_size"] = block_size
    if dtype.startswith("float8"):
        attrs["saturate"] = saturate
    node = helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], **attrs)
    if dtype in ("int4", "uint4"):
        # onnxruntime's Python API cannot return 4-bit tensors: read them back through a Cast.
        back = helper.make_node("Cast", ["q"], ["y"], to=TensorProto.INT8)
        out = [helper.make_tensor_value_info("y", TensorProto.INT8, None)]
    elif dtype.startswith("float8"):
        back = helper.make_node("Cast", ["q"], ["y"], to=TensorProto.FLOAT)  # fp8 -> fp32 is exact
        out = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    else:
        back = helper.make_node("Identity", ["q"], ["y"])
        out = [helper.make_tensor_value_info("y", ONNX_TYPES[dtype], None)]
    g = helper.make_graph([node, back], "g", ins, out, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    m.ir_version = 10
    return m
