"""Hand-checked cases for the systolic-array dataflow model (qsim/cost/systolic.py).

Cycle counts per fold, from SCALE-Sim v3's demand matrices (R x C array, T streamed):
os: T + R + C - 2; ws and is: 2R + C + T - 2. Every cycle count below was also run through
SCALE-Sim 3.0.0 once; it reports one less (its "Total Cycles" is the last cycle's index).
"""
from __future__ import annotations

import dataclasses

import pytest

from qsim.cost.systolic import (Dataflow, SystolicArray, SystolicError, conv_as_gemm,
                                systolic_conv, systolic_gemm)

# 1 MiB SRAMs and 64 words/cycle: every operand fits in half an SRAM, nothing stalls.
AMPLE = dict(ifmap_sram_kib=1024, filter_sram_kib=1024, ofmap_sram_kib=1024,
             dram_bytes_per_cycle=64)


def array4(dataflow: str, **memory) -> SystolicArray:
    return SystolicArray(4, 4, dataflow, **{**AMPLE, **memory})


# --- one fold ---------------------------------------------------------------------------------
# M = N = K = 4 fills a 4x4 array exactly once in every dataflow.
# os: T=K=4 -> 4 + 4 + 4 - 2 = 10.  ws: T=M=4 -> 2*4 + 4 + 4 - 2 = 14.  is: T=N=4 -> 14.
@pytest.mark.parametrize("dataflow, cycles", [("os", 10), ("ws", 14), ("is", 14)])
def test_single_fold(dataflow, cycles):
    r = systolic_gemm(4, 4, 4, array=array4(dataflow))
    assert (r.row_folds, r.col_folds, r.cycles_per_fold) == (1, 1, cycles)
    assert r.compute_cycles == r.total_cycles == cycles and r.stall_cycles == 0
    assert r.mapping_efficiency == 1.0
    # 64 MACs on 16 PEs over `cycles` cycles.
    assert r.compute_utilization == pytest.approx(64 / (16 * cycles))


# --- 2 x 3 folds ------------------------------------------------------------------------------
# os (M, N, K) = (8, 12, 5): Sr = M = 8 -> 2 row folds, Sc = N = 12 -> 3; T = 5:
#     per fold 5 + 4 + 4 - 2 = 11, total 6 * 11 = 66.
# ws (5, 12, 8): Sr = K = 8 -> 2, Sc = N = 12 -> 3; T = M = 5: 8 + 4 + 5 - 2 = 15, total 90.
# is (12, 5, 8): Sr = K = 8 -> 2, Sc = M = 12 -> 3; T = N = 5: 15 per fold, total 90.
@pytest.mark.parametrize("dataflow, mnk, per_fold", [
    ("os", (8, 12, 5), 11), ("ws", (5, 12, 8), 15), ("is", (12, 5, 8), 15)])
def test_two_by_three_folds(dataflow, mnk, per_fold):
    r = systolic_gemm(*mnk, array=array4(dataflow))
    assert (r.row_folds, r.col_folds, r.folds) == (2, 3, 6)
    assert r.cycles_per_fold == per_fold
    assert r.total_cycles == 6 * per_fold
    assert r.mapping_efficiency == 1.0


# Partial folds: os (7, 10, 5) still needs 2 x 3 folds, but maps 7 x 10 of the 8 x 12 PE slots:
# mapping efficiency 70 / 96; 350 MACs over 66 cycles on 16 PEs.
def test_partial_folds_mapping_efficiency():
    r = systolic_gemm(7, 10, 5, array=array4("os"))
    assert r.total_cycles == 66
    assert r.mapping_efficiency == pytest.approx(70 / 96)
    assert r.utilization == pytest.approx(350 / (16 * 66))


# --- SRAM and DRAM accesses -------------------------------------------------------------------
# os (7, 10, 5), 2 row folds x 3 col folds. Each fold streams its rows' ifmap (rows x K) and its
# columns' filter (K x cols): ifmap reads 3 * 7*5 = 105, filter reads 2 * 5*10 = 100; 70 outputs.
# Everything fits, so DRAM moves each operand once: 35, 50 and 70 words.
def test_access_counts_os():
    r = systolic_gemm(7, 10, 5, array=array4("os"))
    assert (r.ifmap_sram_reads, r.filter_sram_reads) == (105, 100)
    assert (r.ofmap_sram_writes, r.ofmap_sram_reads) == (70, 0)
    assert (r.ifmap_dram_reads, r.filter_dram_reads) == (35, 50)
    assert (r.ofmap_dram_reads, r.ofmap_dram_writes) == (0, 70)


# ws (5, 12, 8): K = 8 over 2 row folds, so each of the 60 outputs gets a partial sum written per
# row fold (120 writes) and read back once (60). The ifmap (5 x 8) is read by each of the 3
# column folds (120); each filter weight is loaded once (96).
# is (12, 5, 8): the ifmap (12 x 8) is loaded once (96), the filter (8 x 5) once per column
# fold (3 * 40 = 120), partial sums as in ws. DRAM moves each operand once (the partial sums
# stay in the ofmap SRAM): ws 40 ifmap + 96 filter words, is 96 + 40; 60 outputs.
@pytest.mark.parametrize("dataflow, mnk, ifmap, filt", [
    ("ws", (5, 12, 8), 120, 96), ("is", (12, 5, 8), 96, 120)])
def test_access_counts_ws_is(dataflow, mnk, ifmap, filt):
    r = systolic_gemm(*mnk, array=array4(dataflow))
    assert (r.ifmap_sram_reads, r.filter_sram_reads) == (ifmap, filt)
    assert (r.ofmap_sram_writes, r.ofmap_sram_reads) == (120, 60)
    m, n, k = mnk
    assert (r.ifmap_dram_reads, r.filter_dram_reads) == (m * k, k * n)
    assert (r.ofmap_dram_reads, r.ofmap_dram_writes) == (0, 60)


# A 64-byte ifmap SRAM (half = 32 words) cannot hold the 7 x 5 = 35-word ifmap, so os re-reads
# it for each of the 3 column folds: 105 DRAM words. The filter block (K x C = 5 x 4 = 20 words)
# still fits its half, so the filter is read once. With 2-byte words the bytes double.
def test_refetch_when_operand_does_not_fit():
    r = systolic_gemm(7, 10, 5, array=array4("os", ifmap_sram_kib=64 / 1024))
    assert (r.ifmap_dram_reads, r.filter_dram_reads) == (105, 50)
    wide = systolic_gemm(7, 10, 5, array=array4("os", ifmap_sram_kib=128 / 1024, word_bytes=2))
    assert wide.ifmap_dram_reads == 105 and wide.dram_bytes("ifmap") == 210
    assert wide.dram_read_bytes == 2 * (105 + 50) and wide.dram_write_bytes == 140


# WS partial sums that do not fit half the ofmap SRAM spill: (5, 12, 8) keeps an M x C = 5 x 4 =
# 20-word tile live; a 32-byte ofmap SRAM (half 16 words) spills it, so DRAM sees every partial
# sum written (2 row folds x 60) and all but the first read back (60).
def test_partial_sum_spill():
    r = systolic_gemm(5, 12, 8, array=array4("ws", ofmap_sram_kib=32 / 1024))
    assert (r.ofmap_dram_writes, r.ofmap_dram_reads) == (120, 60)


# --- DRAM bandwidth stalls --------------------------------------------------------------------
# os (4, 4, 64) on 4x4: one fold of 64 + 4 + 4 - 2 = 70 cycles. ifmap and filter are 256 words
# each; with 64-byte SRAMs (half = 32 words) and 1 byte/cycle, 32 words of each are preloaded
# (32 cycles, outside the total) and the other 224 arrive at cycle 224. The last 32-word chunk
# holds the last 1/8 of the reduction, 70/8 = 8.75 cycles of work: the layer ends at 232.75 ->
# 233 cycles, 163 of them stalls. The 16 outputs fit half the ofmap SRAM: written back after.
def test_bandwidth_bound_stalls():
    tiny = 64 / 1024
    a = SystolicArray(4, 4, "os", tiny, tiny, tiny, dram_bytes_per_cycle=1)
    r = systolic_gemm(4, 4, 64, array=a)
    assert r.compute_cycles == 70
    assert (r.total_cycles, r.stall_cycles) == (233, 163)
    assert (r.preload_cycles, r.writeback_cycles) == (32, 16)
    assert r.utilization == pytest.approx(1024 / (16 * 233))
    # Eight times the bandwidth: the 224 streamed words take 28 cycles, well inside 70.
    fast = systolic_gemm(4, 4, 64, array=dataclasses.replace(a, dram_bytes_per_cycle=8))
    assert fast.stall_cycles == 0


# --- convolution lowering ---------------------------------------------------------------------
# 6x6x2 ifmap, 3x3 filter, 5 filters, stride 1: 4x4 outputs -> GEMM (16, 5, 18).
# With pad 1 and stride 2: (6 + 2 - 3) // 2 + 1 = 3 -> (9, 5, 18).
def test_conv_maps_like_gemm():
    g = conv_as_gemm(6, 6, 3, 3, 2, 5)
    assert (g.m, g.n, g.k, g.ifmap_words) == (16, 5, 18, 72)
    assert (conv_as_gemm(6, 6, 3, 3, 2, 5, stride=2, pad=1).m) == 9
    for df in Dataflow:
        conv = systolic_conv(6, 6, 3, 3, 2, 5, array=array4(df.value))
        gemm = systolic_gemm(16, 5, 18, array=array4(df.value))
        assert conv.total_cycles == gemm.total_cycles
        assert conv.ifmap_sram_reads == gemm.ifmap_sram_reads
        # The SRAM holds the raw 6x6x2 = 72-word ifmap unless it stores the lowered 16 x 18.
        assert conv.ifmap_dram_reads == 72 and gemm.ifmap_dram_reads == 16 * 18
    lowered = systolic_conv(6, 6, 3, 3, 2, 5, array=array4("ws", im2col_in_sram=True))
    assert lowered.ifmap_dram_reads == 16 * 18


# --- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, name", [
    (dict(rows=0, cols=4), "rows"), (dict(rows=4, cols=-1), "cols"),
    (dict(rows=4, cols=4, dataflow="xs"), "dataflow"),
    (dict(rows=4, cols=4, ifmap_sram_kib=0), "ifmap_sram_kib"),
    (dict(rows=4, cols=4, dram_bytes_per_cycle=0), "dram_bytes_per_cycle"),
    (dict(rows=4, cols=4, word_bytes=0), "word_bytes"),
    (dict(rows=2.5, cols=4), "rows")])
def test_bad_array_names_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SystolicArray(**kwargs)


def test_bad_shapes_name_parameter():
    a = array4("ws")
    with pytest.raises(ValueError, match="^m:"):
        systolic_gemm(0, 4, 4, array=a)
    with pytest.raises(ValueError, match="kh, kw"):
        systolic_conv(2, 2, 3, 3, 1, 1, array=a)
    with pytest.raises(ValueError, match="stride"):
        systolic_conv(8, 8, 3, 3, 1, 1, stride=0, array=a)


def test_dataflow_accepts_enum_and_case():
    assert SystolicArray(4, 4, Dataflow.IS).dataflow is Dataflow.IS
    assert SystolicArray(4, 4, "OS").dataflow is Dataflow.OS


# The stall bound takes the maximum over chunks j of arrival(j) + compute left, evaluated at three
# candidates only (it is linear in j between the first and the last full chunk). Check the
# shortcut against every chunk on a grid of stream sizes, chunk sizes and bandwidths.
def test_stall_bound_candidates_match_every_chunk():
    from qsim.cost.systolic_memory import _input_bound

    def brute(compute, words, chunk, bw):
        if words <= chunk:
            return 0.0
        n = -(-words // chunk)
        return max((min((j + 1) * chunk, words) - chunk) / bw + compute * (1 - j * chunk / words)
                   for j in range(1, n))

    for compute in (10, 700):
        for words in (33, 64, 257, 1000, 4097):
            for chunk in (1, 7, 32, 500):
                for bw in (0.5, 1.0, 3.0, 64.0):
                    assert _input_bound(compute, words, chunk, bw) == \
                        pytest.approx(brute(compute, words, chunk, bw))


# --- the array inside the cost model: SRAMs and DRAM port from the profile ---------------------
# An 8x8 weight-stationary array at 1 GHz whose DRAM port is a 2 GB/s memory (2 one-byte words per
# cycle). Activations live in a fast on-chip memory, so the cost model's roofline only sees the
# weights on DRAM. The layer: Gemm x[16, 64] -> 64 outputs (M = 16, K = 64, N = 64).
SYSTOLIC_TOY = {
    "name": "systolic_toy", "kind": "systolic", "clock_mhz": 1000,
    "compute": {"macs_per_cycle": {"int8": 64}, "efficiency": {"int8": 1.0},
                "vector_ops_per_cycle": 1024, "accumulator_bits": 32},
    "memories": {
        "sram": {"capacity_kib": 1024, "bandwidth_gbps": 1000, "read_pj_per_byte": 1, "write_pj_per_byte": 1,
                 "on_chip": True},
        "dram": {"capacity_kib": 1 << 20, "bandwidth_gbps": 2, "read_pj_per_byte": 20, "write_pj_per_byte": 20,
                 "on_chip": False}},
    "placement": {"weights": "dram", "activations": "sram", "buffer": "sram"},
    "energy": {"mac_pj": {"int8": 0.2}, "vector_op_pj": 0.1, "static_mw": 0},
    "dispatch_overhead_us": 0,
    "systolic": {"rows": 8, "cols": 8, "dataflow": "ws", "ifmap_sram_kib": 2, "filter_sram_kib": 8,
                 "ofmap_sram_kib": 2, "dram": "dram"},
}


def _toy_gemm_row(**systolic):
    from qsim.cost import estimate_graph
    from qsim.hw.profile import build_profile
    from qsim.ir import Graph
    from qsim.precision import PrecisionPlan

    g = Graph("g")
    g.add_input("x", (16, 64))
    g.add_node("Gemm", "fc", ["x"], {"out_features": 64})
    g.mark_output("fc")
    prof = build_profile({**SYSTOLIC_TOY, "systolic": {**SYSTOLIC_TOY["systolic"], **systolic}})
    return estimate_graph(g, PrecisionPlan.uniform("int8"), prof).layers.iloc[0]


def test_cost_model_layer_becomes_dram_bound_when_its_sram_is_small():
    # ws on 8x8: K = 64 -> 8 row folds, N = 64 -> 8 column folds, each 2*8 + 8 + 16 - 2 = 38 cycles:
    # 64 * 38 = 2432 cycles; plus 16 * 64 bias adds at 1024 per cycle = 1 cycle. At 1 GHz: 2433 ns.
    compute_s = 2433e-9
    # Roofline: int8 weights 64 * 64 + int32 bias 64 * 4 = 4352 bytes over 2 GB/s = 2176 ns.
    # Ample SRAMs (ifmap 2 KiB: its 16 * 64 = 1024 words fit the 1024-word half): no stall.
    big = _toy_gemm_row()
    assert big.compute_s == pytest.approx(compute_s)
    assert big.memory_s == pytest.approx(4352 / 2e9)
    assert big.bound == "compute" and big.latency_s == pytest.approx(compute_s)
    # A 256-byte ifmap SRAM (half = 128 words) cannot keep the ifmap across the 8 column folds:
    # 8 * 1024 = 8192 words stream over the 2-word/cycle port. The first 128 are preloaded; the
    # rest land by cycle (8192 - 128) / 2 = 4032, and the last 128-word chunk feeds
    # 2432 / 64 = 38 cycles of folds: the layer ends at 4070 cycles, 4070 - 2432 = 1638 stalled.
    small = _toy_gemm_row(ifmap_sram_kib=0.25)
    assert small.compute_s == pytest.approx(compute_s)
    assert small.memory_s == pytest.approx(compute_s + 1638e-9)
    assert small.bound == "memory" and small.bound_level == "dram"
    assert small.latency_s == pytest.approx(compute_s + 1638e-9)


def test_shipped_systolic_profile_gives_the_array_its_memories():
    from qsim.cost.systolic_node import array_of
    from qsim.hw.profile import load_profile

    array = array_of(load_profile("systolic"), "int16")
    assert (array.rows, array.cols, array.dataflow) == (256, 256, Dataflow.WS)
    assert (array.ifmap_sram_kib, array.filter_sram_kib, array.ofmap_sram_kib) == (24576, 256, 1024)
    assert array.word_bytes == 2 and array.dram_bytes_per_cycle == pytest.approx(34e9 / 700e6)
