"""The local CPU's onnxruntime stack, kernel choices: a channel shuffle whose Transpose absorbs the NHWC
layout change (composed transpose), and 8-bit convs that onnxruntime's direct conv kernel refuses
(stems, grouped convs: im2col + GEMM + requantize), by hand and against onnxruntime's optimized graph."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from _ort_quantize import quantize
from qsim.cost import estimate_graph
from qsim.cost.stack_work import im2col_gemm_work, layout_walk, stack_work
from qsim.hw.calibrate import Machine, profile_yaml
from qsim.hw.profile import build_profile
from qsim.hw.stack_profile import Im2colGemm
from qsim.ir import Graph
from qsim.ir.onnx_import import load_onnx
from qsim.precision import PrecisionPlan
from qsim.yamlio import load_yaml

EIGHT = lambda node: 8  # noqa: E731
GEMM = Im2colGemm(channel_multiple=4, min_output_channels=16, gemm_macs_per_s=50e9, position_s=0.5e-9,
                  output_s_per_element=1e-9)


def local_profile(composed_ns=3.0, gemm=(100.0, 0.5, 1.0), flags=("avx512f", "avx512_vnni", "fma")):
    machine = Machine("Test CPU", 2, 3.0e9, frozenset(flags), 2**20, 32 * 2**20, 16 * 2**30)
    results = {"machine": machine, "int8_ort": 300e9, "int8_qconv": 192e9, "int8_qmatmul": 240e9, "fp32_ort": 75e9,
               "fp32_numpy": 40e9, "dram_bps": 20e9, "cache_bps": 200e9, "dispatch_s": 2e-6, "op_ns": {"LRN": 10.0},
               "transpose_ns": 0.1, "float_maxpool_ns": 0.5, "float_add_ns": (0.5, 0.75),
               "composed_transpose_ns": composed_ns, "average_pool_ns": 2.0,
               "im2col_gemm": {"gemm_gops": gemm[0], "position_ns": gemm[1], "output_ns": gemm[2], "size": 56}}
    return build_profile(load_yaml("local.yaml", profile_yaml(results)), "local.yaml")


def shuffle_graph() -> Graph:
    """conv -> channel shuffle (Reshape [1, 2, 8, 6, 6], Transpose (0, 2, 1, 3, 4), Reshape back) -> conv."""
    g = Graph("shuffle")
    g.add_input("x", (1, 16, 6, 6))
    g.add_node("Conv", "c0", ["x"], {"out_channels": 16, "kernel": 1})
    g.add_node("Reshape", "split", ["c0"], {"shape": (1, 2, 8, 6, 6)})
    g.add_node("Transpose", "shuffle", ["split"], {"perm": (0, 2, 1, 3, 4)})
    g.add_node("Reshape", "merge", ["shuffle"], {"shape": (1, 16, 6, 6)})
    g.add_node("Conv", "c1", ["merge"], {"out_channels": 16, "kernel": 1})
    g.mark_output("c1")
    return g.validate()


def test_a_shuffle_on_channels_last_data_absorbs_the_layout_change():
    g = shuffle_graph()
    charged, composed = layout_walk(g, EIGHT)
    # the input enters c0; the Reshape keeps c0's NHWC tensor (no transpose of its own); the shuffle's
    # Transpose writes NCHW, which goes back to NHWC for c1; c1's output leaves for the graph output
    assert composed == {"shuffle"}
    assert charged == {"c0": ["x"], "c1": ["merge", "c1"]}
    work = stack_work(g, EIGHT, local_profile(composed_ns=3.0))
    assert work["shuffle"].compute_s == pytest.approx(16 * 36 * 3.0e-9)  # 576 elements at 3 ns
    assert "split" not in work
    # fp32 graphs have no channels-last region: nothing composed, the Transpose keeps its own cost
    assert layout_walk(g, lambda node: 32) == ({}, set())
    row = estimate_graph(g, PrecisionPlan.uniform("int8"), local_profile(composed_ns=3.0)).layers.set_index("name")
    assert row.loc["shuffle", "compute_s"] == pytest.approx(576 * 3.0e-9)


def _shuffle_model(path: Path) -> Path:
    rng = np.random.default_rng(0)
    w = lambda name: numpy_helper.from_array(rng.standard_normal((16, 16, 1, 1)).astype(np.float32) * 0.1, name)  # noqa: E731
    shapes = [numpy_helper.from_array(np.array(s, np.int64), n) for n, s in
              (("s5", [1, 2, 8, 6, 6]), ("s4", [1, 16, 6, 6]))]
    nodes = [helper.make_node("Conv", ["x", "w0"], ["c0"]), helper.make_node("Relu", ["c0"], ["r0"]),
             helper.make_node("Reshape", ["r0", "s5"], ["split"]),
             helper.make_node("Transpose", ["split"], ["shuffle"], perm=[0, 2, 1, 3, 4]),
             helper.make_node("Reshape", ["shuffle", "s4"], ["merge"]),
             helper.make_node("Conv", ["merge", "w1"], ["y"])]
    graph = helper.make_graph(nodes, "shuffle", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 6, 6])],
                              [w("w0"), w("w1"), *shapes])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), str(path))
    return path


def test_onnxruntime_composes_the_shuffle_with_the_layout_change(tmp_path):
    """The optimized graph has the shuffle as a 5-D Transpose moving the innermost axis, and as many
    Transposes as qsim charges plus the composed one."""
    import onnxruntime as ort

    qpath = quantize(_shuffle_model(tmp_path / "f.onnx"), tmp_path / "q.onnx", "qoperator", per_channel=False)
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(qpath), opts, providers=["CPUExecutionProvider"])
    transposes = [n for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node if n.op_type == "Transpose"]
    perms = [tuple(a.ints) for n in transposes for a in n.attribute if a.name == "perm"]
    assert (0, 4, 3, 1, 2) in perms
    charged, composed = layout_walk(load_onnx(qpath), EIGHT)
    assert len(composed) == 1 and sum(len(t) for t in charged.values()) + len(composed) == len(transposes)


def conv_graph(cin, cout, size, kernel, groups=1, stride=1) -> Graph:
    g = Graph("conv")
    g.add_input("x", (1, cin, size, size))
    g.add_node("Conv", "c", ["x"], {"out_channels": cout, "kernel": kernel, "pad": kernel // 2, "groups": groups,
                                    "stride": stride})
    g.mark_output("c")
    return g.validate()


def test_im2col_gemm_conv_by_hand():
    g = conv_graph(3, 16, 8, 3)  # a stem: 3 input channels, not a multiple of 4
    work = im2col_gemm_work(g, g.node("c"), GEMM)
    # 64 pixels x K = 27 x 16 outputs = 27,648 MACs at 50 G MAC/s; 64 pixels x 9 kernel positions = 576
    # im2col copies at 0.5 ns; 1,024 outputs at 1 ns; im2col buffer 64 x 27 = 1,728 bytes
    assert work.compute_s == pytest.approx(27648 / 50e9 + 576 * 0.5e-9 + 1024 * 1e-9)
    assert work.bytes == 2 * 1728 + 8 * 1024 and work.timed_bytes == 0 and work.launches == 0
    grouped = conv_graph(16, 16, 8, 1, groups=2)  # 2 groups of 8 -> 8, 1x1: no im2col buffer
    # 64 pixels x 2 groups x 1 position = 128 rows; 64 x 8 x 16 = 8,192 MACs; 1,024 outputs
    assert im2col_gemm_work(grouped, grouped.node("c"), GEMM).compute_s == pytest.approx(
        8192 / 50e9 + 128 * 0.5e-9 + 1024 * 1e-9)
    assert im2col_gemm_work(grouped, grouped.node("c"), GEMM).bytes == 8 * 1024
    strided = conv_graph(3, 16, 8, 3, stride=2)  # 16 pixels
    assert im2col_gemm_work(strided, strided.node("c"), GEMM).compute_s == pytest.approx(
        16 * 27 * 16 / 50e9 + 16 * 9 * 0.5e-9 + 256 * 1e-9)


@pytest.mark.parametrize("cin, cout, groups, direct", [(16, 16, 1, True), (64, 1000, 1, True), (16, 8, 1, False),
                                                      (16, 18, 1, False), (16, 16, 16, True), (16, 16, 4, False)])
def test_which_convs_leave_the_direct_kernel(cin, cout, groups, direct):
    # one group, channels in multiples of 4 and at least 16 outputs: the direct kernel; depthwise: its
    # own kernel; anything else (fewer than 16 outputs, 18 outputs, 4 groups) runs im2col + GEMM
    g = conv_graph(cin, cout, 8, 3, groups)
    assert (im2col_gemm_work(g, g.node("c"), GEMM) is None) == direct


def test_the_calibrated_stack_costs_a_stem_by_its_fitted_rates():
    profile = local_profile(gemm=(100.0, 0.5, 1.0))  # 100 GOPS = 50 G MAC/s
    assert profile.stack.im2col_gemm == GEMM
    rows = estimate_graph(conv_graph(3, 16, 8, 3), PrecisionPlan.uniform("int8"), profile).layers.set_index("name")
    # the layout transposes of the input (192 elements) and of the graph's output (1,024), 0.1 ns each,
    # are added to the conv's row
    assert rows.loc["c", "compute_s"] == pytest.approx(27648 / 50e9 + 576 * 0.5e-9 + 1024 * 1e-9
                                                       + (192 + 1024) * 0.1e-9)
    fp32 = estimate_graph(conv_graph(3, 16, 8, 3), PrecisionPlan.uniform("fp32"), profile).layers.set_index("name")
    assert fp32.loc["c", "compute_s"] < 27648 / 50e9 + 1024 * 1e-9  # fp32 convs keep the profile's efficiency


def test_a_direct_conv_pays_its_fitted_cost_per_output_beside_its_macs():
    machine = Machine("Test CPU", 2, 3.0e9, frozenset({"avx512f", "avx512_vnni", "fma"}), 2**20, 32 * 2**20, 16 * 2**30)
    fit = {"macs_per_s": 384e9, "output_ns": 0.05, "rows": [("3x3 64->64 56x56", 115605504, 0.3e-3, (64, 64, 56, 3))]}
    results = {"machine": machine, "int8_ort": 300e9, "int8_qconv": 384e9, "int8_qconv_fit": fit, "int8_qmatmul": 240e9,
               "fp32_ort": 75e9, "fp32_numpy": 40e9, "dram_bps": 20e9, "cache_bps": 200e9, "dispatch_s": 2e-6,
               "op_ns": {"LRN": 10.0}, "transpose_ns": 0.1, "float_maxpool_ns": 0.5, "float_add_ns": (0.5, 0.75),
               "im2col_gemm": {"gemm_gops": 100.0, "position_ns": 0.5, "output_ns": 1.0, "size": 56},
               "conv_kernel_s": 8e-6}
    profile = build_profile(load_yaml("local.yaml", profile_yaml(results)), "local.yaml")
    assert profile.stack.conv_output_ns_per_element == 0.05 and profile.stack.conv_kernel_s == pytest.approx(8e-6)
    direct, depthwise, stem = conv_graph(16, 32, 8, 3), conv_graph(16, 16, 8, 3, 16), conv_graph(3, 16, 8, 3)
    # 32 x 8 x 8 = 2,048 outputs at 0.05 ns and the conv kernel's fixed 8 us, beside the layout transposes
    # charged to the same node
    assert stack_work(direct, EIGHT, profile)["c"].added_s == pytest.approx(
        2048 * 0.05e-9 + 8e-6 + (1024 + 2048) * 0.1e-9)
    assert stack_work(depthwise, EIGHT, profile)["c"].added_s == pytest.approx(8e-6 + (1024 + 1024) * 0.1e-9)
    work = stack_work(stem, EIGHT, profile)["c"]  # im2col + GEMM: its own output cost, not the direct kernel's
    assert work.compute_s == pytest.approx(27648 / 50e9 + 576 * 0.5e-9 + 1024 * 1e-9)
    assert work.added_s == pytest.approx(8e-6 + (192 + 1024) * 0.1e-9)
    assert "c" not in stack_work(direct, lambda node: 32, profile)  # fp32 convs run MLAS's float kernels


def test_an_avx2_machine_needs_channels_in_multiples_of_8():
    # MLAS's AVX2 ConvSym dispatch aligns output channels to 8: a 20-channel conv leaves the direct kernel
    gemm = local_profile(flags=("avx2", "fma")).stack.im2col_gemm
    assert gemm.channel_multiple == 8
    g = conv_graph(16, 20, 8, 3)
    assert im2col_gemm_work(g, g.node("c"), gemm) is not None and im2col_gemm_work(g, g.node("c"), GEMM) is None


def test_an_8bit_average_pool_is_timed_per_window_element():
    g = Graph("pool")
    g.add_input("x", (1, 16, 8, 8))
    g.add_node("Conv", "c", ["x"], {"out_channels": 16, "kernel": 1})
    g.add_node("AvgPool", "p", ["c"], {"kernel": 3, "stride": 2, "pad": 1})  # 16 x 4 x 4 outputs
    g.mark_output("p")
    g = g.validate()
    profile = local_profile()
    assert profile.stack.average_pool_ns_per_tap == 2.0
    # 256 outputs x 9 window elements x 2 ns (its input comes in NHWC from the conv: no transpose; its
    # output leaves for the graph output: one transpose of 256 elements at 0.1 ns, charged to it)
    assert stack_work(g, EIGHT, profile)["p"].compute_s == pytest.approx(256 * 9 * 2e-9)
    rows = estimate_graph(g, PrecisionPlan.uniform("int8"), profile).layers.set_index("name")
    assert rows.loc["p", "compute_s"] == pytest.approx(256 * 9 * 2e-9 + 256 * 0.1e-9)
    fp32 = estimate_graph(g, PrecisionPlan.uniform("fp32"), profile).layers.set_index("name")
    assert fp32.loc["p", "compute_s"] < 256 * 9 * 2e-9 / 10  # fp32 pools keep vector-op counting


def test_an_unfolded_batchnorm_is_a_float_island_and_per_channel_mul_add_broadcast():
    """DenseNet's pre-activation BatchNorm after a Concat, and a BatchNorm written as Mul and Add."""
    g = Graph("preact")
    g.add_input("x", (1, 8, 4, 4))
    g.add_node("Conv", "a", ["x"], {"out_channels": 8, "kernel": 1})
    g.add_node("Conv", "b", ["x"], {"out_channels": 8, "kernel": 1})
    g.add_node("Concat", "cat", ["a", "b"], {"axis": 1})  # 16 x 4 x 4 = 256 elements
    g.add_node("BatchNorm", "bn", ["cat"])
    g.add_node("BatchNorm", "folded", ["a"])  # behind its conv: folded, no island
    g.add_node("MulConst", "scale", ["bn"], {"operand_shape": (16, 1, 1)})
    g.add_node("AddConst", "shift", ["scale"], {"operand_shape": (16, 1, 1)})
    g.mark_output("shift")
    g.mark_output("folded")
    g = g.validate()
    machine = Machine("Test CPU", 2, 3.0e9, frozenset({"avx512f", "avx512_vnni", "fma"}), 2**20, 32 * 2**20, 16 * 2**30)
    results = {"machine": machine, "int8_ort": 300e9, "int8_qconv": 192e9, "int8_qmatmul": 240e9, "fp32_ort": 75e9,
               "fp32_numpy": 40e9, "dram_bps": 20e9, "cache_bps": 200e9, "dispatch_s": 2e-6, "op_ns": {"LRN": 10.0},
               "transpose_ns": 0.1, "float_maxpool_ns": 0.5, "float_add_ns": (0.5, 0.75), "float_batchnorm_ns": 0.6,
               "broadcast_fit": {"MulConst": (0.3, 5.0), "AddConst": (0.2, 4.0)}, "concat_ns": 0.25}
    profile = build_profile(load_yaml("local.yaml", profile_yaml(results)), "local.yaml")
    assert profile.stack.float_islands["BatchNorm"] == 0.6
    work = stack_work(g, EIGHT, profile)
    # DequantizeLinear (256 + 1,024 bytes), BatchNormalization (1,024 + 1,024), QuantizeLinear (1,024 + 256):
    # 16 x 256 beyond the row's 2 x 256; two more kernels; 256 x 0.6 ns
    assert (work["bn"].launches, work["bn"].bytes, work["bn"].timed_bytes) == (2 + 1, 16 * 256 + 2 * 256, 0)
    assert work["bn"].compute_s == pytest.approx(256 * 0.6e-9)
    assert work["bn"].transposed == ("cat",)  # the float BatchNorm reads NCHW: the Concat's output is transposed
    assert "folded" not in work or work["folded"].compute_s is None
    # the broadcast loop: 256 elements and 16 channel planes of 4 x 4
    assert profile.stack.broadcast_ns_per_channel == {"MulConst": 5.0, "AddConst": 4.0}
    assert work["scale"].compute_s == pytest.approx(256 * 0.3e-9 + 16 * 5.0e-9)
    assert work["shift"].compute_s == pytest.approx(256 * 0.2e-9 + 16 * 4.0e-9)
    assert work["cat"].compute_s == pytest.approx(256 * 0.25e-9)  # QLinearConcat's lookup tables, per element


def test_the_broadcast_cost_per_plane_grows_with_channels_at_equal_elements():
    """1024 channels of 7 x 7 cost more than 16 of 56 x 56 at the same element count (onnxruntime's
    broadcast loop calls its vector kernel once per channel plane)."""
    machine = Machine("Test CPU", 2, 3.0e9, frozenset({"avx512f", "avx512_vnni", "fma"}), 2**20, 32 * 2**20, 16 * 2**30)
    results = {"machine": machine, "int8_ort": 300e9, "int8_qconv": 192e9, "int8_qmatmul": 240e9, "fp32_ort": 75e9,
               "fp32_numpy": 40e9, "dram_bps": 20e9, "cache_bps": 200e9, "dispatch_s": 2e-6, "op_ns": {"LRN": 10.0},
               "transpose_ns": 0.1, "float_maxpool_ns": 0.5, "float_add_ns": (0.5, 0.75),
               "broadcast_fit": {"MulConst": (0.2, 20.0), "AddConst": (0.1, 25.0)}}
    profile = build_profile(load_yaml("local.yaml", profile_yaml(results)), "local.yaml")
    seconds = {}
    for channels, size in ((16, 56), (1024, 7)):
        g = Graph("bn")
        g.add_input("x", (1, channels, size, size))
        g.add_node("MulConst", "m", ["x"], {"operand_shape": (channels, 1, 1)})
        g.mark_output("m")
        seconds[channels] = stack_work(g.validate(), EIGHT, profile)["m"].compute_s
    assert seconds[16] == pytest.approx((50176 * 0.2 + 16 * 20.0) * 1e-9)
    assert seconds[1024] == pytest.approx((50176 * 0.2 + 1024 * 20.0) * 1e-9)
