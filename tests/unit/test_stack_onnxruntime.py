"""The local CPU's onnxruntime stack for 8-bit QOperator models: NHWC layout transposes around the
channels-last regions and float MaxPool islands, counted by hand and against onnxruntime's own
optimized graph."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from _ort_quantize import quantize
from qsim.cost import estimate_graph
from qsim.cost.stack_work import layout_transposes, stack_work
from qsim.errors import ProfileError
from qsim.hw.calibrate import Machine, profile_yaml
from qsim.hw.profile import build_profile, load_profile, resolve_profile_path
from qsim.ir import Graph
from qsim.ir.onnx_import import load_onnx
from qsim.precision import PrecisionPlan
from qsim.yamlio import load_yaml

INT8 = PrecisionPlan.uniform("int8")
EIGHT = lambda node: 8  # noqa: E731


def local_profile(transpose_ns=0.1, maxpool_ns=0.5, add_ns=(0.5, 0.75)):
    machine = Machine("Test CPU", 2, 3.0e9, frozenset({"avx512f", "avx512_vnni", "fma"}), 2**20, 32 * 2**20, 16 * 2**30)
    results = {"machine": machine, "int8_ort": 300e9, "int8_qconv": 192e9, "int8_qmatmul": 240e9, "fp32_ort": 75e9,
               "fp32_numpy": 40e9, "dram_bps": 20e9, "cache_bps": 200e9, "dispatch_s": 2e-6, "op_ns": {"LRN": 10.0},
               "transpose_ns": transpose_ns, "float_maxpool_ns": maxpool_ns, "float_add_ns": add_ns}
    return build_profile(load_yaml("local.yaml", profile_yaml(results)), "local.yaml")


def fire_graph() -> Graph:
    """A SqueezeNet-like piece: conv, max-pool, a fire module (squeeze, two expands, concat), a residual
    add + relu between convs, global pool."""
    g = Graph("fire")
    g.add_input("x", (1, 3, 32, 32))
    g.add_node("Conv", "c0", ["x"], {"out_channels": 16, "kernel": 3, "pad": 1})  # 16x32x32
    g.add_node("MaxPool", "p0", ["c0"], {"kernel": 3, "stride": 2})  # 16x15x15
    g.add_node("Conv", "squeeze", ["p0"], {"out_channels": 8, "kernel": 1})
    g.add_node("Conv", "e1", ["squeeze"], {"out_channels": 16, "kernel": 1})
    g.add_node("Conv", "e3", ["squeeze"], {"out_channels": 16, "kernel": 3, "pad": 1})
    g.add_node("Concat", "cat", ["e1", "e3"], {"axis": 1})  # 32x15x15
    g.add_node("Conv", "c1", ["cat"], {"out_channels": 32, "kernel": 1})
    g.add_node("Add", "add", ["c1", "cat"])
    g.add_node("Relu", "relu", ["add"])
    g.add_node("Conv", "c2", ["relu"], {"out_channels": 32, "kernel": 1})
    g.add_node("GlobalAvgPool", "gap", ["c2"])
    g.mark_output("gap")
    return g.validate()


def test_layout_transposes_by_hand():
    g = fire_graph()
    # the input enters the first NHWC conv; the conv output leaves for the (NCHW) float max-pool and its
    # output comes back; the global pool runs NHWC too, so its output leaves for the graph's output.
    # Add and Relu take the NHWC layout.
    assert layout_transposes(g, EIGHT) == {"c0": ["x"], "p0": ["c0"], "squeeze": ["p0"], "gap": ["gap"]}
    assert layout_transposes(g, lambda node: 32) == {}  # fp32 convs are not run channels-last here
    work = stack_work(g, EIGHT, local_profile(transpose_ns=0.1))
    # x: 3*32*32 = 3,072 elements, read and written once, one byte each; 0.1 ns per element
    assert (work["c0"].launches, work["c0"].bytes, work["c0"].timed_bytes) == (1, 2 * 3072, 0)
    assert work["c0"].added_s == pytest.approx(3072 * 0.1e-9)
    assert work["gap"].bytes == 2 * 32  # the pooled 1x32x1x1 output


def test_float_maxpool_island_by_hand():
    g = fire_graph()
    work = stack_work(g, EIGHT, local_profile(maxpool_ns=0.5))["p0"]
    n, m = 16 * 32 * 32, 16 * 15 * 15
    # DequantizeLinear (N u8 in, 4N out), ReorderInput (4N, 4N), MaxPool (4N, 4M), ReorderOutput (4M, 4M),
    # QuantizeLinear (4M, M): 17N + 17M bytes, of which the op's own N + M are counted on its row
    # the conv output's transpose back to NCHW (N elements, read and written) is charged here too
    assert work.transposed == ("c0",)
    assert (work.launches, work.bytes) == (4 + 1, 16 * (n + m) + 2 * n)
    assert work.timed_bytes == 0  # the measured rates cover the float traffic and the transpose
    assert work.compute_s == pytest.approx(n * 0.5e-9) and work.added_s == pytest.approx(n * 0.1e-9)
    row = estimate_graph(g, INT8, local_profile(maxpool_ns=0.5)).layers.set_index("name").loc["p0"]
    assert row.launches == 5 + 1  # five kernels of the island and one transpose
    assert row.compute_s == pytest.approx(n * 0.5e-9 + n * 0.1e-9)


def residual_sums() -> Graph:
    """Two old-opset residual Sums as the importer shows them: 8-bit conv outputs, a float Sum output, a
    float Relu typed as the 8-bit tensor it is quantized to."""
    g = Graph("sums")
    g.add_input("x", (1, 8, 10, 10), "uint8")
    for name in ("a", "b", "c"):
        g.add_node("Conv", name, ["x"], {"out_channels": 8, "kernel": 1}, dtype="uint8")
    g.add_node("Add", "sum1", ["a", "b"], dtype="float32")  # both inputs from integer kernels: two dequantizes
    g.add_node("Relu", "relu1", ["sum1"], dtype="uint8")
    g.add_node("Add", "sum2", ["relu1", "c"], dtype="float32")  # the Relu's output is float in the runtime
    g.mark_output("sum2")
    return g.validate()


def test_residual_sum_islands_by_hand():
    g, n = residual_sums(), 8 * 10 * 10
    work = stack_work(g, EIGHT, local_profile(add_ns=(0.5, 0.75)))  # float Add 0.25 ns, dequantize 0.25 ns
    # sum1: 2 dequantizes (N + 4N each), the float Add reads 4N + 4N, writes 4M: 26N bytes against the
    # row's 3N: 5 x 2N + 3 x 2N + 3N = 19N more; M x 0.25 + 2N x 0.25 ns
    assert (work["sum1"].launches, work["sum1"].bytes) == (2, 19 * n)
    assert work["sum1"].compute_s == pytest.approx((n * 0.25 + 2 * n * 0.25) * 1e-9)
    # sum2: one dequantize (c): 5N + 3 x 2N + 3N = 14N more, and the graph output's transpose back to
    # NCHW (the Sums and the Relu stay in the convs' NHWC layout): 2N bytes, one kernel
    assert work["sum2"].transposed == ("sum2",)
    assert (work["sum2"].launches, work["sum2"].bytes) == (1 + 1, 14 * n + 2 * n)
    assert work["sum2"].compute_s == pytest.approx((n * 0.25 + n * 0.25) * 1e-9)
    assert "relu1" not in work


def test_the_calibrated_profile_carries_the_stack_and_fp32_keeps_one_kernel_per_maxpool():
    profile = local_profile()
    assert profile.stack.name == "onnxruntime-cpu" and profile.stack.channels_last_int8
    assert profile.stack.float_islands == {"MaxPool": 0.5, "Add": 0.25}
    assert profile.stack.dequantize_ns_per_element == 0.25
    fp32 = estimate_graph(fire_graph(), PrecisionPlan.uniform("fp32"), profile).layers.set_index("name")
    assert fp32.loc["p0", "launches"] == 1 and fp32.loc["c0", "launches"] == 1


def _float_model(path: Path) -> Path:
    rng = np.random.default_rng(0)
    w = lambda name, shape: numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.1, name)  # noqa: E731
    nodes = [helper.make_node("Conv", ["x", "w0"], ["c0"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c0"], ["r0"]),
             helper.make_node("MaxPool", ["r0"], ["p0"], kernel_shape=[3, 3], strides=[2, 2]),
             helper.make_node("Conv", ["p0", "w1"], ["s"]),
             helper.make_node("Conv", ["s", "w2"], ["e1"]),
             helper.make_node("Conv", ["s", "w3"], ["e3"], pads=[1, 1, 1, 1]),
             helper.make_node("Concat", ["e1", "e3"], ["cat"], axis=1),
             helper.make_node("MaxPool", ["cat"], ["p1"], kernel_shape=[3, 3], strides=[2, 2]),
             helper.make_node("Conv", ["p1", "w4"], ["c4"]),
             helper.make_node("GlobalAveragePool", ["c4"], ["y"])]
    inits = [w("w0", (16, 3, 3, 3)), w("w1", (8, 16, 1, 1)), w("w2", (16, 8, 1, 1)), w("w3", (16, 8, 3, 3)),
             w("w4", (10, 32, 1, 1))]
    graph = helper.make_graph(nodes, "fire", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10, 1, 1])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), str(path))
    return path


def test_counts_match_onnxruntimes_optimized_graph(tmp_path):
    """quantize_static (QOperator, opset 11) leaves MaxPool in float; onnxruntime's optimizer then adds the
    transposes and the NCHWc reorders. qsim's counts must equal the optimized graph's."""
    import onnxruntime as ort

    qpath = quantize(_float_model(tmp_path / "f.onnx"), tmp_path / "q.onnx", "qoperator", per_channel=False)
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(qpath), opts, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]
    g = load_onnx(qpath)
    charged = layout_transposes(g, EIGHT)
    assert sum(len(t) for t in charged.values()) == ops.count("Transpose")
    islands = [n for n in g.nodes() if n.op == "MaxPool"]
    assert len(islands) == ops.count("MaxPool") == ops.count("ReorderInput") == 2
    assert ops.count("DequantizeLinear") == len(islands) + 1  # and one for the graph's float output
    assert ops[ops.index("QLinearGlobalAveragePool") + 1] == "Transpose"  # the pool runs NHWC: transposed after
    assert charged[g.producer(g.outputs[0]).name] == [g.outputs[0]]


@pytest.mark.parametrize("line, key", [("float_islands: {Conv: 1.0}", "float_islands.Conv"),
                                       ("layout_transpose_ns_per_element: 0", "layout_transpose_ns_per_element"),
                                       ("softmax_lowering: vela-int16", "softmax_lowering")])
def test_bad_stack_keys_are_errors_naming_the_line_and_key(tmp_path, line, key):
    text = resolve_profile_path("imx93").read_text()
    anchor = "    cascading: true"
    text = text.replace(anchor, f"    {line}\n{anchor}").replace("    softmax_lowering: vela-int8", "")
    (tmp_path / "npu.yaml").write_text(text)
    at = 1 + text.splitlines().index(f"    {line}")
    with pytest.raises(ProfileError, match=rf"npu\.yaml:{at}: stacks\.vela-ethos-u\.{key}"):
        load_profile(tmp_path / "npu.yaml")
