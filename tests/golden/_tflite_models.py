"""Single-op int8 .tflite models built at test time with the flatbuffer schema module that
ai-edge-litert ships (object API), and a runner for the three kernel sets."""
from __future__ import annotations

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as fb

TT = {np.dtype(np.int8): fb.TensorType.INT8, np.dtype(np.int32): fb.TensorType.INT32,
      np.dtype(np.int16): fb.TensorType.INT16, np.dtype(np.uint8): fb.TensorType.UINT8,
      np.dtype(np.int64): fb.TensorType.INT64, np.dtype(np.float32): fb.TensorType.FLOAT32}


class _Builder:
    def __init__(self):
        self.buffers = [fb.BufferT()]  # buffer 0 is the empty sentinel
        self.tensors = []

    def tensor(self, name, shape, dtype, scale, zp, data=None, qdim=0):
        t = fb.TensorT()
        t.name, t.shape, t.type = name, list(shape), TT[np.dtype(dtype)]
        t.buffer = 0
        if scale is None:  # a float tensor
            self.tensors.append(t)
            return len(self.tensors) - 1
        q = fb.QuantizationParametersT()
        q.scale = [float(s) for s in np.atleast_1d(np.asarray(scale, np.float32))]
        q.zeroPoint = [int(z) for z in np.atleast_1d(zp)]
        q.quantizedDimension = qdim
        t.quantization = q
        t.buffer = 0
        if data is not None:
            b = fb.BufferT()
            b.data = np.ascontiguousarray(data, dtype=dtype).tobytes()
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def model(self, op_code, inputs, outputs, options_type=0, options=None, version=1):
        code = fb.OperatorCodeT()
        code.builtinCode = op_code
        code.deprecatedBuiltinCode = min(op_code, 127)
        code.version = version
        op = fb.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = 0, list(inputs), list(outputs)
        op.builtinOptionsType, op.builtinOptions = options_type, options
        sg = fb.SubGraphT()
        sg.tensors, sg.operators = self.tensors, [op]
        sg.inputs = [i for i in inputs if i >= 0 and self.tensors[i].buffer == 0]
        sg.outputs = list(outputs)
        m = fb.ModelT()
        m.version, m.operatorCodes, m.subgraphs, m.buffers = 3, [code], [sg], self.buffers
        m.description = "qsim golden"
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def conv2d(x_shape, w, bias, s_in, z_in, s_w, s_out, z_out, pad_same=True, act_min_max=None):
    """NHWC int8 CONV_2D, filter OHWI int8 with per-channel (or per-tensor) scales, zero zp."""
    bld = _Builder()
    o = w.shape[0]
    s_w = np.atleast_1d(np.asarray(s_w, np.float32))
    x = bld.tensor("x", x_shape, np.int8, s_in, z_in)
    wt = bld.tensor("w", w.shape, np.int8, s_w, np.zeros(s_w.size, np.int64), w, qdim=0)
    bs = bld.tensor("b", (o,), np.int32, (np.float32(s_in) * s_w).astype(np.float32),
                    np.zeros(s_w.size, np.int64), bias)
    oh, ow = x_shape[1], x_shape[2]
    if not pad_same:
        oh, ow = oh - w.shape[1] + 1, ow - w.shape[2] + 1
    y = bld.tensor("y", (x_shape[0], oh, ow, o), np.int8, s_out, z_out)
    opt = fb.Conv2DOptionsT()
    opt.padding = fb.Padding.SAME if pad_same else fb.Padding.VALID
    opt.strideW = opt.strideH = opt.dilationWFactor = opt.dilationHFactor = 1
    return bld.model(fb.BuiltinOperator.CONV_2D, [x, wt, bs], [y], fb.BuiltinOptions.Conv2DOptions, opt,
                     version=3)


def depthwise(x_shape, w, bias, s_in, z_in, s_w, s_out, z_out):
    """NHWC int8 DEPTHWISE_CONV_2D, filter (1, KH, KW, C) with per-channel scales on dim 3."""
    bld = _Builder()
    c = w.shape[3]
    s_w = np.atleast_1d(np.asarray(s_w, np.float32))
    x = bld.tensor("x", x_shape, np.int8, s_in, z_in)
    wt = bld.tensor("w", w.shape, np.int8, s_w, np.zeros(s_w.size, np.int64), w, qdim=3)
    bs = bld.tensor("b", (c,), np.int32, (np.float32(s_in) * s_w).astype(np.float32),
                    np.zeros(s_w.size, np.int64), bias)
    y = bld.tensor("y", (x_shape[0], x_shape[1], x_shape[2], c), np.int8, s_out, z_out)
    opt = fb.DepthwiseConv2DOptionsT()
    opt.padding = fb.Padding.SAME
    opt.strideW = opt.strideH = opt.dilationWFactor = opt.dilationHFactor = opt.depthMultiplier = 1
    return bld.model(fb.BuiltinOperator.DEPTHWISE_CONV_2D, [x, wt, bs], [y],
                     fb.BuiltinOptions.DepthwiseConv2DOptions, opt, version=3)


def fully_connected(x_shape, w, bias, s_in, z_in, s_w, s_out, z_out):
    """int8 FULLY_CONNECTED, weights (O, K), per-tensor or per-channel scales."""
    bld = _Builder()
    o = w.shape[0]
    s_w = np.atleast_1d(np.asarray(s_w, np.float32))
    x = bld.tensor("x", x_shape, np.int8, s_in, z_in)
    wt = bld.tensor("w", w.shape, np.int8, s_w, np.zeros(s_w.size, np.int64), w, qdim=0)
    bs = bld.tensor("b", (o,), np.int32, (np.float32(s_in) * s_w).astype(np.float32),
                    np.zeros(s_w.size, np.int64), bias)
    y = bld.tensor("y", (x_shape[0], o), np.int8, s_out, z_out)
    opt = fb.FullyConnectedOptionsT()
    return bld.model(fb.BuiltinOperator.FULLY_CONNECTED, [x, wt, bs], [y],
                     fb.BuiltinOptions.FullyConnectedOptions, opt, version=5)


def elementwise(op: str, shapes, params, out_param, dtype=np.int8, approximate=False):
    """A unary or binary elementwise op on int8/int16; params = [(scale, zp), ...] per input."""
    bld = _Builder()
    ins = [bld.tensor(f"x{i}", s, dtype, sc, zp) for i, (s, (sc, zp)) in enumerate(zip(shapes, params))]
    y = bld.tensor("y", shapes[0], dtype, *out_param)
    table = {"add": (fb.BuiltinOperator.ADD, fb.BuiltinOptions.AddOptions, fb.AddOptionsT),
             "mul": (fb.BuiltinOperator.MUL, fb.BuiltinOptions.MulOptions, fb.MulOptionsT),
             "logistic": (fb.BuiltinOperator.LOGISTIC, 0, None),
             "tanh": (fb.BuiltinOperator.TANH, 0, None),
             "softmax": (fb.BuiltinOperator.SOFTMAX, fb.BuiltinOptions.SoftmaxOptions, fb.SoftmaxOptionsT),
             "gelu": (fb.BuiltinOperator.GELU, fb.BuiltinOptions.GeluOptions, fb.GeluOptionsT)}
    code, otype, ocls = table[op]
    opt = ocls() if ocls else None
    if op == "softmax":
        opt.beta = 1.0
    if op == "gelu":
        opt.approximate = approximate
    return bld.model(code, ins, [y], otype, opt, version=2)


def quantize(shape, scale, zp, dtype=np.int8):
    """QUANTIZE: float32 input -> int8 (or int16) output with a per-tensor scale and zero point."""
    bld = _Builder()
    x = bld.tensor("x", shape, np.float32, None, None)
    y = bld.tensor("y", shape, dtype, scale, zp)
    return bld.model(fb.BuiltinOperator.QUANTIZE, [x], [y], 0, None, version=1)


RESOLVERS = {"reference": "BUILTIN_REF", "optimized": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
             "xnnpack": "BUILTIN"}


def run(model: bytes, inputs, kernels: str):
    """Run a model with one of the kernel sets: reference, optimized (builtin, no delegate),
    xnnpack (builtin with the default XNNPACK delegate)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    it = Interpreter(model_content=model, num_threads=1,
                     experimental_op_resolver_type=getattr(OpResolverType, RESOLVERS[kernels]))
    it.allocate_tensors()
    for d, v in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], v)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])
