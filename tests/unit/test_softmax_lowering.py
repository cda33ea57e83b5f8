"""The classifier's Softmax: the builders end with it where the reference model does, and Vela's Ethos-U
stack runs an int8 Softmax as its chain of 31 NPU operations (counts and bytes checked by hand)."""
from __future__ import annotations

import pytest

import qsim
from qsim.cost.npu_softmax import VELA_INT8_SOFTMAX, lowered_softmax
from qsim.hw.profile import load_profile
from qsim.ir.builders import build


def _last_op(graph) -> str:
    return graph.node(graph.producer(graph.outputs[0]).name).op


@pytest.mark.parametrize("builder, default", [("mlperf_tiny_ic", True), ("resnet8", True), ("mlperf_tiny_vww", True),
                                              ("mobilenet_v1", True), ("mobilenet_v2", False), ("resnet50", False),
                                              ("resnet18", False)])
def test_builders_end_with_the_softmax_their_reference_model_has(builder, default):
    with_it, without = build(builder, softmax=True), build(builder, softmax=False)
    assert _last_op(build(builder)) == ("Softmax" if default else "Gemm")
    assert _last_op(with_it) == "Softmax" and _last_op(without) == "Gemm"
    assert len(with_it.nodes()) == len(without.nodes()) + 1
    assert with_it.summary()["macs"] == without.summary()["macs"]  # a Softmax has no MACs and no weights
    assert with_it.summary()["params"] == without.summary()["params"]


def test_vela_int8_softmax_is_31_operations_with_hand_counted_bytes():
    assert len(VELA_INT8_SOFTMAX) == 31  # softmax.py get_graph_8bit: PASS 0 to PASS 30
    # N elements in R rows. Over every element: max-pool reads N int8; Sub+LUT reads N int8 (+ R int8 maxima),
    # writes 4N; SHR reads 4N, writes 4N; reduce-sum reads 4N (writes 4R); Mul reads 4N + 4R, writes 4N;
    # the last SHR reads 4N + 4R, writes N int8: reads 18N, writes 13N. Per row: 25 int32 operations reading
    # 35 row operands (140R) and writing 100R; with the max-pool's R and the reduce-sum's 4R written and the
    # R + 4R + 4R row operands read by the full passes: reads 149R, writes 105R.
    for n, r in ((10, 1), (1000, 4), (64, 64)):
        low = lowered_softmax(n, r)
        assert (low.operations, low.bytes_read, low.bytes_written) == (31, 18 * n + 149 * r, 13 * n + 105 * r)
        assert low.lut_bytes == 1024  # 256 int32 entries of the exp table
        # output stage: 1.0 (LUT) + 3 x 0.625 per element, the two reductions 0.125 per element read;
        # per row: 24 binary int32 operations at 0.625 and the unary CLZ at 1.125
        assert low.cycles == pytest.approx(3.125 * n + 16.125 * r, rel=1e-12)


def test_the_imx93_softmax_row_is_the_lowered_chain():
    profile = load_profile("imx93")
    assert profile.dispatch_s == pytest.approx(64e-9)  # vela.ini: SRAM read + write latency, 32 + 32 cycles at 1 GHz
    layers = qsim.estimate("mlperf_tiny_ic", profile, precision="int8")
    row = layers.set_index("name").loc["softmax"]
    assert row.launches == 31
    assert row.compute_s == pytest.approx(47.375e-9, rel=1e-12)  # 3.125 x 10 + 16.125 cycles at 1 GHz
    # beyond its own 10 + 10 bytes, the chain moves 329 + 235 bytes and the 1,024-byte table, at the
    # activations' DRAM rate; its own traffic is bound by the 40 bytes through the 16 GB/s SRAM
    extra = 329 + 235 + 1024 - 20
    assert row.memory_s == pytest.approx(40 / 16e9 + extra / 7.466e9, rel=1e-9)
    assert row.latency_s == pytest.approx(31 * 64e-9 + row.memory_s, rel=1e-9)


def test_no_lowering_elsewhere():
    iot = qsim.estimate("mlperf_tiny_ic", "iot", precision="int8").set_index("name")
    assert iot.loc["softmax", "launches"] == 1  # TFLM runs SOFTMAX as one kernel
    int16 = qsim.estimate("mlperf_tiny_ic", "imx93", precision="weight=int8,activation=int16").set_index("name")
    assert int16.loc["softmax", "launches"] == 1  # Vela's int16 Softmax is another lowering, not modelled


def test_the_softmax_parameter_is_a_checked_boolean():
    import subprocess
    import sys

    run = lambda value: subprocess.run([sys.executable, "-m", "qsim.cli", "run", "mlperf_tiny_ic", "--hw", "iot",  # noqa: E731
                                        "--set", f"softmax={value}"], capture_output=True, text=True)
    bad = run("maybe")
    assert bad.returncode == 2 and "model.params.softmax: expected true or false, got 'maybe'" in bad.stderr
    assert "Traceback" not in bad.stderr
    off = run("false")
    assert off.returncode == 0 and "Softmax" not in off.stdout
