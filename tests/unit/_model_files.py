"""Model files the importer tests write at test time (nothing is committed): small float ONNX models
built with onnx.helper, their onnxruntime-quantized forms, a weightless export and int8 .tflite
flatbuffers written with LiteRT's schema module."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def light_dir() -> Path:
    """The classic models the onnx package ships (weights replaced by ConstantOfShape)."""
    return Path(os.path.dirname(onnx.__file__)) / "backend" / "test" / "data" / "light"


def _init(rng, name, shape, scale=0.2):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def _save(graph, path, opset=OPSET) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)


def small_cnn(path, seed: int = 0) -> Path:
    """Conv+Relu, depthwise Conv+Relu, MaxPool, 1x1 Conv, residual Add, GlobalAveragePool, Flatten,
    Gemm, Softmax: the op mix of a mobile CNN, on a 1x3x16x16 input."""
    rng = np.random.default_rng(seed)
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        n("Relu", ["c1"], ["r1"], name="relu1"),
        n("Conv", ["r1", "w2", "b2"], ["c2"], name="dw", kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=8),
        n("Relu", ["c2"], ["r2"], name="relu2"),
        n("MaxPool", ["r2"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        n("Conv", ["p", "w3", "b3"], ["c3"], name="pw", kernel_shape=[1, 1]),
        n("Add", ["c3", "p"], ["s"], name="add"),
        n("GlobalAveragePool", ["s"], ["gap"], name="gap"),
        n("Flatten", ["gap"], ["f"], name="flat"),
        n("Gemm", ["f", "wf", "bf"], ["logits"], name="fc", transB=1),
        n("Softmax", ["logits"], ["y"], name="softmax", axis=1),
    ]
    inits = [_init(rng, "w1", (8, 3, 3, 3)), _init(rng, "b1", (8,)), _init(rng, "w2", (8, 1, 3, 3)),
             _init(rng, "b2", (8,)), _init(rng, "w3", (8, 8, 1, 1)), _init(rng, "b3", (8,)),
             _init(rng, "wf", (10, 8)), _init(rng, "bf", (10,))]
    graph = helper.make_graph(nodes, "small_cnn",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    return _save(graph, path)


def small_mlp(path, seed: int = 1) -> Path:
    """MatMul + Add + Relu, MatMul + Add: two Linear layers as PyTorch exports them, batch 2."""
    rng = np.random.default_rng(seed)
    n = helper.make_node
    nodes = [n("MatMul", ["x", "w1"], ["m1"], name="fc1"), n("Add", ["m1", "b1"], ["a1"], name="fc1_bias"),
             n("Relu", ["a1"], ["h"], name="relu"),
             n("MatMul", ["h", "w2"], ["m2"], name="fc2"), n("Add", ["m2", "b2"], ["y"], name="fc2_bias")]
    inits = [_init(rng, "w1", (16, 32)), _init(rng, "b1", (32,)), _init(rng, "w2", (32, 10)),
             _init(rng, "b2", (10,))]
    graph = helper.make_graph(nodes, "small_mlp",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 10])], inits)
    return _save(graph, path)


def branch_cnn(path, seed: int = 6) -> Path:
    """Two 1x1 Convs, Concat, AveragePool, Sigmoid, Mul (a gate): QOperator turns these into
    QLinearConcat, QLinearAveragePool, QLinearSigmoid and QLinearMul."""
    rng = np.random.default_rng(seed)
    n = helper.make_node
    nodes = [n("Conv", ["x", "w1"], ["a"], name="c1", kernel_shape=[1, 1]),
             n("Conv", ["x", "w2"], ["b"], name="c2", kernel_shape=[1, 1]),
             n("Concat", ["a", "b"], ["cat"], name="cat", axis=1),
             n("AveragePool", ["cat"], ["ap"], name="ap", kernel_shape=[2, 2], strides=[2, 2]),
             n("Sigmoid", ["ap"], ["sg"], name="sg"), n("Mul", ["sg", "ap"], ["y"], name="gate")]
    graph = helper.make_graph(nodes, "branch_cnn",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 4, 4])],
                              [_init(rng, "w1", (4, 3, 1, 1)), _init(rng, "w2", (4, 3, 1, 1))])
    return _save(graph, path)


def matmul_integer(path) -> Path:
    """MatMulInteger (uint8 x int8 -> int32) with an input zero point and per-column weight zero points."""
    rng = np.random.default_rng(7)
    vi = helper.make_tensor_value_info
    inits = [numpy_helper.from_array(rng.integers(-5, 5, (8, 4)).astype(np.int8), "w"),
             numpy_helper.from_array(np.array(3, np.uint8), "x_zero"),
             numpy_helper.from_array(np.array([0, 1, -1, 2], np.int8), "w_zero")]
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["x", "w", "x_zero", "w_zero"], ["y"], name="mmi")],
                              "mmi", [vi("x", TensorProto.UINT8, [2, 8])], [vi("y", TensorProto.INT32, [2, 4])], inits)
    return _save(graph, path)


def shape_chain_cnn(path, seed: int = 8) -> Path:
    """The flatten PyTorch exports with a dynamic batch: Shape -> Gather -> Unsqueeze -> Concat
    computes the Reshape target; also Constant, Identity and Dropout, which import as nothing."""
    rng = np.random.default_rng(seed)
    n = helper.make_node
    axis0 = helper.make_tensor("axis0", TensorProto.INT64, [], [0])
    minus1 = helper.make_tensor("minus1", TensorProto.INT64, [1], [-1])
    nodes = [n("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3, 3]),
             n("Identity", ["c"], ["c_id"], name="identity"),
             n("Shape", ["c_id"], ["shape"], name="shape"),
             n("Constant", [], ["i0"], name="const0", value=axis0),
             n("Gather", ["shape", "i0"], ["batch"], name="gather", axis=0),
             n("Unsqueeze", ["batch", "axes0"], ["batch1"], name="unsqueeze"),
             n("Constant", [], ["m1"], name="const1", value=minus1),
             n("Concat", ["batch1", "m1"], ["target"], name="concat", axis=0),
             n("Reshape", ["c_id", "target"], ["flat"], name="flatten"),
             n("Dropout", ["flat"], ["drop"], name="dropout"),
             n("Gemm", ["drop", "fw", "fb"], ["y"], name="fc", transB=1)]
    inits = [_init(rng, "w", (4, 3, 3, 3)), _init(rng, "b", (4,)), _init(rng, "fw", (5, 64)), _init(rng, "fb", (5,)),
             numpy_helper.from_array(np.array([0], np.int64), "axes0")]
    graph = helper.make_graph(nodes, "shape_chain",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], inits)
    return _save(graph, path)


def weightless_cnn(path) -> Path:
    """A weightless export: the weights are graph inputs with shapes only (``export_params=False``),
    with a symbolic batch axis; Conv + BatchNormalization + Relu, Flatten, MatMul + Add."""
    n = helper.make_node
    vi = helper.make_tensor_value_info
    nodes = [n("Conv", ["x", "conv.weight"], ["c"], name="conv", kernel_shape=[3, 3], strides=[2, 2],
               pads=[1, 1, 1, 1]),
             n("BatchNormalization", ["c", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"],
               ["b"], name="bn"),
             n("Relu", ["b"], ["r"], name="relu"),
             n("Flatten", ["r"], ["f"], name="flatten"),
             n("MatMul", ["f", "fc.weight_t"], ["m"], name="fc"),
             n("Add", ["m", "fc.bias"], ["y"], name="fc_bias")]
    inputs = [vi("x", TensorProto.FLOAT, ["batch", 3, 8, 8]), vi("conv.weight", TensorProto.FLOAT, [4, 3, 3, 3])]
    inputs += [vi(f"bn.{k}", TensorProto.FLOAT, [4]) for k in ("weight", "bias", "running_mean", "running_var")]
    inputs += [vi("fc.weight_t", TensorProto.FLOAT, [64, 5]), vi("fc.bias", TensorProto.FLOAT, [5])]
    graph = helper.make_graph(nodes, "weightless", inputs, [vi("y", TensorProto.FLOAT, ["batch", 5])])
    return _save(graph, path)


from _ort_quantize import quantize  # noqa: E402,F401  (re-exported for the tests here)


def qdq_conv(path, act_type: int, weight_type: int, per_channel: bool) -> Path:
    """A hand-written QDQ Conv for element types onnxruntime does not produce here (int16
    activations, int4/uint4/fp8 weights): Q/DQ on the input, DQ on the weight, Q/DQ on the output."""
    rng = np.random.default_rng(3)
    n = helper.make_node
    np_act = helper.tensor_dtype_to_np_dtype(act_type)
    np_w = helper.tensor_dtype_to_np_dtype(weight_type)
    w = rng.integers(-7, 7, (4, 2, 3, 3)) if weight_type != TensorProto.UINT4 else rng.integers(0, 15, (4, 2, 3, 3))
    w_scale = (rng.random(4 if per_channel else ()) * 0.1 + 0.01).astype(np.float32)
    w_zero = np.zeros(w_scale.shape, np_w) if weight_type != TensorProto.UINT4 else np.full(w_scale.shape, 8, np_w)
    inits = [numpy_helper.from_array(w.astype(np.float32).astype(np_w), "w_q"),
             numpy_helper.from_array(w_scale, "w_scale"), numpy_helper.from_array(w_zero, "w_zero"),
             numpy_helper.from_array(np.array(0.05, np.float32), "x_scale"),
             numpy_helper.from_array(np.array(0, np_act), "x_zero"),
             numpy_helper.from_array(np.array(0.125, np.float32), "y_scale"),
             numpy_helper.from_array(np.array(0, np_act), "y_zero")]
    nodes = [n("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"]),
             n("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["xd"]),
             n("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["wd"], axis=0),
             n("Conv", ["xd", "wd"], ["y_f"], name="conv", kernel_shape=[3, 3]),
             n("QuantizeLinear", ["y_f", "y_scale", "y_zero"], ["yq"]),
             n("DequantizeLinear", ["yq", "y_scale", "y_zero"], ["y"])]
    graph = helper.make_graph(nodes, "qdq_conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.save(model, str(path))
    return Path(path)


def unknown_op_model(path) -> Path:
    """A valid ONNX file with an op the importer does not support (Einsum)."""
    n = helper.make_node
    vi = helper.make_tensor_value_info
    graph = helper.make_graph([n("Relu", ["x"], ["r"], name="relu"),
                               n("Einsum", ["r", "r"], ["y"], name="the_einsum", equation="ij,ij->ij")],
                              "unknown", [vi("x", TensorProto.FLOAT, [2, 3])], [vi("y", TensorProto.FLOAT, [2, 3])])
    return _save(graph, path)


# -- TFLite ----------------------------------------------------------------------------------------
class TfliteWriter:
    """Writes a .tflite flatbuffer with LiteRT's schema module (object API): add tensors and ops,
    then ``save``. Constants are numpy arrays; quantization is (scales, zero points, dimension)."""

    TYPES = {np.float32: 0, np.int32: 2, np.uint8: 3, np.int64: 4, np.int16: 7, np.int8: 9}

    def __init__(self):
        from ai_edge_litert import schema_py_generated as s

        self.s = s
        self.tensors, self.buffers, self.ops, self.codes = [], [s.BufferT()], [], []

    def tensor(self, name, shape, dtype, quant=None, value=None) -> int:
        s = self.s
        t = s.TensorT()
        t.name, t.shape, t.type = name, list(shape), self.TYPES[np.dtype(dtype).type]
        t.buffer = 0
        if value is not None:
            b = s.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(value, dtype).tobytes(), np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        if quant is not None:
            q = s.QuantizationParametersT()
            q.scale = [float(v) for v in np.atleast_1d(quant[0])]
            q.zeroPoint = [int(v) for v in np.atleast_1d(quant[1])]
            q.quantizedDimension = quant[2] if len(quant) > 2 else 0
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, name, inputs, outputs, options=None, options_type=None):
        s = self.s
        code = getattr(s.BuiltinOperator, name)
        if code not in self.codes:
            self.codes.append(code)
        o = s.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = self.codes.index(code), list(inputs), list(outputs)
        if options is not None:
            o.builtinOptionsType, o.builtinOptions = getattr(s.BuiltinOptions, options_type), options
        self.ops.append(o)

    def save(self, path, inputs, outputs) -> Path:
        import flatbuffers

        s = self.s
        sub = s.SubGraphT()
        sub.tensors, sub.inputs, sub.outputs, sub.operators, sub.name = self.tensors, inputs, outputs, self.ops, "main"
        model = s.ModelT()
        model.version, model.subgraphs, model.buffers = 3, [sub], self.buffers
        model.operatorCodes = []
        for code in self.codes:
            c = s.OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), 1
            model.operatorCodes.append(c)
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        Path(path).write_bytes(bytes(builder.Output()))
        return Path(path)

    def options(self, cls, **fields):
        o = getattr(self.s, cls)()
        for k, v in fields.items():
            setattr(o, k, v)
        return o


def tflite_int8_cnn(path) -> Path:
    """float input -> QUANTIZE -> CONV_2D (RELU6, per-channel) -> MAX_POOL_2D and DEPTHWISE_CONV_2D
    (stride 2, per-channel) -> ADD -> MUL by a per-channel constant -> AVERAGE_POOL_2D -> RESHAPE ->
    FULLY_CONNECTED (per-channel) -> SOFTMAX -> DEQUANTIZE. NHWC, int8, SAME and VALID padding."""
    rng = np.random.default_rng(4)
    w = TfliteWriter()
    s_in, s_c = 0.05, 0.1
    x = w.tensor("x", (1, 8, 8, 3), np.float32)
    xq = w.tensor("x_q", (1, 8, 8, 3), np.int8, (s_in, -3))
    w1s = (rng.random(8) * 0.02 + 0.005).astype(np.float32)
    w1 = w.tensor("conv.w", (8, 3, 3, 3), np.int8, (w1s, np.zeros(8, int), 0), rng.integers(-127, 128, (8, 3, 3, 3)))
    b1 = w.tensor("conv.b", (8,), np.int32, ((s_in * w1s).astype(np.float32), np.zeros(8, int), 0),
                  rng.integers(-500, 500, 8))
    c1 = w.tensor("conv", (1, 8, 8, 8), np.int8, (s_c, -128))
    dws = (rng.random(8) * 0.02 + 0.005).astype(np.float32)
    dw_w = w.tensor("dw.w", (1, 3, 3, 8), np.int8, (dws, np.zeros(8, int), 3), rng.integers(-127, 128, (1, 3, 3, 8)))
    dw_b = w.tensor("dw.b", (8,), np.int32, ((s_c * dws).astype(np.float32), np.zeros(8, int), 0),
                    rng.integers(-500, 500, 8))
    dw = w.tensor("dw", (1, 4, 4, 8), np.int8, (0.08, 5))
    mp = w.tensor("maxpool", (1, 4, 4, 8), np.int8, (s_c, -128))
    add = w.tensor("add", (1, 4, 4, 8), np.int8, (0.15, -10))
    k = w.tensor("mul.k", (8,), np.int8, (0.01, 0), rng.integers(1, 127, 8))
    mul = w.tensor("mul", (1, 4, 4, 8), np.int8, (0.2, -4))
    ap = w.tensor("avgpool", (1, 1, 1, 8), np.int8, (0.2, -4))
    shape = w.tensor("shape", (2,), np.int32, None, np.array([1, 8]))
    flat = w.tensor("flat", (1, 8), np.int8, (0.2, -4))
    fcs = (rng.random(10) * 0.02 + 0.005).astype(np.float32)
    fc_w = w.tensor("fc.w", (10, 8), np.int8, (fcs, np.zeros(10, int), 0), rng.integers(-127, 128, (10, 8)))
    fc_b = w.tensor("fc.b", (10,), np.int32, ((0.2 * fcs).astype(np.float32), np.zeros(10, int), 0),
                    rng.integers(-500, 500, 10))
    fc = w.tensor("fc", (1, 10), np.int8, (0.3, 7))
    sm = w.tensor("softmax", (1, 10), np.int8, (1 / 256, -128))
    y = w.tensor("y", (1, 10), np.float32)
    P = w.s.Padding
    w.op("QUANTIZE", [x], [xq])
    w.op("CONV_2D", [xq, w1, b1], [c1], w.options("Conv2DOptionsT", padding=P.SAME, strideH=1, strideW=1,
                                                  fusedActivationFunction=3), "Conv2DOptions")
    w.op("MAX_POOL_2D", [c1], [mp], w.options("Pool2DOptionsT", padding=P.VALID, strideH=2, strideW=2,
                                              filterHeight=2, filterWidth=2), "Pool2DOptions")
    w.op("DEPTHWISE_CONV_2D", [c1, dw_w, dw_b], [dw],
         w.options("DepthwiseConv2DOptionsT", padding=P.SAME, strideH=2, strideW=2, depthMultiplier=1),
         "DepthwiseConv2DOptions")
    w.op("ADD", [mp, dw], [add], w.options("AddOptionsT", fusedActivationFunction=1), "AddOptions")
    w.op("MUL", [add, k], [mul], w.options("MulOptionsT"), "MulOptions")
    w.op("AVERAGE_POOL_2D", [mul], [ap], w.options("Pool2DOptionsT", padding=P.VALID, strideH=1, strideW=1,
                                                   filterHeight=4, filterWidth=4), "Pool2DOptions")
    w.op("RESHAPE", [ap, shape], [flat])
    w.op("FULLY_CONNECTED", [flat, fc_w, fc_b], [fc], w.options("FullyConnectedOptionsT"), "FullyConnectedOptions")
    w.op("SOFTMAX", [fc], [sm], w.options("SoftmaxOptionsT", beta=1.0), "SoftmaxOptions")
    w.op("DEQUANTIZE", [sm], [y])
    return w.save(path, [x], [y])


def tflite_int16x8_mlp(path) -> Path:
    """int16 activations, int8 weights, int64 bias (the 16x8 scheme): QUANTIZE -> FULLY_CONNECTED ->
    LOGISTIC -> DEQUANTIZE."""
    rng = np.random.default_rng(5)
    w = TfliteWriter()
    x = w.tensor("x", (2, 16), np.float32)
    xq = w.tensor("x_q", (2, 16), np.int16, (1 / 4096, 0))
    fw = w.tensor("fc.w", (4, 16), np.int8, (0.01, 0), rng.integers(-127, 128, (4, 16)))
    fb = w.tensor("fc.b", (4,), np.int64, (0.01 / 4096, 0), rng.integers(-1000, 1000, 4))
    fc = w.tensor("fc", (2, 4), np.int16, (1 / 2048, 0))
    sg = w.tensor("sigmoid", (2, 4), np.int16, (1 / 32768, 0))
    y = w.tensor("y", (2, 4), np.float32)
    w.op("QUANTIZE", [x], [xq])
    w.op("FULLY_CONNECTED", [xq, fw, fb], [fc], w.options("FullyConnectedOptionsT"), "FullyConnectedOptions")
    w.op("LOGISTIC", [fc], [sg])
    w.op("DEQUANTIZE", [sg], [y])
    return w.save(path, [x], [y])


def tflite_float_conv(path, out_name: str, cout: int, kernel: tuple, same: bool, seed: int) -> Path:
    """float32 x [1, 6, 5, 3] (NHWC) -> one CONV_2D (stride 1, SAME or VALID) of cout filters of
    ``kernel`` (kh, kw) -> ``out_name``: a float model whose output layout matters (NHWC)."""
    rng = np.random.default_rng(seed)
    w = TfliteWriter()
    kh, kw = kernel
    x = w.tensor("x", (1, 6, 5, 3), np.float32)
    k = w.tensor("conv.w", (cout, kh, kw, 3), np.float32, None,
                 rng.standard_normal((cout, kh, kw, 3)).astype(np.float32))
    b = w.tensor("conv.b", (cout,), np.float32, None, rng.standard_normal(cout).astype(np.float32))
    oh, ow = (6, 5) if same else (7 - kh, 6 - kw)
    y = w.tensor(out_name, (1, oh, ow, cout), np.float32)
    w.op("CONV_2D", [x, k, b], [y], w.options("Conv2DOptionsT", padding=w.s.Padding.SAME if same else w.s.Padding.VALID,
                                               strideH=1, strideW=1), "Conv2DOptions")
    return w.save(path, [x], [y])
