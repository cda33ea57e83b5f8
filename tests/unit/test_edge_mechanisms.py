"""The edge stacks' mechanisms by hand: Vela's MAC-array micro-blocks, cascades, TFLite's ADD with a
fused activation, an in-order microcontroller's load stalls and its matrix-vector kernel."""
from __future__ import annotations

from dataclasses import replace

import pytest

from qsim.cost import estimate_graph
from qsim.cost.npu_array import utilisation
from qsim.cost.npu_blocks import DEPTHWISE, VECTOR, BlockConfig, LayerShape, find_block_config, layer_cycles
from qsim.cost.stack import fusion_map
from qsim.errors import ProfileError
from qsim.hw.profile import load_profile, resolve_profile_path
from qsim.ir import Graph
from qsim.precision import PrecisionPlan

INT8 = PrecisionPlan.uniform("int8")


def conv_graph(cin: int, cout: int, size: int, kernel: int, groups: int = 1) -> Graph:
    g = Graph("conv")
    g.add_input("x", (1, cin, size, size))
    g.add_node("Conv", "c", ["x"], {"out_channels": cout, "kernel": kernel, "pad": kernel // 2, "groups": groups})
    g.mark_output("c")
    return g.validate()


def fc_graph(batch: int, cin: int, cout: int) -> Graph:
    g = Graph("fc")
    g.add_input("x", (batch, cin))
    g.add_node("Gemm", "fc", ["x"], {"out_features": cout})
    g.mark_output("fc")
    return g.validate()


def _array(blocks: bool):
    array = load_profile("imx93").stack.mac_array
    return replace(array, shared_buffer=replace(array.shared_buffer, schedule_in_blocks=blocks))


def _blocked(layer: LayerShape) -> tuple[BlockConfig, int]:
    """(Vela's block config, the layer's cycles) on the MAC array that schedules in blocks."""
    array = _array(blocks=True)
    return find_block_config(layer, array), layer_cycles(layer, array)


def test_ethos_u_micro_blocks_by_hand():
    array = _array(blocks=False)  # the whole output as one block
    assert array.ofm_ublock == (2, 2, 8) and array.ifm_block_depth == 32
    # 16 -> 16 channels, 3x3, 32x32: part-kernel-first (16*9 / (16*12) = 0.75 beats depth-first 16/32):
    # 256 micro-blocks x 4 cycles, ceil(9/4) = 3 steps, 16/8 = 2 channel passes, 2 micro-block depths
    g = conv_graph(16, 16, 32, 3)
    macs = 16 * 16 * 9 * 32 * 32
    assert utilisation(g, g.node("c"), macs, 256, array) == pytest.approx(macs / (1024 * 3 * 2 * 2 * 256))
    # 64 -> 64 channels, 1x1, 8x8: depth-first, 2 IFM passes of 32, 16 micro-blocks x 4 = 64 cycles: full
    g = conv_graph(64, 64, 8, 1)
    assert utilisation(g, g.node("c"), 64 * 64 * 64, 256, array) == 1.0
    # depthwise 3x3 over 8 channels at 8x8: 64 cycles per step, 3 steps, one micro-block depth
    g = conv_graph(8, 8, 8, 3, groups=8)
    assert utilisation(g, g.node("c"), 8 * 64 * 9, 256, array) == pytest.approx(8 * 64 * 9 / (192 * 256))
    # a fully-connected layer has one output pixel: the 32-cycle weight fetch per step bounds it,
    # 8 output channels x 32 inputs per 32 cycles = 8 MACs per cycle
    g = fc_graph(1, 256, 8)
    assert utilisation(g, g.node("fc"), 256 * 8, 256, array) == pytest.approx(8 / 256)


def test_vela_block_config_and_cycles_of_a_small_conv_by_hand():
    array = _array(blocks=True)
    # 16 -> 16 channels, 3x3, 8x8: part-kernel-first, IFM blocks of 16 channels. Every block fits the
    # 48-bank SHRAM (8x8x16: IFM 10x10x16 = 1600 B -> 2 x 2 banks -> 8; accumulators 8x8x16x4 B -> 8 -> 16;
    # 2 + 8 <= 46 - 16); the whole OFM in one block fetches the weights once: cost (9*16*16 + 10*10*16) /
    # 1024 halved (the IFM fits twice) = 1.906, against 3.08 for 8x6.
    config, cycles = _blocked(LayerShape((8, 8, 16), (8, 8, 16), (3, 3)))
    assert config == BlockConfig((8, 8, 16), (10, 10, 16), True)
    # MAC array per block: 16 micro-blocks x 4 = 64 cycles per step (> 32 weight fetch), ceil(9/4) = 3 steps,
    # 16/8 = 2 channel groups, 2 micro-block depths: 768. Output stage 0.25 x 1024 = 256. Command: (32 + 1024/16
    # + 32 + 1024/16 + 256 + 768) / 4 = 304. One block: 768 + max(256, 304) as the drain = 1072.
    assert cycles == 1072
    g = conv_graph(16, 16, 8, 3)
    macs = 16 * 16 * 9 * 64
    assert utilisation(g, g.node("c"), macs, 256, array) == pytest.approx(macs / (1072 * 256))


def test_vela_block_that_fits_the_shared_buffer_by_hand():
    # 16 -> 16, 3x3 at 32x32: 16x16 does not fit (accumulators 16 KiB -> 32 banks, IFM 18x18x16 -> 16 banks:
    # 2 + 16 > 46 - 32); 12x16 does (accumulators 24 -> 32 banks, IFM 14x18x16 = 4032 B -> 8: 2 + 8 <= 14) and
    # fetches less per output than 8x16: (3*2 weight fetches of 2304 + 14*18*16 x 5.33) vs (8 x 2304 + 10*18*16 x 8).
    config, cycles = _blocked(LayerShape((32, 32, 16), (32, 32, 16), (3, 3)))
    assert config.ofm == (12, 16, 16)
    # per block: 6x8 micro-blocks x 4 = 192 cycles per step, 3 steps x 2 x 2 = 2304; 3 x 2 blocks (the last
    # row of blocks only 8 rows full: Vela charges whole blocks); command (32 + 4032/16 + 32 + 3072/16 + 768
    # + 2304) / 4 = 895 > the output stage's 768: 2304 x 6 + 895
    assert cycles == 2304 * 6 + 895


def test_vela_depthwise_and_fully_connected_blocks_by_hand():
    array = _array(blocks=True)
    # depthwise 3x3 over 8 channels at 8x8: one 8x8x8 block (cost (9*8 + 10*10*8) / 512, halved, beats 8x6);
    # 16 micro-blocks x 4 = 64 cycles per step, ceil(9/4) = 3 steps: 192; output 0.25 x 512 = 128 > the
    # command (32 + 512/16 + 32 + 512/16 + 128 + 192) / 4 = 112: 192 + 128
    config, cycles = _blocked(LayerShape((8, 8, 8), (8, 8, 8), (3, 3), kind=DEPTHWISE))
    assert config.ofm == (8, 8, 8) and cycles == 192 + 128
    # fully connected 256 -> 8 (Vela's VectorProduct): one output pixel, one micro-block: the 32-cycle
    # weight fetch + the pipeline delay of 2 per step, 256/32 = 8 IFM passes: 272; the output stage's
    # 2 cycles give way to the scale / bias fetch, 10 x 8 x 32 / 256 = 10; command (32 + 32/16 + 32 +
    # 8/16 + 10 + 272) / 4 = 87.125: 272 + 87.125, truncated
    config, cycles = _blocked(LayerShape((1, 1, 8), (1, 1, 256), (1, 1), kind=VECTOR))
    assert config == BlockConfig((2, 2, 8), (2, 2, 32), False) and cycles == 359
    g = fc_graph(1, 256, 8)
    assert utilisation(g, g.node("fc"), 256 * 8, 256, array) == pytest.approx(256 * 8 / (359 * 256))


def test_vela_prefers_blocks_whose_ifm_fits_twice_and_an_output_bound_layer_by_hand():
    # 8 -> 32 channels, 1x1 at 12x12: at depth 32, 12x12 does not fit (accumulators 18 KiB -> 48 banks);
    # 6x12, 8x12 and 10x12 fetch alike (2 x 8 x 32 weights + 1152 IFM bytes per 4608 outputs), but Vela
    # halves the cost where the 12x12x8 IFM is under twice the IFM block: 8x12 (768 B) is the first so
    # favoured (6x12's 576 B is not), and equal costs move only for blocks of at most 4x4
    config, cycles = _blocked(LayerShape((12, 12, 32), (12, 12, 8), (1, 1)))
    assert config.ofm == (8, 12, 32)
    # per block: 4x6 micro-blocks x 4 = 96 cycles per step, one step, 4 micro-block depths: 384; the
    # output stage's 0.25 x 3072 = 768 is the longer stage, over 2 blocks, then the array drains: 768 x 2 + 384
    assert cycles == 768 * 2 + 384


def test_a_shared_buffer_with_a_wrong_block_limit_is_an_error_naming_the_key():
    key = "stacks.vela-ethos-u.mac_array.shared_buffer"
    with pytest.raises(ProfileError, match=rf"{key}\.ofm_block_max.*expected 3 items"):
        load_profile("imx93", {f"{key}.ofm_block_max": [32, 64]})
    with pytest.raises(ProfileError, match=rf"{key}\.banks: must be >= 1"):
        load_profile("imx93", {f"{key}.banks": 0})


def test_block_schedule_off_keeps_the_whole_output_micro_block_count():
    g = conv_graph(16, 16, 32, 3)
    macs = 16 * 16 * 9 * 32 * 32
    assert utilisation(g, g.node("c"), macs, 256, _array(blocks=False)) == pytest.approx(0.75)
    assert utilisation(g, g.node("c"), macs, 256, _array(blocks=True)) == pytest.approx(macs / (14719 * 256))


@pytest.mark.parametrize("blocks, cycles", [(False, 12288), (True, 14719)])
def test_utilisation_slows_the_layer_against_the_fitted_efficiency(blocks, cycles):
    profile = load_profile("imx93", {"stacks.vela-ethos-u.mac_array.shared_buffer.schedule_in_blocks": blocks})
    g = conv_graph(16, 16, 32, 3)
    row = estimate_graph(g, INT8, profile).layers.set_index("name").loc["c"]
    # the layer's array cycles (above, by hand) at the fitted efficiency, 1 GHz
    assert row.compute_s == pytest.approx(cycles / (profile.compute.efficiency["int8"] * 1e9))


def residual_tail() -> Graph:
    g = Graph("tail")
    g.add_input("x", (1, 8, 6, 6))
    g.add_node("Conv", "c", ["x"], {"out_channels": 8, "kernel": 3, "pad": 1})
    g.add_node("Relu", "r", ["c"])
    g.add_node("Add", "add", ["r", "x"])
    g.add_node("Relu", "out", ["add"])
    g.mark_output("out")
    return g.validate()


def test_tflite_stacks_run_the_relu_after_an_add_inside_the_add():
    g = residual_tail()
    assert fusion_map(g, load_profile("iot").stack).fused_into == {"r": "c", "out": "add"}
    # a stack without the key keeps it a kernel of its own
    assert "out" not in fusion_map(g, load_profile("mobile").stack).fused_into
    layers = estimate_graph(g, INT8, load_profile("iot")).layers.set_index("name")
    assert layers.loc["out", "launches"] == 0 and layers.loc["out", "input_bytes"] == 0


def test_cascading_keeps_single_consumer_activations_out_of_dram():
    profile = load_profile("imx93")
    g = Graph("chain")
    g.add_input("x", (1, 64, 56, 56))  # 196 KiB: more than half the 384 KiB SRAM cache
    g.add_node("Conv", "c1", ["x"], {"out_channels": 64, "kernel": 1})
    g.add_node("Conv", "c2", ["c1"], {"out_channels": 64, "kernel": 1})
    g.add_node("Add", "add", ["c2", "x"])
    g.mark_output("add")
    g.validate()
    layers = estimate_graph(g, INT8, profile).layers.set_index("name")
    weights = 64 * 64 + 64 * 4  # int8 weights and int32 bias from DRAM
    act = 64 * 56 * 56
    assert layers.loc["c1", "dram_bytes"] == weights + act  # reads x (graph input); c1 stays in SRAM
    assert layers.loc["c2", "dram_bytes"] == weights  # c1 in, c2 out: both in the cascade
    assert layers.loc["add", "dram_bytes"] == 2 * act  # x again (graph input), its output (graph output)
    off = load_profile("imx93", {"stacks.vela-ethos-u.cascading": False})
    assert estimate_graph(g, INT8, off).layers.set_index("name").loc["c2", "dram_bytes"] == weights + 2 * act


def test_an_in_order_core_adds_memory_time_to_compute_time():
    iot = load_profile("iot")
    row = estimate_graph(fc_graph(1, 640, 128), INT8, iot).layers.set_index("name").loc["fc"]
    assert row.latency_s == pytest.approx(iot.dispatch_s + row.compute_s + row.memory_s)
    overlapped = load_profile("iot", {"stacks.tflm-cmsis-nn.memory_overlaps_compute": True})
    row2 = estimate_graph(fc_graph(1, 640, 128), INT8, overlapped).layers.set_index("name").loc["fc"]
    assert row2.latency_s == pytest.approx(iot.dispatch_s + max(row2.compute_s, row2.memory_s))


def test_batch_one_fully_connected_runs_at_the_matrix_vector_efficiency():
    iot = load_profile("iot")
    mv = iot.stack.matrix_vector_efficiency["int8"]
    assert mv == pytest.approx(iot.compute.efficiency["int8"] * 0.692, rel=1e-3)
    one = estimate_graph(fc_graph(1, 640, 128), INT8, iot).layers.set_index("name").loc["fc"]
    assert one.compute_s == pytest.approx(640 * 128 / (2 * mv * 480e6) + 128 / 480e6)  # MACs + output ops
    four = estimate_graph(fc_graph(4, 640, 128), INT8, iot).layers.set_index("name").loc["fc"]
    eff = iot.compute.efficiency["int8"]
    assert four.compute_s == pytest.approx(4 * 640 * 128 / (2 * eff * 480e6) + 4 * 128 / 480e6)


def test_a_mac_array_with_a_wrong_micro_block_is_an_error_naming_the_key(tmp_path):
    with pytest.raises(ProfileError, match=r"stacks\.vela-ethos-u\.mac_array\.ofm_ublock.*expected 3 items"):
        load_profile("imx93", {"stacks.vela-ethos-u.mac_array.ofm_ublock": [2, 8]})
    text = resolve_profile_path("imx93").read_text().replace("      ifm_block_depth:", "      block_depth:")
    (tmp_path / "npu.yaml").write_text(text)
    with pytest.raises(ProfileError) as err:
        load_profile(tmp_path / "npu.yaml")
    line = 1 + text.splitlines().index(next(ln for ln in text.splitlines() if ln.startswith("      block_depth:")))
    assert f"npu.yaml:{line}: stacks.vela-ethos-u.mac_array.block_depth: unknown key" in str(err.value)
    assert "stacks.vela-ethos-u.mac_array.ifm_block_depth: missing required key" in str(err.value)
