"""Lone-kernel microbenchmarks of ``qsim calibrate`` read with onnxruntime's profiler (kernel time, not
a whole ``session.run``): the 8-bit direct convolution's rate, the per-channel broadcast loop and the
8-bit Concat. A whole run of a lone QLinearConv also times the two layout transposes the NHWC
transformer puts around it and the session's own overhead (about 20 % of a 0.3 ms conv here), which
a conv inside a model does not pay again: the rate is read from the kernel alone.
"""
from __future__ import annotations

import numpy as np

from qsim.hw.calibrate_stack import ort_kernel_seconds, qparams

# Lone QLinearConvs the int8 direct-conv costs are fitted on: (input channels, output channels, input size,
# kernel), channels and sizes as in the middle of ResNet / VGG / DenseNet (0.05-0.46 G MACs each); the 1x1
# convs, with 64-256 MACs per output, separate the per-output cost from the MAC rate
CONV_RATE_SHAPES = ((64, 64, 56, 3), (128, 128, 28, 3), (256, 256, 14, 3), (128, 128, 56, 3), (256, 64, 56, 1),
                    (64, 256, 56, 1))
QUICK_CONV_RATE_SHAPES = ((16, 16, 14, 3), (32, 32, 7, 3), (32, 16, 14, 1))
# Per-channel broadcasts the broadcast loop's two costs are fitted on: (channels, size), from long planes to short
BROADCAST_SHAPES = ((64, 56), (256, 28), (512, 14), (1024, 7))
QUICK_BROADCAST_SHAPES = ((16, 14), (64, 7))


def ort_conv_kernel_seconds() -> float:
    """A tiny QLinearConv's fastest kernel time (16 -> 16 channels, 1x1, 4x4: 4,096 MACs, work of well
    under a microsecond): what every 8-bit conv kernel costs beyond its work. Here 5-9 us (the profiler's
    1 us steps), where the per-node dispatch (a chain of 1-element Relu nodes, which never enter the
    thread pool) is 0.2-0.4 us; tiny QuantizeLinear kernels take 7-8 us too."""
    from qsim.hw.calibrate import qlinear_conv_model

    x = np.random.default_rng(0).integers(0, 255, (1, 16, 4, 4), dtype=np.uint8)
    return ort_kernel_seconds(qlinear_conv_model(4, 16, 16, 1), {"x": x}, "QLinearConv")


def ort_conv_rate_fit(shapes=CONV_RATE_SHAPES, kernel_s: float = 0.0) -> dict:
    """onnxruntime's 8-bit direct convolution (MLAS ConvSym: MACs on an indirection buffer, then each
    output requantized to uint8): its MAC rate and a cost per output element, least squares over the lone
    convs' fastest kernel times less the fixed ``kernel_s`` (time = kernel_s + MACs / rate + outputs x
    output_ns), each conv's own figure
    (label, MACs, seconds, (cin, cout, size, kernel)) kept."""
    from qsim.hw.calibrate import qlinear_conv_model

    rng = np.random.default_rng(0)
    rows = []
    for cin, cout, size, kernel in shapes:
        x = rng.integers(0, 255, (1, cin, size, size), dtype=np.uint8)
        seconds = ort_kernel_seconds(qlinear_conv_model(size, cout, cin, kernel), {"x": x}, "QLinearConv")
        rows.append((f"{kernel}x{kernel} {cin}->{cout} {size}x{size}", cin * cout * kernel * kernel * size * size,
                     seconds, (cin, cout, size, kernel)))
    a = np.array([[r[1], r[3][1] * r[3][2] ** 2] for r in rows], float)  # MACs, output elements ("same" padding)
    (per_mac, per_output), *_ = np.linalg.lstsq(a, np.array([r[2] - kernel_s for r in rows]), rcond=None)
    if per_mac <= 0 or per_output < 0:  # a disturbed or degenerate fit: the plain rate, no per-output cost
        per_mac, per_output = sum(r[2] - kernel_s for r in rows) / sum(r[1] for r in rows), 0.0
    return {"macs_per_s": 1 / per_mac, "output_ns": per_output * 1e9, "rows": rows}


def _broadcast_model(op: str, channels: int, size: int):
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    shape = [1, channels, size, size]
    inits = qparams([("sa", np.float32(0.05)), ("za", np.uint8(128)),
                     ("c", rng.integers(0, 255, (channels, 1, 1), dtype=np.uint8)), ("sc", np.float32(0.01)),
                     ("zc", np.uint8(100)), ("sy", np.float32(0.07)), ("zy", np.uint8(120))])
    node = helper.make_node(op, ["x", "sa", "za", "c", "sc", "zc", "sy", "zy"], ["y"], domain="com.microsoft")
    graph = helper.make_graph([node], "broadcast", [helper.make_tensor_value_info("x", TensorProto.UINT8, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                   helper.make_opsetid("com.microsoft", 1)])


def ort_broadcast_fit(op: str, shapes=BROADCAST_SHAPES) -> tuple[float, float]:
    """QLinearMul / QLinearAdd of a uint8 1xCxSxS tensor and a per-channel [C, 1, 1] constant: (ns per
    output element, ns per channel), least squares with a fixed cost over ``shapes`` (kernel times).
    onnxruntime's broadcast loop calls the vector kernel once per channel plane (the constant a scalar),
    so short planes (7 x 7) pay the per-call cost on few elements."""
    rng = np.random.default_rng(0)
    rows, seconds = [], []
    for channels, size in shapes:
        x = rng.integers(0, 255, (1, channels, size, size), dtype=np.uint8)
        seconds.append(ort_kernel_seconds(_broadcast_model(op, channels, size), {"x": x}, op))
        rows.append([channels * size * size, channels, 1.0])
    (element, channel, _fixed), *_ = np.linalg.lstsq(np.array(rows, float), np.array(seconds), rcond=None)
    return max(element * 1e9, 0.001), max(channel * 1e9, 0.0)


def ort_concat_ns_per_element(size: int = 56, channels: tuple[int, int] = (64, 64)) -> float:
    """onnxruntime's QLinearConcat of two QLinearConv outputs (so that it runs channels-last, as in a
    model) with their own scales (each input through a lookup table), kernel time per output element."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    c1, c2 = channels
    inits = qparams([("w1", rng.integers(-127, 127, (c1, 16, 1, 1), dtype=np.int8)),
                     ("w2", rng.integers(-127, 127, (c2, 16, 1, 1), dtype=np.int8)),
                     ("sx", np.float32(0.01)), ("zx", np.uint8(128)), ("sw", np.float32(0.01)), ("zw", np.int8(0)),
                     ("s1", np.float32(0.5)), ("z1", np.uint8(128)), ("s2", np.float32(0.3)), ("z2", np.uint8(120)),
                     ("sy", np.float32(0.6)), ("zy", np.uint8(110))])
    nodes = [helper.make_node("QLinearConv", ["x", "sx", "zx", "w1", "sw", "zw", "s1", "z1"], ["a"]),
             helper.make_node("QLinearConv", ["x", "sx", "zx", "w2", "sw", "zw", "s2", "z2"], ["b"]),
             helper.make_node("QLinearConcat", ["sy", "zy", "a", "s1", "z1", "b", "s2", "z2"], ["y"], axis=1,
                              domain="com.microsoft")]
    graph = helper.make_graph(nodes, "concat",
                              [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 16, size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, c1 + c2, size, size])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("com.microsoft", 1)])
    x = rng.integers(0, 255, (1, 16, size, size), dtype=np.uint8)
    return ort_kernel_seconds(model, {"x": x}, "QLinearConcat") / ((c1 + c2) * size * size) * 1e9


def kernel_lines(r: dict) -> list[str]:
    """Stack lines for the per-channel broadcast and the 8-bit Concat (under ``stacks.onnxruntime-cpu``)."""
    lines = []
    if "conv_kernel_s" in r:
        lines.append(f"    conv_kernel_us: {r['conv_kernel_s'] * 1e6:.3g} ".ljust(36)
                     + "# measured: a tiny QLinearConv (16->16 1x1 at 4x4) kernel time, fastest of 27 runs")
    if "int8_qconv_fit" in r:
        convs = ", ".join(row[0] for row in r["int8_qconv_fit"]["rows"])
        lines.append(f"    conv_output_ns_per_element: {r['int8_qconv_fit']['output_ns']:.3g} "
                     f"# fitted with the int8 rate: lone QLinearConvs {convs}, kernel times")
    if "broadcast_fit" in r:
        shapes = ", ".join(f"{c}x{s}x{s}" for c, s in r.get("broadcast_shapes", BROADCAST_SHAPES))
        lines += ["    broadcast_ns_per_element:".ljust(36) + "# QLinearMul / QLinearAdd by a [C, 1, 1] constant",
                  *[f"      {op}: {e:.3g}".ljust(36) + f"# fitted: lone kernels {shapes}, fastest of 27 runs"
                    for op, (e, _) in r["broadcast_fit"].items()],
                  "    broadcast_ns_per_channel:".ljust(36) + "# the broadcast loop's cost per channel plane",
                  *[f"      {op}: {c:.3g}".ljust(36) + "# fitted: the same least squares (elements, channels, fixed)"
                    for op, (_, c) in r["broadcast_fit"].items()]]
    if "concat_ns" in r:
        lines.append(f"    concat_ns_per_element: {r['concat_ns']:.3g} "
                     "# measured: QLinearConcat of two QLinearConv outputs (64 + 64 channels, 56x56, own scales), "
                     "kernel time")
    return lines
