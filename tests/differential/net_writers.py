"""Writers for the layer lists of ``net_specs``: a float ONNX model with random He-initialised
weights (onnx.helper), and an int8 .tflite with random weights and per-layer scales sized to the
expected activation range (the project's ``TfliteWriter``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .tflite_units import TfliteModel


def _shapes(layers, channels: int, size: int) -> dict:
    """tensor -> (channels, height/width) through the layer list (square inputs)."""
    shape = {"x": (channels, size)}
    for kind, out, src, *rest in layers:
        c, s = shape[src]
        if kind == "conv":
            shape[out] = (rest[0], -(-s // rest[2]))
        elif kind == "maxpool":
            shape[out] = (c, -(-s // rest[1]))
        elif kind == "gap":
            shape[out] = (c, 1)
        elif kind == "fc":
            shape[out] = (rest[0], 1)
        else:
            shape[out] = (c, s)
    return shape


def onnx_float(layers, path, size: int, seed: int = 0, batch: int = 1) -> Path:
    """PyTorch-style export: Conv (+bias) -> Relu / Clip(0, 6), Add, MaxPool, GlobalAveragePool,
    Flatten, Gemm."""
    rng = np.random.default_rng(seed)
    shape = _shapes(layers, 3, size)
    nodes, inits = [], [numpy_helper.from_array(np.float32(0), "zero"), numpy_helper.from_array(np.float32(6), "six")]
    n = helper.make_node

    def act(name, kind):
        if kind == "relu":
            nodes.append(n("Relu", [f"{name}_pre"], [name], name=f"{name}.relu"))
        elif kind == "relu6":
            nodes.append(n("Clip", [f"{name}_pre", "zero", "six"], [name], name=f"{name}.relu6"))
        return name if kind else f"{name}_pre"

    for kind, out, src, *rest in layers:  # tensors keep the layer names (activations write ``out``)
        if kind == "conv":
            cout, k, stride, groups, a = rest
            cin = shape[src][0]
            w = rng.standard_normal((cout, cin // groups, k, k)) * np.sqrt(2.0 / (cin // groups * k * k))
            inits += [numpy_helper.from_array(w.astype(np.float32), f"{out}.weight"),
                      numpy_helper.from_array((rng.standard_normal(cout) * 0.1).astype(np.float32), f"{out}.bias")]
            nodes.append(n("Conv", [src, f"{out}.weight", f"{out}.bias"], [f"{out}_pre" if a else out], name=out,
                           kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4, group=groups))
            act(out, a)
        elif kind == "add":
            b, a = rest
            nodes.append(n("Add", [src, b], [f"{out}_pre" if a else out], name=out))
            act(out, a)
        elif kind == "maxpool":
            nodes.append(n("MaxPool", [src], [out], name=out, kernel_shape=[rest[0]] * 2, strides=[rest[1]] * 2,
                           pads=[rest[0] // 2] * 4))
        elif kind == "gap":
            nodes += [n("GlobalAveragePool", [src], [f"{out}_4d"], name=out),
                      n("Flatten", [f"{out}_4d"], [out], name=f"{out}.flatten")]
        elif kind == "fc":
            cin = shape[src][0]
            w = rng.standard_normal((rest[0], cin)) / np.sqrt(cin)
            inits += [numpy_helper.from_array(w.astype(np.float32), f"{out}.weight"),
                      numpy_helper.from_array((rng.standard_normal(rest[0]) * 0.1).astype(np.float32), f"{out}.bias")]
            nodes.append(n("Gemm", [src, f"{out}.weight", f"{out}.bias"], [out], name=out, transB=1))
    last = layers[-1][1]
    graph = helper.make_graph(nodes, Path(path).stem, [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                     [batch, 3, size, size])],
                              [helper.make_tensor_value_info(last, TensorProto.FLOAT, [batch, shape[last][0]])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)


ACTS = {None: 0, "relu": 1, "relu6": 3}


def tflite_int8(layers, path, size: int, seed: int = 0) -> tuple[Path, dict]:
    """int8 in, int8 logits out, NHWC. CONV_2D / DEPTHWISE_CONV_2D (per-channel, fused RELU/RELU6),
    ADD, MAX_POOL_2D, AVERAGE_POOL_2D over the whole map (global pooling), RESHAPE, FULLY_CONNECTED.
    Returns the path and the feeds."""
    rng = np.random.default_rng(seed)
    m = TfliteModel()
    w, P = m.w, m.w.s.Padding
    shape = _shapes(layers, 3, size)
    q = {"x": (np.float32(4 / 127), 0, 1.0)}  # tensor -> (scale, zero point, std of the real values)
    idx = {"x": w.tensor("x", (1, size, size, 3), np.int8, (q["x"][0], 0))}
    m.ins.append(idx["x"])
    m.feeds["x"] = rng.integers(-128, 128, (1, size, size, 3)).astype(np.int8)

    def out_tensor(name, c, s, std, act):
        scale = np.float32(max(std, 1e-3) * 6 / 255 * np.exp(rng.uniform(-0.3, 0.3)))
        zero = -128 if act else int(rng.integers(-10, 10))
        q[name] = (scale, zero, std * (0.6 if act else 1.0))
        idx[name] = w.tensor(name, (1, s, s, c) if s else (1, c), np.int8, (scale, zero))
        return idx[name]

    for kind, out, src, *rest in layers:
        c, s = shape[out]
        s_in, _, std_in = q[src]
        if kind == "conv":
            cout, k, stride, groups, a = rest
            cin = shape[src][0]
            dw = groups > 1
            wshape = (1, k, k, cout) if dw else (cout, k, k, cin)
            fan = k * k * (1 if dw else cin)
            s_w = (np.sqrt(2.0 / fan) / 64 * np.exp(rng.uniform(-0.5, 0.5, cout))).astype(np.float32)
            wt = w.tensor(f"{out}.w", wshape, np.int8, (s_w, np.zeros(cout, int), 3 if dw else 0),
                          np.clip(np.rint(rng.standard_normal(wshape) * 64), -127, 127))
            bs = (np.float32(s_in) * s_w).astype(np.float32)
            bt = w.tensor(f"{out}.b", (cout,), np.int32, (bs, np.zeros(cout, int), 0),
                          np.rint(rng.standard_normal(cout) * 0.1 / bs).astype(np.int64))
            y = out_tensor(out, cout, s, std_in * np.sqrt(2.0), a)
            opts = dict(padding=P.SAME, strideH=stride, strideW=stride, fusedActivationFunction=ACTS[a])
            if dw:
                w.op("DEPTHWISE_CONV_2D", [idx[src], wt, bt], [y], w.options("DepthwiseConv2DOptionsT",
                                                                            depthMultiplier=1, **opts), "DepthwiseConv2DOptions")
            else:
                w.op("CONV_2D", [idx[src], wt, bt], [y], w.options("Conv2DOptionsT", **opts), "Conv2DOptions")
        elif kind == "add":
            y = out_tensor(out, c, s, np.hypot(std_in, q[rest[0]][2]), rest[1])
            w.op("ADD", [idx[src], idx[rest[0]]], [y], w.options("AddOptionsT", fusedActivationFunction=ACTS[rest[1]]),
                 "AddOptions")
        elif kind in ("maxpool", "gap"):
            q[out] = q[src]
            idx[out] = w.tensor(out, (1, s, s, c), np.int8, q[src][:2])
            k, stride = (rest[0], rest[1]) if kind == "maxpool" else (shape[src][1], 1)
            opts = w.options("Pool2DOptionsT", padding=P.SAME if kind == "maxpool" else P.VALID, strideH=stride,
                             strideW=stride, filterHeight=k, filterWidth=k)
            w.op("MAX_POOL_2D" if kind == "maxpool" else "AVERAGE_POOL_2D", [idx[src]], [idx[out]], opts, "Pool2DOptions")
        elif kind == "fc":
            cin = shape[src][0]
            flat = w.tensor(f"{out}.flat", (1, cin), np.int8, q[src][:2])
            w.op("RESHAPE", [idx[src], w.tensor(f"{out}.shape", (2,), np.int32, None, np.array([1, cin]))], [flat])
            s_w = (1 / np.sqrt(cin) / 64 * np.exp(rng.uniform(-0.5, 0.5, c))).astype(np.float32)
            wt = w.tensor(f"{out}.w", (c, cin), np.int8, (s_w, np.zeros(c, int), 0),
                          np.clip(np.rint(rng.standard_normal((c, cin)) * 64), -127, 127))
            bs = (np.float32(s_in) * s_w).astype(np.float32)
            bt = w.tensor(f"{out}.b", (c,), np.int32, (bs, np.zeros(c, int), 0), np.zeros(c, np.int64))
            y = out_tensor(out, c, 0, std_in, None)
            w.op("FULLY_CONNECTED", [flat, wt, bt], [y], w.options("FullyConnectedOptionsT"), "FullyConnectedOptions")
    m.outs.append(idx[layers[-1][1]])
    return m.save(path), m.feeds
