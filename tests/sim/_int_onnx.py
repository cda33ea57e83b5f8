"""ONNX models for the integer-executor tests, built at test time with onnx.helper and quantized by
onnxruntime's ``quantize_static``: a ResNet-class CNN and a transformer encoder block. Helpers to
plant ties (every scale rounded to a power of two), to expose intermediate tensors as outputs, and
to run onnxruntime single-threaded."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _w(rng, name, shape, scale=None):
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    s = scale if scale is not None else 1.0 / np.sqrt(fan_in)
    return numpy_helper.from_array((rng.standard_normal(shape) * s).astype(np.float32), name)


def _save(nodes, inits, inputs, outputs, path, name) -> Path:
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)


def resnet_cnn(path, seed: int = 0, batch: int = 2) -> Path:
    """Stem conv 3x3 + Relu, MaxPool, two residual blocks (conv-relu-conv + Add + Relu, the second
    downsampling with a strided 1x1 projection and a depthwise conv), AveragePool 2x2, GAP, Gemm.
    Outputs: the logits and the last feature map (more elements to compare)."""
    rng = np.random.default_rng(seed)
    n = helper.make_node
    c = 16
    nodes = [
        n("Conv", ["x", "w0", "b0"], ["c0"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="stem"),
        n("Relu", ["c0"], ["r0"], name="stem_relu"),
        n("MaxPool", ["r0"], ["p0"], kernel_shape=[2, 2], strides=[2, 2], name="pool0"),
        # block 1: identity shortcut
        n("Conv", ["p0", "w1a", "b1a"], ["c1a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="b1_conv1"),
        n("Relu", ["c1a"], ["r1a"], name="b1_relu1"),
        n("Conv", ["r1a", "w1b", "b1b"], ["c1b"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="b1_conv2"),
        n("Add", ["c1b", "p0"], ["s1"], name="b1_add"),
        n("Relu", ["s1"], ["r1"], name="b1_relu"),
        # block 2: strided depthwise + pointwise, projection shortcut
        n("Conv", ["r1", "w2d", "b2d"], ["c2d"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2],
          group=c, name="b2_dw"),
        n("Relu", ["c2d"], ["r2d"], name="b2_relu1"),
        n("Conv", ["r2d", "w2p", "b2p"], ["c2p"], kernel_shape=[1, 1], name="b2_pw"),
        n("Conv", ["r1", "w2s", "b2s"], ["c2s"], kernel_shape=[1, 1], strides=[2, 2], name="b2_proj"),
        n("Add", ["c2p", "c2s"], ["s2"], name="b2_add"),
        n("Relu", ["s2"], ["feat"], name="b2_relu"),
        n("AveragePool", ["feat"], ["ap"], kernel_shape=[2, 2], strides=[2, 2], name="avgpool"),
        n("GlobalAveragePool", ["ap"], ["gap"], name="gap"),
        n("Flatten", ["gap"], ["f"], name="flat"),
        n("Gemm", ["f", "wf", "bf"], ["logits"], transB=1, name="fc"),
    ]
    inits = [_w(rng, "w0", (c, 3, 3, 3)), _w(rng, "b0", (c,), 0.1),
             _w(rng, "w1a", (c, c, 3, 3)), _w(rng, "b1a", (c,), 0.1),
             _w(rng, "w1b", (c, c, 3, 3)), _w(rng, "b1b", (c,), 0.1),
             _w(rng, "w2d", (c, 1, 3, 3)), _w(rng, "b2d", (c,), 0.1),
             _w(rng, "w2p", (2 * c, c, 1, 1)), _w(rng, "b2p", (2 * c,), 0.1),
             _w(rng, "w2s", (2 * c, c, 1, 1)), _w(rng, "b2s", (2 * c,), 0.1),
             _w(rng, "wf", (10, 2 * c)), _w(rng, "bf", (10,), 0.1)]
    vi = helper.make_tensor_value_info
    return _save(nodes, inits, [vi("x", TensorProto.FLOAT, [batch, 3, 32, 32])],
                 [vi("logits", TensorProto.FLOAT, [batch, 10]),
                  vi("feat", TensorProto.FLOAT, [batch, 2 * c, 8, 8])], path, "resnet_cnn")


def concat_cnn(path, seed: int = 4) -> Path:
    """Two convolutions of different output ranges, Concat on channels (QLinearConcat rescales the
    inputs when their scales differ), then a Sigmoid-free 1x1 conv head."""
    rng = np.random.default_rng(seed)
    n = helper.make_node
    nodes = [n("Conv", ["x", "wa", "ba"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="conv_a"),
             n("Relu", ["a"], ["ar"], name="relu_a"),
             n("Conv", ["x", "wb", "bb"], ["b"], kernel_shape=[1, 1], name="conv_b"),
             n("Concat", ["ar", "b"], ["cat"], axis=1, name="concat"),
             n("Conv", ["cat", "wc", "bc"], ["y"], kernel_shape=[1, 1], name="head")]
    inits = [_w(rng, "wa", (6, 3, 3, 3), 0.5), _w(rng, "ba", (6,), 0.1), _w(rng, "wb", (4, 3, 1, 1), 0.2),
             _w(rng, "bb", (4,), 0.1), _w(rng, "wc", (8, 10, 1, 1)), _w(rng, "bc", (8,), 0.1)]
    vi = helper.make_tensor_value_info
    return _save(nodes, inits, [vi("x", TensorProto.FLOAT, [2, 3, 16, 16])],
                 [vi("y", TensorProto.FLOAT, [2, 8, 16, 16]), vi("cat", TensorProto.FLOAT, [2, 10, 16, 16])],
                 path, "concat_cnn")


def encoder_block(path, seed: int = 1, seq: int = 16, d: int = 32, heads: int = 2) -> Path:
    """Transformer encoder block: Q/K/V MatMul + bias, heads split by Reshape and Transpose,
    scores = Q K^T (MatMul of two activations), Softmax, context MatMul, output projection,
    residual Add, FFN (MatMul, Relu, MatMul), residual Add, then LayerNorm (left float by
    quantize_static's QOperator format). The 1/sqrt(dh) scale is folded into the Q weights.
    Outputs: the LayerNorm output ``y`` (a float island that reproduces onnxruntime's own float
    LayerNorm bit for bit, qsim/sim/float_ops.py) and the quantized residual ``res2``."""
    rng = np.random.default_rng(seed)
    n = helper.make_node
    dh = d // heads
    nodes = []
    for p in ("q", "k", "v"):
        nodes += [n("MatMul", ["x", f"w{p}"], [f"{p}m"], name=f"{p}_proj"),
                  n("Add", [f"{p}m", f"b{p}"], [f"{p}b"], name=f"{p}_bias"),
                  n("Reshape", [f"{p}b", "split_shape"], [f"{p}r"], name=f"{p}_split"),
                  n("Transpose", [f"{p}r"], [f"{p}t"], perm=[0, 2, 3, 1] if p == "k" else [0, 2, 1, 3],
                    name=f"{p}_heads")]
    nodes += [n("MatMul", ["qt", "kt"], ["scores"], name="scores"),
              n("Softmax", ["scores"], ["probs"], axis=-1, name="softmax"),
              n("MatMul", ["probs", "vt"], ["ctx"], name="context"),
              n("Transpose", ["ctx"], ["ctx_t"], perm=[0, 2, 1, 3], name="merge_heads"),
              n("Reshape", ["ctx_t", "merge_shape"], ["ctx_m"], name="merge"),
              n("MatMul", ["ctx_m", "wo"], ["om"], name="o_proj"),
              n("Add", ["om", "bo"], ["ob"], name="o_bias"),
              n("Add", ["ob", "x"], ["res1"], name="residual1"),
              n("MatMul", ["res1", "w1"], ["h1"], name="ffn1"),
              n("Add", ["h1", "bf1"], ["h1b"], name="ffn1_bias"),
              n("Relu", ["h1b"], ["h1r"], name="ffn_relu"),
              n("MatMul", ["h1r", "w2"], ["h2"], name="ffn2"),
              n("Add", ["h2", "bf2"], ["h2b"], name="ffn2_bias"),
              n("Add", ["h2b", "res1"], ["res2"], name="residual2"),
              n("LayerNormalization", ["res2", "g1", "be1"], ["y"], axis=-1, name="ln")]
    wq = rng.standard_normal((d, d)) / np.sqrt(d) / np.sqrt(dh)
    inits = [numpy_helper.from_array((1 + 0.1 * rng.standard_normal(d)).astype(np.float32), "g1"),
             _w(rng, "be1", (d,), 0.1), numpy_helper.from_array(wq.astype(np.float32), "wq"),
             _w(rng, "wk", (d, d)), _w(rng, "wv", (d, d)), _w(rng, "wo", (d, d)),
             _w(rng, "bq", (d,), 0.1), _w(rng, "bk", (d,), 0.1), _w(rng, "bv", (d,), 0.1), _w(rng, "bo", (d,), 0.1),
             numpy_helper.from_array(np.array([1, seq, heads, dh], np.int64), "split_shape"),
             numpy_helper.from_array(np.array([1, seq, d], np.int64), "merge_shape"),
             _w(rng, "w1", (d, 2 * d)), _w(rng, "bf1", (2 * d,), 0.1),
             _w(rng, "w2", (2 * d, d)), _w(rng, "bf2", (d,), 0.1)]
    vi = helper.make_tensor_value_info
    return _save(nodes, inits, [vi("x", TensorProto.FLOAT, [1, seq, d])],
                 [vi("y", TensorProto.FLOAT, [1, seq, d]), vi("res2", TensorProto.FLOAT, [1, seq, d])],
                 path, "encoder_block")


from _ort_quantize import quantize  # noqa: E402,F401  (re-exported for the tests here)


def pow2_scales(path) -> Path:
    """Plant ties: every float scale initializer rounded to the nearest power of two, so that the
    requantization multipliers are powers of two and many accumulators land exactly on .5."""
    model = onnx.load(str(path))
    for t in model.graph.initializer:
        if t.data_type == TensorProto.FLOAT and ("scale" in t.name.lower()):
            v = numpy_helper.to_array(t)
            p = np.exp2(np.round(np.log2(np.maximum(np.abs(v), 1e-30)))).astype(np.float32)
            t.CopyFrom(numpy_helper.from_array(p, t.name))
    _bias_scales(model)
    onnx.save(model, str(path))
    return Path(path)


def _bias_scales(model) -> None:
    """QDQ: keep every int32 bias scale equal to x_scale * w_scale, as onnxruntime requires before
    it fuses DQ -> Conv/Gemm -> Q into QLinearConv/QGemm."""
    inits = {t.name: t for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 3:
            continue
        dq = [producer.get(i) for i in node.input[:3]]
        if any(d is None or d.op_type != "DequantizeLinear" for d in dq):
            continue
        sx, sw = (numpy_helper.to_array(inits[d.input[1]]) for d in dq[:2])
        bias_scale = inits[dq[2].input[1]]
        prod = (sx.astype(np.float32) * sw.astype(np.float32)).astype(np.float32)
        prod = prod.reshape(numpy_helper.to_array(bias_scale).shape)
        bias_scale.CopyFrom(numpy_helper.from_array(prod, bias_scale.name))


def expose(path, names, types=None) -> Path:
    """Add tensors as graph outputs to compare intermediates. Their types come from shape inference,
    else from ``types`` (name -> (numpy dtype, shape)): com.microsoft ops have no shape inference."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    info = {v.name: v for v in model.graph.value_info}
    have = {o.name for o in model.graph.output}
    for name in names:
        if name in have:
            continue
        if name in info:
            model.graph.output.append(info[name])
        elif types and name in types:
            dtype, shape = types[name]
            elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
            model.graph.output.append(helper.make_tensor_value_info(name, elem, list(shape)))
    onnx.save(model, str(path))
    return Path(path)


def ort_run(path, feeds) -> dict:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, dict(feeds))))


def qlinear_unary(path, op: str, sx: float, zx: int, sy: float, zy: int, n: int = 256) -> Path:
    """One com.microsoft QLinear unary op (QLinearSigmoid, ...) on a uint8 vector input."""
    inits = [numpy_helper.from_array(np.array(v, t), name) for v, t, name in
             ((sx, np.float32, "sx"), (zx, np.uint8, "zx"), (sy, np.float32, "sy"), (zy, np.uint8, "zy"))]
    node = helper.make_node(op, ["x", "sx", "zx", "sy", "zy"], ["y"], domain="com.microsoft", name="act")
    graph = helper.make_graph([node], op, [helper.make_tensor_value_info("x", TensorProto.UINT8, [n])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, [n])], inits)
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    onnx.save(model, str(path))
    return Path(path)
