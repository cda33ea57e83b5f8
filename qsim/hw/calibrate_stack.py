"""The onnxruntime microbenchmark helpers of ``qsim calibrate`` and the stack it writes for the local CPU:
what onnxruntime's graph optimizer does to an 8-bit QOperator model (NHWC regions with a Transpose at
their borders, float MaxPool islands; qsim.cost.stack_work), with the per-element costs measured here.
"""
from __future__ import annotations

import time

import numpy as np


def best_seconds(fn, repeats: int = 9, rounds: int = 3) -> float:
    """The fastest of ``rounds`` x ``repeats`` runs after a warm-up. The machine may be shared with
    other work: the fastest run is the one least disturbed, so every number calibrate measures is a
    minimum over repeated runs (the benchmark times whole models the same way)."""
    fn()
    best = float("inf")
    for _ in range(rounds * repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def ort_session(model, disable_optimizations: bool = False):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if disable_optimizations:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def qparams(names_values) -> list:
    from onnx import numpy_helper

    return [numpy_helper.from_array(np.asarray(v), name) for name, v in names_values]


def slope_ns_per_element(make_session, feed, sizes=(28, 56)) -> float:
    """Nanoseconds per element of a kernel, as the slope between two tensor sizes (the fixed cost of a
    run, which the profile charges separately as dispatch, cancels)."""
    (small, x_small), (large, x_large) = [(make_session(s), feed(s)) for s in sizes]
    t_small = best_seconds(lambda: small.run(None, x_small))
    t_large = best_seconds(lambda: large.run(None, x_large))
    return max(t_large - t_small, 0.0) / (64 * (sizes[1] ** 2 - sizes[0] ** 2)) * 1e9


def ort_transpose_ns_per_element() -> float:
    """onnxruntime's uint8 NCHW -> NHWC Transpose (the layout change around its NHWC QLinearConv
    regions), per element, 1x64xSxS."""
    from onnx import TensorProto, helper

    def session(size: int):
        shape = [1, 64, size, size]
        graph = helper.make_graph([helper.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1])], "nhwc",
                                  [helper.make_tensor_value_info("x", TensorProto.UINT8, shape)],
                                  [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, size, size, 64])])
        return ort_session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))

    rng = np.random.default_rng(0)
    return slope_ns_per_element(session, lambda n: {"x": rng.integers(0, 255, (1, 64, n, n), dtype=np.uint8)})


def ort_composed_transpose_ns_per_element() -> float:
    """A channel shuffle as onnxruntime runs it inside an NHWC region: the uint8 Transpose
    ``[1, S, S, 4, 16]``, perm ``(0, 4, 3, 1, 2)`` (the shuffle with the layout change folded in), per
    element, 1x64xSxS."""
    from onnx import TensorProto, helper

    perm = [0, 4, 3, 1, 2]

    def session(size: int):
        shape = [1, size, size, 4, 16]
        graph = helper.make_graph([helper.make_node("Transpose", ["x"], ["y"], perm=perm)], "shuffle",
                                  [helper.make_tensor_value_info("x", TensorProto.UINT8, shape)],
                                  [helper.make_tensor_value_info("y", TensorProto.UINT8, [shape[i] for i in perm])])
        return ort_session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))

    rng = np.random.default_rng(0)
    return slope_ns_per_element(session, lambda n: {"x": rng.integers(0, 255, (1, n, n, 4, 16), dtype=np.uint8)})


def ort_kernel_seconds(model, feed: dict, op_type: str, runs: int = 27) -> float:
    """The fastest time of one node's kernel (onnxruntime's profiler): without the layout transposes
    the optimizer puts around it, and less disturbed by other work than a whole run."""
    import json
    import tempfile
    from pathlib import Path

    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.enable_profiling = True
    opts.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "ort")
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    for _ in range(runs + 1):
        sess.run(None, feed)
    trace = Path(sess.end_profiling())
    times = [e["dur"] * 1e-6 for e in json.loads(trace.read_text())[1:]  # the first run warms up
             if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["args"].get("op_name") == op_type]
    trace.unlink()
    return min(times)


# Stems the im2col GEMM fit reads: (output channels, kernel) with 3 input channels, stride 1, "same" padding
IM2COL_FIT_CONVS = ((64, 1), (64, 3), (64, 7), (16, 7), (64, 11))


def ort_im2col_gemm_fit(gemm_macs_per_s: float, size: int = 56, kernel_s: float = 0.0) -> dict:
    """Per-element costs of onnxruntime's im2col + GEMM + requantize convolution (qsim.cost.stack_work),
    by least squares over lone 3-channel stems (``IM2COL_FIT_CONVS``) at ``size`` x ``size``: each
    conv's kernel time minus its MACs at the GEMM rate = P x kh x kw x position_ns + O x output_ns."""
    from qsim.hw.calibrate import qlinear_conv_model

    rng = np.random.default_rng(0)
    rows, rest = [], []
    for cout, kernel in IM2COL_FIT_CONVS:
        x = rng.integers(0, 255, (1, 3, size, size), dtype=np.uint8)
        seconds = ort_kernel_seconds(qlinear_conv_model(size, cout, 3, kernel), {"x": x}, "QLinearConv")
        pixels = size * size
        rows.append([pixels * kernel * kernel, pixels * cout])
        # kernel_s: the conv kernel's fixed cost, charged apart
        rest.append(seconds - kernel_s - pixels * 3 * kernel * kernel * cout / gemm_macs_per_s)
    (position_s, out_s), *_ = np.linalg.lstsq(np.array(rows, float), np.array(rest), rcond=None)
    return {"position_ns": max(position_s * 1e9, 0.0), "output_ns": max(out_s * 1e9, 0.0), "gemm_gops": 2 * gemm_macs_per_s / 1e9,
            "size": size}


def ort_average_pool_ns_per_tap(size: int = 56) -> float:
    """onnxruntime's 8-bit AveragePool (com.microsoft QLinearAveragePool, run NHWC) 3x3 stride 2 pad 1 on
    1x64xSxS: its kernel time per output element and window element."""
    from onnx import TensorProto, helper

    out = (size + 2 - 3) // 2 + 1
    inits = qparams([("s", np.float32(0.05)), ("z", np.uint8(128)), ("so", np.float32(0.04)), ("zo", np.uint8(128))])
    node = helper.make_node("QLinearAveragePool", ["x", "s", "z", "so", "zo"], ["y"], domain="com.microsoft",
                            kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    graph = helper.make_graph([node], "pool", [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 64, size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 64, out, out])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)])
    x = np.random.default_rng(0).integers(0, 255, (1, 64, size, size), dtype=np.uint8)
    return ort_kernel_seconds(model, {"x": x}, "QLinearAveragePool") / (64 * out * out * 9) * 1e9


def ort_float_batchnorm_ns_per_element() -> float:
    """An 8-bit BatchNormalization left in float: DequantizeLinear -> BatchNormalization -> QuantizeLinear,
    per element, 1x64xSxS."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)

    def session(size: int):
        shape = [1, 64, size, size]
        inits = qparams([("s", np.float32(0.05)), ("z", np.uint8(128)), ("so", np.float32(0.07)), ("zo", np.uint8(120)),
                         ("g", rng.uniform(0.5, 1.5, 64).astype(np.float32)), ("b", np.zeros(64, np.float32)),
                         ("m", np.zeros(64, np.float32)), ("v", np.ones(64, np.float32))])
        nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["f"]),
                 helper.make_node("BatchNormalization", ["f", "g", "b", "m", "v"], ["n"]),
                 helper.make_node("QuantizeLinear", ["n", "so", "zo"], ["y"])]
        graph = helper.make_graph(nodes, "bn", [helper.make_tensor_value_info("x", TensorProto.UINT8, shape)],
                                  [helper.make_tensor_value_info("y", TensorProto.UINT8, shape)], inits)
        return ort_session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]))

    return slope_ns_per_element(session, lambda n: {"x": rng.integers(0, 255, (1, 64, n, n), dtype=np.uint8)})


def ort_float_maxpool_ns_per_element() -> float:
    """An 8-bit MaxPool as onnxruntime runs it from a QOperator model below opset 12 (no uint8 MaxPool):
    DequantizeLinear -> float MaxPool 3x3 stride 2 (inside NCHWc reorders) -> QuantizeLinear, per
    input element, 1x64xSxS."""
    from onnx import TensorProto, helper

    def session(size: int):
        out = (size - 3) // 2 + 1
        inits = qparams([("s", np.float32(0.05)), ("z", np.uint8(128)), ("so", np.float32(0.07)),
                          ("zo", np.uint8(120))])
        nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["f"]),
                 helper.make_node("MaxPool", ["f"], ["p"], kernel_shape=[3, 3], strides=[2, 2]),
                 helper.make_node("QuantizeLinear", ["p", "so", "zo"], ["y"])]
        graph = helper.make_graph(nodes, "island", [helper.make_tensor_value_info("x", TensorProto.UINT8,
                                                                                  [1, 64, size, size])],
                                  [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 64, out, out])], inits)
        return ort_session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]))

    rng = np.random.default_rng(0)
    return slope_ns_per_element(session, lambda n: {"x": rng.integers(0, 255, (1, 64, n, n), dtype=np.uint8)},
                                 sizes=(56, 112))


def ort_float_add_ns_per_element(dequantized: int) -> float:
    """A residual Sum as onnxruntime runs it from an old-opset QOperator model (the quantizer has no QLinear
    form of Sum): a float Add whose ``dequantized`` inputs (1 or 2) come through a DequantizeLinear of
    their own, the other from a float op; per output element, 1x64xSxS."""
    from onnx import TensorProto, helper

    def session(size: int):
        shape = [1, 64, size, size]
        inits = qparams([("sa", np.float32(0.05)), ("za", np.uint8(128)), ("sb", np.float32(0.07)),
                         ("zb", np.uint8(120))])
        nodes = [helper.make_node("DequantizeLinear", ["a", "sa", "za"], ["fa"])]
        if dequantized == 2:
            nodes.append(helper.make_node("DequantizeLinear", ["b", "sb", "zb"], ["fb"]))
        nodes.append(helper.make_node("Add", ["fa", "fb" if dequantized == 2 else "b"], ["y"]))
        b_type = TensorProto.UINT8 if dequantized == 2 else TensorProto.FLOAT
        graph = helper.make_graph(nodes, "island", [helper.make_tensor_value_info("a", TensorProto.UINT8, shape),
                                                    helper.make_tensor_value_info("b", b_type, shape)],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
                                  inits if dequantized == 2 else inits[:2])
        return ort_session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]))

    rng = np.random.default_rng(0)

    def feed(n: int):
        b = rng.integers(0, 255, (1, 64, n, n), dtype=np.uint8)
        return {"a": rng.integers(0, 255, (1, 64, n, n), dtype=np.uint8),
                "b": b if dequantized == 2 else b.astype(np.float32)}

    return slope_ns_per_element(session, feed)


def stack_lines(r: dict) -> list[str]:
    """The onnxruntime stack: what its graph optimizer does to an 8-bit QOperator model (NHWC regions with
    transposes at their borders, float MaxPool islands), with the measured costs (qsim.cost.stack_work)."""
    if "transpose_ns" not in r:
        return []
    return [
        "stack: onnxruntime-cpu",
        "stacks:",
        "  onnxruntime-cpu:",
        "    runtime: onnxruntime CPU execution provider, all graph optimizations (QOperator int8 from quantize_static)",
        "    fold_batchnorm: true".ljust(36) + "# onnxruntime fuses Conv + BatchNormalization",
        "    fuse_activation: true".ljust(36) + "# Conv + Relu fusion (fp32); QLinearConv carries its clamp",
        "    fuse_residual_add: false".ljust(36) + "# Add / Sum is a kernel of its own",
        "    launch: per_kernel".ljust(36) + "# dispatch_overhead_us per node",
        "    channels_last_int8: true".ljust(36) + "# onnxruntime's NHWC transformer: QLinearConv, QLinearConcat, QLinear(Global)AveragePool",
        f"    layout_transpose_ns_per_element: {r['transpose_ns']:.3g} "
        + "# measured: uint8 NCHW -> NHWC Transpose, slope between 1x64x28x28 and 1x64x56x56, fastest of 27 runs",
        "    float_islands:".ljust(36) + "# 8-bit ops run in float below opset 12",
        f"      MaxPool: {r['float_maxpool_ns']:.3g}".ljust(36)
        + "# measured: DequantizeLinear -> MaxPool 3x3/2 -> QuantizeLinear per input element, slope 56 -> 112, fastest of 27 runs",
        *([f"      BatchNorm: {r['float_batchnorm_ns']:.3g}".ljust(36) + "# measured: DequantizeLinear -> "
            "BatchNormalization -> QuantizeLinear per element, slope 28 -> 56, fastest of 27 runs"]
          if "float_batchnorm_ns" in r else []),
        *_sum_island_lines(r),
        *_composed_and_gemm_lines(r),
    ]


def _composed_and_gemm_lines(r: dict) -> list[str]:
    from qsim.hw.calibrate_kernels import kernel_lines

    lines = []
    lines += kernel_lines(r)  # per-channel broadcast, 8-bit Concat
    if "average_pool_ns" in r:
        lines.append(f"    average_pool_ns_per_tap: {r['average_pool_ns']:.3g} "
                     "# measured: QLinearAveragePool 3x3/2 on 1x64x56x56, kernel time per output and window element")
    if "composed_transpose_ns" in r:
        lines.append(f"    composed_transpose_ns_per_element: {r['composed_transpose_ns']:.3g} "
                     "# measured: uint8 Transpose [1,S,S,4,16] perm (0,4,3,1,2), slope 28 -> 56, fastest of 27 runs")
    if "im2col_gemm" in r:
        f = r["im2col_gemm"]
        vnni = "avx512_vnni" in r["machine"].flags or "avx512f" in r["machine"].flags or "avx_vnni" in r["machine"].flags
        convs = ", ".join(f"{k}x{k}->{c}" for c, k in IM2COL_FIT_CONVS)
        lines += ["    im2col_gemm:".ljust(36) + "# 8-bit convs outside onnxruntime's direct kernel (stems, grouped convs)",
                  f"      channel_multiple: {4 if vnni else 8}".ljust(36)
                  + "# MLAS ConvSym dispatch: input-channel and output-channel alignment (AVX-512/VNNI 4, AVX2 8)",
                  "      min_output_channels: 16".ljust(36) + "# MLAS ConvSym: FilterOutputChannelPackCount",
                  f"      gemm_gops: {f['gemm_gops']:.4g}".ljust(36) + "# measured: MatMulInteger u8 x s8 (above)",
                  f"      position_ns: {f['position_ns']:.3g}".ljust(36)
                  + f"# fitted: lone 3-channel QLinearConv stems {convs} at {f['size']}x{f['size']}, kernel times",
                  f"      output_ns_per_element: {f['output_ns']:.3g}".ljust(36) + "# fitted: the same least squares"]
    return lines


def _sum_island_lines(r: dict) -> list[str]:
    """A float Add and a DequantizeLinear per element, from Adds with one and with two dequantized inputs."""
    if "float_add_ns" not in r:
        return []
    one, two = r["float_add_ns"]
    dequantize = max(two - one, 0.0)
    return [f"      Add: {max(one - dequantize, 0.001):.3g}".ljust(36)
            + f"# measured: float Add per output element (DequantizeLinear + Add {one:.3g}, two + Add {two:.3g}; "
            "slope 28 -> 56, fastest of 27 runs)",
            f"    dequantize_ns_per_element: {max(dequantize, 0.001):.3g} "
            + "# measured: the second DequantizeLinear's share of the two above"]
