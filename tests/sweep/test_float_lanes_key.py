"""MLAS's float softmax sums in 8 lanes (AVX2) or 16 (AVX-512F): the fp32 reference and the
calibration run it under every policy, so where a model's softmax axis is longer than 16 the lane
count enters the accuracy key under every policy (fp32 plans too); where it cannot change a result
(no softmax, or an axis of at most 16) the keys stay shared across CPU kinds."""
from __future__ import annotations

import numpy as np
import pytest

from qsim.evaluation.data import load_evaluation
from qsim.ir.graph import Graph
from qsim.search.measure import Measurer, graph_key
from qsim.sim import float_mlas as M
from qsim.sim.float_mlas import float_lanes_tag, lane_dependent
from qsim.sweep import run_sweep

SAMPLES, FEATURES = 24, 16
POLICY = "cmsis-nn"  # a policy whose integer kernels do not follow the CPU


def _graph(classes: int, batch: int = SAMPLES, softmax: bool = True) -> Graph:
    g = Graph(f"softmax{classes}")
    g.add_input("x", (batch, FEATURES))
    g.add_node("Gemm", "fc", ["x"], {"out_features": classes})
    if softmax:
        g.add_node("Softmax", "sm", ["fc"])
    g.mark_output("sm" if softmax else "fc")
    rng = np.random.default_rng(3)
    g.constants["fc.weight"] = (rng.standard_normal((classes, FEATURES)) * 2).astype(np.float32)
    g.constants["fc.bias"] = rng.standard_normal(classes).astype(np.float32)
    return g.validate()


def _evaluation(folder, classes: int):
    rng = np.random.default_rng(4)
    np.savez(folder / f"data{classes}.npz", x=rng.standard_normal((SAMPLES, FEATURES)).astype(np.float32),
             labels=rng.integers(0, classes, SAMPLES))
    return load_evaluation({"data": str(folder / f"data{classes}.npz"), "metric": "cosine"}, "test", folder)


def test_rows_of_up_to_16_sum_alike_in_8_and_16_lanes():
    rng = np.random.default_rng(0)
    for d in range(1, 41):
        e = rng.random((500, d)).astype(np.float32) * np.float32(3)
        same = np.array_equal(M._lane_sum(e, 8), M._lane_sum(e, 16))
        assert same == (d <= 16), d  # longer rows: some sum differs in its last bit


def test_lane_dependence_of_a_graph():
    assert lane_dependent(_graph(17)) and lane_dependent(_graph(100))
    assert not lane_dependent(_graph(16)) and not lane_dependent(_graph(100, softmax=False))
    assert float_lanes_tag(_graph(100), "avx2") == 8 and float_lanes_tag(_graph(100), "vnni") == 16
    assert float_lanes_tag(_graph(10), "vnni") is None


@pytest.mark.parametrize("plan", ["fp32", "int8"])
def test_keys_follow_the_lanes_where_the_reference_does(tmp_path, plan):
    for classes, differ in ((100, True), (10, False)):
        ev, graph = _evaluation(tmp_path, classes), _graph(classes)
        keys = {cpu: Measurer(graph, ev, POLICY, ort_cpu=cpu).key(plan) for cpu in ("avx2", "vnni", "arm64")}
        assert (keys["avx2"] != keys["vnni"]) == differ and keys["avx2"] == keys["arm64"]  # both 8 lanes
        if not differ:  # a lane-free model keeps the key it had before lanes entered keys
            assert keys["vnni"] == ev.key(graph_key(graph), plan, POLICY, 32, "wrap") + "-v1"


def test_a_cache_of_one_lane_count_does_not_answer_for_another(tmp_path):
    ev, graph = _evaluation(tmp_path, 100), _graph(100)
    fresh = {cpu: Measurer(graph, ev, POLICY, ort_cpu=cpu).measure("int8") for cpu in ("avx2", "vnni")}
    assert fresh["avx2"].sqnr_db != fresh["vnni"].sqnr_db  # the reference's last bits differ: so do the figures
    cache = tmp_path / "cache"
    assert Measurer(graph, ev, POLICY, ort_cpu="avx2", cache_dir=cache).measure("int8") == fresh["avx2"]
    assert Measurer(graph, ev, POLICY, ort_cpu="vnni", cache_dir=cache).measure("int8") == fresh["vnni"]


def test_one_evaluation_keeps_a_reference_per_lane_count(tmp_path):
    from qsim.evaluation.measure import reference
    from qsim.sim.int_runtime import ort_cpu_scope

    ev, graph = _evaluation(tmp_path, 100), _graph(100)
    refs = {}
    for cpu in ("avx2", "vnni", "avx2"):
        with ort_cpu_scope(cpu):
            refs.setdefault(cpu, []).append(reference(ev, graph)[0])
    assert not np.array_equal(refs["avx2"][0], refs["vnni"][0]) and np.array_equal(*refs["avx2"])
    with ort_cpu_scope("vnni"):  # what a fresh Evaluation computes under vnni
        assert np.array_equal(reference(_evaluation(tmp_path, 100), graph)[0], refs["vnni"][0])


MODEL = '''
import numpy as np
from qsim.ir.graph import Graph


def graph(batch=1, classes=100):
    g = Graph("sm")
    g.add_input("x", (batch, 16))
    g.add_node("Gemm", "fc", ["x"], {"out_features": classes})
    g.add_node("Softmax", "sm", ["fc"])
    g.mark_output("sm")
    rng = np.random.default_rng(3)
    g.constants["fc.weight"] = (rng.standard_normal((classes, 16)) * 2).astype(np.float32)
    g.constants["fc.bias"] = rng.standard_normal(classes).astype(np.float32)
    return g.validate()
'''


@pytest.mark.parametrize("classes, again", [(100, 2), (10, 0)])
def test_a_sweep_store_follows_the_lanes_under_every_policy(tmp_path, classes, again):
    (tmp_path / "smmodel.py").write_text(MODEL)
    (tmp_path / "sm.yaml").write_text("name: sm\nmodel: {entry: 'smmodel:graph', params: {classes: %d}}\n"
                                      "batch: 1\n" % classes)
    _evaluation(tmp_path, classes)
    spec = {"name": "lanes", "workloads": [str(tmp_path / "sm.yaml")], "precisions": ["fp32", "int8"],
            "profiles": ["iot"],  # requant_policy: cmsis-nn
            "evaluation": {"data": str(tmp_path / f"data{classes}.npz"), "batch": 8, "metric": "cosine"}}
    out = tmp_path / "out"
    first = run_sweep(spec, out_dir=out, workers=1, ort_cpu="avx2")
    assert first.attrs["evaluations"] == 2
    assert run_sweep(spec, out_dir=out, workers=1, ort_cpu="avx2").attrs["evaluations"] == 0
    other = run_sweep(spec, out_dir=out, workers=1, ort_cpu="vnni")
    assert other.attrs["evaluations"] == again  # fp32 and int8 both: the reference is another
    if again:
        assert (first["sqnr_db"] != other["sqnr_db"]).any()


@pytest.mark.parametrize("op", ["AvgPool", "GlobalAvgPool"])
def test_a_pool_whose_channels_fill_8_lane_blocks_only_follows_the_lanes(op):
    """onnxruntime pools in its NCHWc layout (another summation order) where the channels are whole
    blocks: 24 channels are with AVX2's 8 and are not with AVX-512's 16; 32 and 20 alike on both."""
    def graph(channels):
        g = Graph("pool")
        g.add_input("x", (1, channels, 6, 6))
        g.add_node(op, "p", ["x"], {"kernel": 3, "stride": 1} if op == "AvgPool" else {})
        g.mark_output("p")
        return g.validate()

    assert lane_dependent(graph(24)) and not lane_dependent(graph(32)) and not lane_dependent(graph(20))
