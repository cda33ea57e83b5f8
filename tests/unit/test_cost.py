"""Cost model: hand-checked counts, bytes, times and energies on a toy profile; liveness; fits."""
import pytest

import qsim
from qsim.cost import estimate_graph, peak_activation_bytes
from qsim.errors import QsimError
from qsim.hw.profile import build_profile
from qsim.ir import Graph
from qsim.precision import PrecisionPlan, parse_plan

TOY = {
    "name": "toy", "kind": "npu", "clock_mhz": 1000,
    "compute": {"macs_per_cycle": {"int8": 100, "fp32": 10}, "efficiency": {"int8": 0.5, "fp32": 1.0},
                "vector_ops_per_cycle": 10, "accumulator_bits": 32},
    "memories": {
        "sram": {"capacity_kib": 1, "bandwidth_gbps": 10, "read_pj_per_byte": 2, "write_pj_per_byte": 2,
                 "on_chip": True},
        "dram": {"capacity_kib": 1024, "bandwidth_gbps": 0.5, "read_pj_per_byte": 20, "write_pj_per_byte": 20,
                 "on_chip": False}},
    "placement": {"weights": "dram", "activations": "dram", "buffer": "sram"},
    "energy": {"mac_pj": {"int8": 0.3, "fp32": 4.6}, "vector_op_pj": 0.1, "static_mw": 1},
    "dispatch_overhead_us": 1,
}


def _gemm_graph():
    g = Graph("g")
    g.add_input("x", (64, 64))
    g.add_node("Gemm", "fc", ["x"], {"out_features": 32})
    g.mark_output("fc")
    return g


def test_hand_checked_gemm_with_refetch():
    row = estimate_graph(_gemm_graph(), PrecisionPlan.uniform("int8"), build_profile(TOY)).layers.iloc[0]
    assert row.macs == 64 * 64 * 32
    assert row.vector_ops == 64 * 32                       # bias adds
    assert row.weight_bytes == 32 * 64 + 32 * 4            # int8 weights + int32 bias = 2176
    assert row.input_bytes == 4096 and row.output_bytes == 2048
    # working set 8320 B > 1 KiB buffer: halves of 512 B. Weights resident: inputs re-read
    # ceil(2176/512)=5 times -> 2176 + 5*4096 = 22656 B; inputs resident: weights re-read
    # ceil(4096/512)=8 times -> 8*2176 + 4096 = 21504 B (cheaper, chosen).
    assert row.dram_bytes == 8 * 2176 + 4096 + 2048
    assert row.sram_bytes == 2 * (8 * 2176 + 4096 + 2048)  # staged: written in and read out
    compute = 131072 / (100 * 0.5 * 1e9) + 2048 / (10 * 1e9)
    memory = (8 * 2176 + 4096 + 2048) / 0.5e9               # 47.104 us: DRAM-bound
    assert row.compute_s == pytest.approx(compute)
    assert row.memory_s == pytest.approx(memory)
    assert row.bound == "memory" and row.bound_level == "dram"
    assert row.latency_s == pytest.approx(1e-6 + memory)
    energy_pj = (131072 * 0.3 + 2048 * 0.1 + (21504 + 2048) * 20 + 2 * 23552 * 2
                 + 1e-3 * (1e-6 + memory) * 1e12)
    assert row.energy_j == pytest.approx(energy_pj * 1e-12)


def test_int4_weights_are_packed_two_per_byte():
    prof = build_profile(TOY)
    df = estimate_graph(_gemm_graph(), parse_plan("w4a8"), prof).layers
    assert df.weight_bytes[0] == 32 * 64 // 2 + 32 * 4
    assert df.compute_unit[0] == "int8" and not df.emulated[0]


def test_missing_unit_is_emulated_and_flagged_or_refused():
    prof = build_profile(TOY)
    df = estimate_graph(_gemm_graph(), parse_plan("fp16"), prof).layers
    assert df.compute_unit[0] == "fp32" and df.emulated[0]
    assert df.weight_bytes[0] == 32 * 64 * 2 + 32 * 2      # stored at fp16 all the same
    no_float = dict(TOY, compute=dict(TOY["compute"], macs_per_cycle={"int8": 100}, efficiency={"int8": 0.5}),
                    energy=dict(TOY["energy"], mac_pj={"int8": 0.3}))
    with pytest.raises(QsimError, match="profile 'toy' has no unit for fp16 and none that can emulate it"):
        estimate_graph(_gemm_graph(), parse_plan("fp16"), build_profile(no_float))


def test_liveness_peak_hand_checked():
    # x(10) -> a = fc(50) -> b = relu(a) -> c = fc(b, 10); d = fc(a, 10); out = c + d   (int8: 1 B/elem)
    g = Graph("diamond")
    g.add_input("x", (1, 10))
    g.add_node("Gemm", "a", ["x"], {"out_features": 50})
    g.add_node("Relu", "b", ["a"])
    g.add_node("Gemm", "c", ["b"], {"out_features": 10})
    g.add_node("Gemm", "d", ["a"], {"out_features": 10})
    g.add_node("Add", "out", ["c", "d"])
    g.mark_output("out")
    # a: x+a = 60 (x freed -> 50); b: a+b = 100; c: a+b+c = 110 (b freed -> 60); d: 70; out: 30
    assert peak_activation_bytes(g, PrecisionPlan.uniform("int8")) == (110, "c")
    assert peak_activation_bytes(g, PrecisionPlan.uniform("fp32")) == (440, "c")


def test_relu_after_conv_is_fused():
    df = qsim.estimate("mlperf_tiny_ic", "iot")
    relu = df[df.name == "stem_relu"].iloc[0]
    assert relu.fused and relu.input_bytes == 0 and relu.latency_s < df[df.name == "stem"].latency_s.iloc[0]


def test_resnet50_does_not_fit_iot_but_mlperf_tiny_does():
    t = qsim.estimate("workloads/resnet50.yaml", "hw_profiles/iot.yaml").attrs["totals"]
    assert 25.5e6 <= t["weight_bytes"] <= 25.7e6            # int8 weights + int32 biases, ~25.6 MB
    assert not t["fits"]["flash"]
    for name in ("mlperf_tiny_kws", "mlperf_tiny_vww", "mlperf_tiny_ic", "mlperf_tiny_ad"):
        t = qsim.estimate(name, "iot").attrs["totals"]
        assert t["fits"]["flash"] and t["fits"]["sram"], name


def test_precision_overrides_by_name_and_op():
    plan = parse_plan({"default": "int8", "overrides": [{"op": "Gemm", "precision": "fp32"},
                                                        {"name": "stem", "precision": "w4a8"}]})
    df = qsim.estimate("mlperf_tiny_ic", "iot", precision=plan)
    by = df.set_index("name")
    assert by.loc["fc", "weight_format"] == "fp32" and by.loc["fc", "compute_unit"] == "fp32"
    assert by.loc["stem", "weight_format"] == "int4"
    assert by.loc["stack1_conv1", "weight_format"] == "int8"


def test_kv_cache_traffic_grows_with_context():
    short = qsim.estimate("llama7b_decode", "cloud").attrs["totals"]
    from qsim.ir.builders import build
    long_graph = build("llama", seq=1, context=4095)
    long = qsim.estimate(long_graph, "cloud", precision="w4a16").attrs["totals"]
    # KV cache: 32 layers x K,V x 32 heads x 128 x positions x 2 bytes (fp16)
    assert short["state_bytes"] == 32 * 2 * 32 * 128 * 1024 * 2
    assert long["state_bytes"] == 32 * 2 * 32 * 128 * 4096 * 2
    assert long["latency_s"] > short["latency_s"]


def test_systolic_profile_uses_the_dataflow_model():
    from qsim.cost.systolic import SystolicArray, systolic_gemm
    from qsim.hw.profile import load_profile

    g = _gemm_graph()  # 64 x 32 outputs, K = 64
    prof = load_profile("systolic")
    row = estimate_graph(g, PrecisionPlan.uniform("int8"), prof).layers.iloc[0]
    big = 1 << 20
    cycles = systolic_gemm(64, 32, 64, array=SystolicArray(256, 256, "ws", big, big, big, 1e12)).total_cycles
    # ws on 256x256: 2R + C + T - 2 = 512 + 256 + 64 - 2 = 830 cycles for the single fold
    assert cycles == 830
    assert row.compute_s == pytest.approx(830 / 700e6 + 64 * 32 / (256 * 700e6))
    small = load_profile("systolic", {"systolic.rows": 32, "systolic.cols": 32})
    row32 = estimate_graph(g, PrecisionPlan.uniform("int8"), small).layers.iloc[0]
    # 32x32 ws: K=64 -> 2 row folds, N=32 -> 1 col fold, each 2*32 + 32 + 64 - 2 = 158 cycles
    assert row32.compute_s == pytest.approx(2 * 158 / 700e6 + 64 * 32 / (256 * 700e6))


def test_npu_output_stage_overlaps_and_invoke_overhead_counts_once():
    overlap = dict(TOY, compute=dict(TOY["compute"], vector_overlaps_matrix=True), invoke_overhead_us=50)
    g = _gemm_graph()
    row = estimate_graph(g, PrecisionPlan.uniform("int8"), build_profile(overlap)).layers.iloc[0]
    # max(131072 MACs / 50 per ns, 2048 bias adds / 10 per ns) instead of the sum
    assert row.compute_s == pytest.approx(131072 / (100 * 0.5 * 1e9))
    est = estimate_graph(g, PrecisionPlan.uniform("int8"), build_profile(overlap))
    assert est.totals["latency_s"] == pytest.approx(est.layers.latency_s.sum() + 50e-6)


def test_views_move_no_bytes_and_measured_ops_replace_vector_counting():
    g = Graph("v")
    g.add_input("x", (1, 8, 4, 4))
    g.add_node("Flatten", "f", ["x"])
    g.add_node("Softmax", "s", ["f"])
    g.mark_output("s")
    timed = dict(TOY, op_ns_per_element={"Softmax": 4.0})
    df = estimate_graph(g, PrecisionPlan.uniform("fp32"), build_profile(timed)).layers.set_index("name")
    assert df.loc["f", "input_bytes"] == 0 and df.loc["f", "dram_bytes"] == 0
    assert df.loc["s", "compute_s"] == pytest.approx(128 * 4e-9)  # 128 outputs x 4 ns, not 5 ops each
    with pytest.raises(Exception, match=r"op_ns_per_element.Lrn: unknown op; known: .*LRN"):
        build_profile(dict(TOY, op_ns_per_element={"Lrn": 1.0}))


def test_a_slice_or_gather_reads_only_what_it_copies():
    """A Slice keeping 16 of 64 channels of an int8 (1, 64, 8, 8) tensor reads 16 x 64 bytes, not the
    whole input; a Gather of 3 channels (one repeated) reads 3 x 64."""
    g = Graph("g")
    g.add_input("x", (1, 64, 8, 8))
    g.add_node("Slice", "keep", ["x"], {"starts": (8,), "ends": (24,), "axes": (1,), "steps": (1,)})
    g.add_node("Gather", "pick", ["x"], {"axis": 1, "indices": (5, 0, 5), "index_shape": (3,)})
    g.mark_output("keep")
    g.mark_output("pick")
    layers = estimate_graph(g, PrecisionPlan.uniform("int8"), build_profile(TOY)).layers.set_index("name")
    assert layers.loc["keep", "input_bytes"] == layers.loc["keep", "output_bytes"] == 16 * 64
    assert layers.loc["pick", "input_bytes"] == layers.loc["pick", "output_bytes"] == 3 * 64
