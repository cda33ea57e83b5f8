"""The software stack of a profile: the fusion pass, BatchNorm unfolding, one conv by hand, the error band."""
from __future__ import annotations

import math

import pytest

from qsim.cost import estimate_graph
from qsim.cost.stack import executed_graph, fusion_map, kernel_class
from qsim.errors import ProfileError
from qsim.hw.profile import build_profile, load_profile, resolve_profile_path
from qsim.ir import Graph
from qsim.ir.builders import build
from qsim.precision import PrecisionPlan
from qsim.report import band_columns, error_band, table_text, totals_lines
from qsim.yamlio import load_yaml


def residual_block() -> Graph:
    """x -> conv (folded BN) -> relu -> conv (folded BN) -> add(x) -> relu."""
    g = Graph("block")
    g.add_input("x", (1, 8, 6, 6))
    conv = {"out_channels": 8, "kernel": 3, "pad": 1, "folded_batchnorm": True}
    g.add_node("Conv", "c1", ["x"], conv)
    g.add_node("Relu", "r1", ["c1"])
    g.add_node("Conv", "c2", ["r1"], conv)
    g.add_node("Add", "add", ["c2", "x"])
    g.add_node("Relu", "r2", ["add"])
    g.mark_output("r2")
    return g.validate()


def test_eager_stack_runs_batchnorm_relu_and_add_as_kernels_of_their_own():
    stack = load_profile("cloud", {"stack": "pytorch-eager"}).stack
    g = executed_graph(residual_block(), stack)
    assert [n.op for n in g.nodes()] == ["Conv", "BatchNorm", "Relu", "Conv", "BatchNorm", "Add", "Relu"]
    assert g.node("add").inputs == ("c2_bn", "x") and g.outputs == ["r2"]
    assert fusion_map(g, stack).fused_into == {}


def test_fused_stack_puts_activation_and_residual_add_in_the_conv_epilogue():
    stack = load_profile("cloud", {"stack": "tensorrt"}).stack
    g = executed_graph(residual_block(), stack)  # BatchNorm stays folded: the graph is unchanged
    assert len(g) == 5
    view = fusion_map(g, stack)
    assert view.fused_into == {"r1": "c1", "add": "c2", "r2": "c2"}
    assert view.extra_read == {"add": ["x"]}  # the epilogue reads the skip operand


def test_without_a_stack_only_activations_behind_a_matrix_op_fuse():
    view = fusion_map(residual_block(), None)
    assert view.fused_into == {"r1": "c1"}


def test_an_explicit_batchnorm_folds_into_its_conv_when_the_stack_folds():
    g = Graph("conv_bn")
    g.add_input("x", (1, 4, 5, 5))
    g.add_node("Conv", "c", ["x"], {"out_channels": 4, "kernel": 1, "bias": False})
    g.add_node("BatchNorm", "bn", ["c"])
    g.mark_output("bn")
    assert fusion_map(g, load_profile("cloud", {"stack": "tensorrt"}).stack).fused_into == {"bn": "c"}
    assert fusion_map(g, load_profile("cloud", {"stack": "pytorch-eager"}).stack).fused_into == {}


def test_per_layer_table_shows_what_each_node_was_fused_into():
    est = estimate_graph(residual_block(), PrecisionPlan.uniform("fp16"), load_profile("cloud", {"stack": "tensorrt"}))
    assert list(est.layers.fused_into) == ["", "c1", "", "c2", "c2"]
    assert list(est.layers.launches) == [1, 0, 1, 0, 0]
    assert "fused_into" in table_text(est.layers)


def test_resnet18_under_eager_pytorch_launches_bn_relu_add_kernels():
    graph = build("resnet18", batch=1)
    eager = estimate_graph(graph, PrecisionPlan.uniform("fp16"), load_profile("cloud", {"stack": "pytorch-eager"}))
    fused = estimate_graph(graph, PrecisionPlan.uniform("fp16"), load_profile("cloud", {"stack": "tensorrt"}))
    # 20 convs + their 20 BatchNorms + 17 ReLUs + 8 Adds + max pool, avg pool, Flatten, fc (a view moves
    # no bytes but is dispatched like any op)
    assert eager.totals["kernels"] == 20 + 20 + 17 + 8 + 4
    assert fused.totals["kernels"] == 20 + 4
    assert eager.totals["latency_s"] > fused.totals["latency_s"]


def test_kernel_classes_of_resnet18_convs():
    g = build("resnet18", batch=1)
    classes = {n.name: kernel_class(g, n) for n in g.nodes()}
    assert classes["stem"] == "conv_stem" and classes["layer1_0_conv1"] == "conv3x3"
    assert classes["layer2_0_down"] == "conv1x1" and classes["fc"] == "gemm" and classes["flatten"] == "view"
    dw = build("mobilenet_v2", batch=1)
    assert kernel_class(dw, dw.node("b1_dw")) == "depthwise"


def _conv(cin: int, cout: int, kernel: int, groups: int, batch: int = 1, size: int = 56) -> Graph:
    g = Graph("conv")
    g.add_input("x", (batch, cin, size, size))
    g.add_node("Conv", "conv", ["x"], {"out_channels": cout, "kernel": kernel, "pad": kernel // 2, "groups": groups,
                                       "bias": False})
    g.mark_output("conv")
    return g


@pytest.mark.parametrize("cin, cout, kernel, groups, cls", [
    (240, 240, 1, 4, "conv1x1"),  # ShuffleNet's 4-group pointwise conv: 60 channels per group
    (96, 256, 5, 2, "conv_other"),  # AlexNet's 2-group 5x5: 48 channels per group
    (128, 128, 3, 32, "conv_stem"),  # ResNeXt's 32x4d 3x3: 4 channels per group, a stem's short reduction
    (256, 256, 3, 32, "conv3x3"),  # 8 channels per group
    (32, 32, 3, 32, "depthwise"),  # one channel per group
    (32, 64, 3, 32, "depthwise"),  # one channel per group, channel multiplier 2
])
def test_a_grouped_conv_has_the_class_of_one_groups_dense_conv(cin, cout, kernel, groups, cls):
    g = _conv(cin, cout, kernel, groups)
    assert kernel_class(g, g.node("conv")) == cls


def test_grouped_conv_estimate_by_hand_as_dense_convs_per_group():
    """n32 c128 56x56 -> 128, 3x3, 2 groups of 64 channels, fp16, a lone kernel on the eager stack: the
    conv3x3 efficiency (each group's GEMM has 64 output columns, half a 128-wide tile) and the full
    copy bandwidth, not the depthwise kernels' fraction."""
    profile = load_profile("cloud", {"stack": "pytorch-eager", "stacks.pytorch-eager.host_us_per_kernel": 0})
    row = estimate_graph(_conv(128, 128, 3, 2, batch=32), PrecisionPlan.uniform("fp16"), profile).layers.iloc[0]
    macs = 32 * 56 * 56 * 128 * 64 * 9
    # GEMM view 100352 x 128 (qsim.ir.ops.conv): every tile gives 6 waves of 132 128x128 tiles' work
    waves = 6 * 132 * 128 * 128 / (100352 * 128)
    compute = macs * waves / (270336 * 0.3309 * 1980e6)  # fp16 peak x conv3x3 efficiency x clock
    memory = 2 * (32 * 128 * 56 * 56 * 2) / 3007.8e9 + 128 * 64 * 9 * 2 / 3007.8e9  # fp16 in + out + weights
    assert row.kernel_class == "conv3x3" and row.bound == "compute"
    assert row.memory_s == pytest.approx(memory, rel=1e-12)  # at the whole copy bandwidth
    assert row.latency_s == pytest.approx(4.56e-6 + compute, rel=1e-12)  # launch + compute (> the 13.49 us floor)


def test_one_conv_estimate_by_hand_from_the_profile_numbers():
    """n32 c64 56x56 -> 64, 3x3, fp16, a lone kernel on the eager stack (host queue ahead)."""
    g = Graph("conv")
    g.add_input("x", (32, 64, 56, 56))
    g.add_node("Conv", "conv", ["x"], {"out_channels": 64, "kernel": 3, "pad": 1, "bias": False})
    g.mark_output("conv")
    profile = load_profile("cloud", {"stack": "pytorch-eager", "stacks.pytorch-eager.host_us_per_kernel": 0})
    row = estimate_graph(g, PrecisionPlan.uniform("fp16"), profile).layers.iloc[0]
    macs = 32 * 64 * 56 * 56 * 64 * 9
    # GEMM view 100352 x 64: best tile 128x64 -> 784 tiles in ceil(784 / 132) = 6 waves over 132 SMs
    waves = 6 * 132 * 128 * 64 / (100352 * 64)
    compute = macs * waves / (270336 * 0.3309 * 1980e6)  # fp16 peak x conv3x3 efficiency x clock
    assert row.kernel_class == "conv3x3" and row.bound == "compute"
    assert row.latency_s == pytest.approx(4.56e-6 + compute, rel=1e-12)  # launch (the stack's) + compute
    assert row.latency_s == pytest.approx(0.02565e-3, rel=0.04)  # the calibration row it was read from


def test_error_band_text_json_and_sweep_columns():
    iot = load_profile("iot")
    lines = totals_lines("w", iot, "int8", estimate_graph(build("mlperf_tiny_ic"), PrecisionPlan.uniform("int8"),
                                                          iot).totals)
    assert ", held-out error on this profile: median 7 %, worst 8 %" in lines[2]
    assert error_band(iot)["held_out_worst_pct"] == 8
    assert band_columns(iot) == {"stack": "tflm-cmsis-nn", "error_median_pct": 7, "error_worst_pct": 8,
                                 "error_band_covers": None}  # no estimate given: coverage not known
    mobile = load_profile("mobile")
    assert error_band(mobile)["text"] == ("no validation recorded for profile 'mobile' with stack "
                                          "'nnapi-npu-delegate': error unknown")
    assert math.isnan(band_columns(mobile)["error_worst_pct"])
    data = load_yaml(resolve_profile_path("systolic"))
    del data["stack"], data["stacks"]  # a user's profile without a stack section
    assert error_band(build_profile(data, "systolic.yaml"))["text"] == (
        "no validation recorded for profile 'systolic': error unknown")


def test_a_stack_that_is_not_listed_is_an_error_naming_the_line():
    data = load_yaml(resolve_profile_path("cloud"))
    data["stack"] = "tvm"
    with pytest.raises(ProfileError, match=r"stack: 'tvm' is not listed under stacks \(listed: pytorch-eager, "):
        build_profile(data, "cloud.yaml")


def test_a_band_whose_median_is_above_its_worst_is_an_error_naming_the_line():
    data = load_yaml(resolve_profile_path("iot"))
    data["stacks"]["tflm-cmsis-nn"]["validation"]["held_out_worst_pct"] = 3
    with pytest.raises(ProfileError, match=r"iot.yaml:\d+: stacks.tflm-cmsis-nn.validation.held_out_median_pct: "
                                           r"7 is above held_out_worst_pct 3"):
        build_profile(data, "iot.yaml")


def test_l2_residency_reads_back_what_the_last_kernels_wrote_while_it_fits():
    g = Graph("chain")
    g.add_input("x", (1, 1024))  # 2 KiB at fp16
    g.add_node("Relu", "r1", ["x"])
    g.add_node("Relu", "r2", ["r1"])
    g.add_node("Add", "add", ["r2", "r1"])
    g.mark_output("add")
    profile = load_profile("cloud", {"stack": "pytorch-eager", "stacks.pytorch-eager.l2_residency": True,
                                     "memories.l2.capacity_kib": 4})
    layers = estimate_graph(g, PrecisionPlan.uniform("fp16"), profile).layers.set_index("name")
    # r2 reads r1 (2 KiB written, + its own 2 KiB output = 4 KiB: fits); add reads r2 (fits) but not
    # r1 (r1, r2 and add's output = 6 KiB were written since r1 was produced)
    assert layers.loc["r1", "hbm_bytes"] == 2048 + 2048  # x from HBM, r1 written
    assert layers.loc["r2", "hbm_bytes"] == 2048  # only its output goes to HBM
    assert layers.loc["add", "hbm_bytes"] == 2048 + 2048  # r1 read again from HBM, output written


def test_attention_and_cast_kernels_by_hand():
    from qsim.cost.stack import extra_kernels

    g = Graph("attn")
    g.add_input("x", (1, 128, 768))
    g.add_node("Attention", "att", ["x"], {"heads": 12, "bias": True})
    g.mark_output("att")
    node = g.node("att")
    # a fused engine (no transformer lowering): one QKV GEMM, one attention kernel, one output GEMM
    cast = load_profile("cloud", {"stack": "tensorrt", "stacks.tensorrt.quantize": "separate"}).stack
    unfused = load_profile("cloud", {"stack": "tensorrt", "stacks.tensorrt.attention": "unfused"}).stack
    trt = load_profile("cloud", {"stack": "tensorrt"}).stack
    assert extra_kernels(g, node, trt, 16) == (2, 0)  # QKV projection, flash kernel, output projection
    # scores 1 x 12 x 128 x 128 at 2 bytes: written, read and written by softmax, read again
    assert extra_kernels(g, node, unfused, 16) == (6, 4 * 12 * 128 * 128 * 2)
    # fp8 activations cast (static scale) in a kernel of its own: read 16-bit, write 8-bit
    assert extra_kernels(g, node, cast, 8) == (2 + 1, 128 * 768 * (2 + 1))
    assert extra_kernels(g, node, trt, 8) == (2, 0)  # quantize in the GEMM epilogue


def test_lone_op_minimum_is_paid_by_eager_lone_ops_not_inside_a_graph():
    g = Graph("dw")
    g.add_input("x", (1, 144, 56, 56))
    g.add_node("Conv", "dw", ["x"], {"out_channels": 144, "kernel": 3, "pad": 1, "groups": 144, "bias": False})
    g.mark_output("dw")
    lone = load_profile("cloud", {"stack": "pytorch-eager", "stacks.pytorch-eager.host_us_per_kernel": 0})
    row = estimate_graph(g, PrecisionPlan.uniform("fp16"), lone).layers.iloc[0]
    assert row.latency_s == pytest.approx(13.49e-6)  # conv_min_latency_us, whatever the precision
    graph = load_profile("cloud", {"stack": "pytorch-cudagraph"})
    row = estimate_graph(g, PrecisionPlan.uniform("fp16"), graph).layers.iloc[0]
    # replayed from a graph: launch + bytes at the depthwise fraction of the copy bandwidth
    moved = (144 * 56 * 56 * 2 + 144 * 9) * 2
    assert row.latency_s == pytest.approx(4.56e-6 + moved / (3007.8e9 * 0.6434))
    gemm = Graph("gemm")
    gemm.add_input("a", (256, 256))
    gemm.add_node("Gemm", "mm", ["a"], {"out_features": 256, "bias": False})
    gemm.mark_output("mm")
    assert estimate_graph(gemm, PrecisionPlan.uniform("fp16"), lone).totals["latency_s"] == pytest.approx(13.87e-6)
    assert estimate_graph(gemm, PrecisionPlan.uniform("fp16"), graph).totals["latency_s"] < 8e-6


def test_json_layers_list_the_kernels_a_stack_adds_beside_a_nodes_own():
    from qsim.report import report_dict

    profile = load_profile("cloud", {"stack": "pytorch-cudagraph"})  # quantize: separate, dynamic scaling
    est = estimate_graph(build("resnet18", batch=1), PrecisionPlan.uniform("int8"), profile)
    stem = report_dict("resnet18", "cloud", "int8", est.layers, est.totals, profile)["layers"][0]
    assert (stem["name"], stem["launches"], stem["stack_kernels"]) == ("stem", 4, "amax scale cast")
