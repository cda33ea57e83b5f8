"""The execution plan of a compiled model (``qsim.sim.plan``): every tensor of every run equals the
per-node integer executor's (``run_integer``), bit for bit, with the same per-node statistics, on
ONNX and LiteRT models under each policy; the plan really plans (the convolutions, adds, pools and
the Gemm run as planned nodes); buffers reused between runs never leak into what a run returned;
an input that arrives in another layout than the one planned runs the per-node path."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime.quantization")

import _int_onnx as M  # noqa: E402
import _int_tflite as T  # noqa: E402
from _int_graphs import tq  # noqa: E402

import qsim  # noqa: E402
from qsim.ir.graph import Graph  # noqa: E402
from qsim.sim.integer import run_integer  # noqa: E402
from qsim.sim.plan import ExecutionPlan  # noqa: E402


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("plan")
    return M.quantize(M.resnet_cnn(d / "float.onnx", batch=2), d / "quant.onnx", "qoperator", True)


@pytest.fixture(scope="module")
def tflite_model(tmp_path_factory):
    return T.int8_cnn(tmp_path_factory.mktemp("plan_tfl") / "cnn.tflite", "ties")


def _same_as_per_node(compiled, inputs, plan_of=None):
    """Run ``compiled`` twice with trace; compare every tensor and the statistics with run_integer."""
    for _ in range(2):
        _, trace = compiled.run(inputs, trace=True)
        stats = compiled.last_run.stats
    graph, io, float_nodes = compiled._entry(inputs)
    ref = run_integer(graph, compiled._feeds(graph, io, inputs), compiled.policy, trace=True,
                      float_nodes=float_nodes, counts=True)
    for t, want in ref.trace.items():
        assert trace[t].dtype == want.dtype and np.array_equal(trace[t], want), t
    assert stats.equals(ref.stats)
    plan = compiled._plans[id(graph)]
    assert plan._shared  # from here on, nodes share buffers: the outputs stay the same
    outputs = compiled.run(inputs)
    assert all(np.array_equal(v, compiled.run(inputs, trace=True)[0][k]) for k, v in outputs.items())
    assert all(np.array_equal(plan.run(compiled._feeds(graph, io, inputs)).outputs[t], ref.outputs[t])
               for t in graph.outputs)
    return plan


def _planned_ops(plan: ExecutionPlan) -> set:
    return {n.op for n, b in zip(plan.nodes, plan._bound) if b is not False}


def test_onnx_plan_equals_per_node_executor(onnx_model):
    x = {"x": np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)}
    plan = _same_as_per_node(qsim.compile(onnx_model, x, counts=True), x)
    assert {"Conv", "Add", "GlobalAvgPool", "Gemm"} <= _planned_ops(plan)
    buffers = sum(len(b.outputs) + len(b.scratch) for b in plan._bound if b is not False and not b.keep)
    assert len(plan._buffer_ids) < buffers / 2  # buffers whose lifetimes do not overlap share memory


@pytest.mark.parametrize("policy", ["tflite-reference", "tflite-optimized", "xnnpack"])
def test_tflite_plan_equals_per_node_executor(tflite_model, policy):
    x = np.random.default_rng(1).integers(-128, 128, (4, 8, 8, 3)).astype(np.int8)
    plan = _same_as_per_node(qsim.compile(tflite_model, x, policy=policy, counts=True), x)
    assert {"Conv", "Add"} <= _planned_ops(plan)


def test_outputs_and_traces_do_not_alias_reused_buffers(onnx_model):
    rng = np.random.default_rng(2)
    x1, x2 = ({"x": rng.standard_normal((2, 3, 32, 32)).astype(np.float32)} for _ in range(2))
    compiled = qsim.compile(onnx_model, x1)
    first = compiled.run(x1)
    kept = {k: v.copy() for k, v in first.items()}
    _, trace = compiled.run(x1, trace=True)
    kept_trace = {k: v.copy() for k, v in trace.items()}
    second = compiled.run(x2)
    compiled.run(x2, trace=True)
    assert all(np.array_equal(first[k], kept[k]) for k in first)
    assert all(np.array_equal(trace[k], kept_trace[k]) for k in trace)
    assert not all(np.array_equal(first[k], second[k]) for k in first)
    assert np.array_equal(compiled.run(x1)["logits"], kept["logits"])


def _depthwise_graph(channels: int, layout: str | None) -> Graph:
    """int8 x (2, C, 9, 7) -> a 3x3 depthwise conv (per-channel weights, RELU6, stride 2) -> int8."""
    rng = np.random.default_rng(channels)
    g = Graph("dw")
    g.add_input("x", (2, channels, 9, 7), "int8")
    attrs = {"out_channels": channels, "groups": channels, "kernel": (3, 3), "stride": (2, 2), "dilation": (1, 1),
             "pad": (1, 1, 1, 1), "bias": True, "activation": "RELU6"}
    if layout:
        attrs["tflite_layout"] = layout
    g.add_node("Conv", "dw", ["x"], attrs, dtype="int8")
    g.mark_output("dw")
    s_w = (0.02 * 2.0 ** -rng.integers(0, 3, channels)).astype(np.float32)
    g.constants["dw.weight"] = rng.integers(-127, 128, (channels, 1, 3, 3)).astype(np.int8)
    g.constants["dw.bias"] = rng.integers(-300, 300, channels).astype(np.int32)
    g.quant_params["x"] = tq(0.25, -3, "int8")
    g.quant_params["dw.weight"] = tq(s_w, np.zeros(channels, np.int64), "int8", 0)
    g.quant_params["dw.bias"] = tq(0.25 * s_w, np.zeros(channels, np.int64), "int32", 0)
    g.quant_params["dw"] = tq(0.05, 4, "int8")
    return g.validate()


@pytest.mark.parametrize("policy", ["tflite-optimized", "tflite-reference", "onnxruntime"])
def test_depthwise_with_a_tail_of_channels(policy):
    """LiteRT's optimized depthwise rounds the last C % 8 channels by another policy: planned apart."""
    g = _depthwise_graph(13, "1HWO" if policy.startswith("tflite") else None)
    plan = ExecutionPlan(g, policy)
    rng = np.random.default_rng(3)
    for _ in range(2):
        x = {"x": rng.integers(-128, 128, (2, 13, 9, 7)).astype(np.int8)}
        got, want = plan.run(x, trace=True), run_integer(g, x, policy, trace=True)
        assert np.array_equal(got.outputs["dw"], want.outputs["dw"])
        assert got.stats.equals(want.stats)
    assert _planned_ops(plan) == {"Conv"}


@pytest.mark.parametrize("pad", [0, 1])
def test_average_pool_over_the_whole_image(pad):
    """A uint8 7x7 AveragePool on a 7x7 image (ResNet-50's head) is planned as onnxruntime's global
    average pool, on channels-last and NCHW inputs; a padded window keeps the per-node path."""
    g = Graph("avg")
    g.add_input("x", (2, 5, 7, 7), "uint8")
    g.add_node("AvgPool", "avg", ["x"], {"kernel": (7, 7), "stride": (1, 1), "pad": (pad,) * 4}, dtype="uint8")
    g.mark_output("avg")
    g.quant_params["x"] = tq(0.03, 131, "uint8")
    g.quant_params["avg"] = tq(0.011, 7, "uint8")
    g.validate()
    rng = np.random.default_rng(7)
    xs = rng.integers(0, 256, (2, 2, 7, 7, 5)).astype(np.uint8)
    for layout in (lambda v: v.transpose(0, 3, 1, 2), np.ascontiguousarray):
        plan = ExecutionPlan(g, "onnxruntime")
        for v in xs:
            x = {"x": layout(v.transpose(0, 3, 1, 2))} if layout is np.ascontiguousarray else {"x": layout(v)}
            got, want = plan.run(x, trace=True), run_integer(g, x, "onnxruntime", trace=True, counts=True)
            assert got.outputs["avg"].dtype == want.outputs["avg"].dtype
            assert np.array_equal(got.outputs["avg"], want.outputs["avg"])
            assert got.stats.equals(want.stats)
        assert _planned_ops(plan) == (set() if pad else {"AvgPool"})


@pytest.mark.parametrize("shape, axis", [((3, 40, 2), 1), ((3, 1001), -1)])
@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_softmax_is_planned(dtype, shape, axis):
    """onnxruntime's QLinearSoftmax over axis 1 of a (3, 40, 2) tensor and over the last axis of
    (3, 1001): planned, equal to the per-node path."""
    g = Graph("sm")
    g.add_input("x", shape, dtype)
    g.add_node("Softmax", "sm", ["x"], {"axis": axis}, dtype=dtype)
    g.mark_output("sm")
    g.quant_params["x"] = tq(0.13, 5, dtype)
    g.quant_params["sm"] = tq(1 / 256, 0 if dtype == "uint8" else -128, dtype)
    g.validate()
    plan = ExecutionPlan(g, "onnxruntime")
    info = np.iinfo(dtype)
    for seed in (8, 9):
        x = {"x": np.random.default_rng(seed).integers(info.min, info.max + 1, shape).astype(dtype)}
        got, want = plan.run(x, trace=True), run_integer(g, x, "onnxruntime", trace=True)
        assert got.outputs["sm"].dtype == want.outputs["sm"].dtype
        assert np.array_equal(got.outputs["sm"], want.outputs["sm"]) and got.stats.equals(want.stats)
    assert _planned_ops(plan) == {"Softmax"}


@pytest.mark.parametrize("dtype, attrs", [("uint8", {"axis": 1, "beta": 2.0}), ("int16", {"axis": 1})])
def test_softmax_onnxruntime_runs_in_float_is_not_planned(dtype, attrs):
    """beta != 1, or 16-bit types: onnxruntime has no QLinearSoftmax for them (a float island on the
    per-node path); ``softmax_setup`` declines them for the planner too."""
    g = Graph("sm")
    g.add_input("x", (3, 40, 2), dtype)
    g.add_node("Softmax", "sm", ["x"], attrs, dtype=dtype)
    g.mark_output("sm")
    g.quant_params["x"] = tq(0.13, 5, dtype)
    g.quant_params["sm"] = tq(1 / 256, 0, dtype)
    g.validate()
    plan = ExecutionPlan(g, "onnxruntime")
    info = np.iinfo(dtype)
    x = {"x": np.random.default_rng(10).integers(info.min, info.max + 1, (3, 40, 2)).astype(dtype)}
    got, want = plan.run(x, trace=True), run_integer(g, x, "onnxruntime", trace=True)
    assert np.array_equal(got.outputs["sm"], want.outputs["sm"]) and got.stats.equals(want.stats)
    assert _planned_ops(plan) == set() and list(want.stats["mode"]) == ["float"]


def test_input_in_another_layout_runs_the_per_node_path():
    g = _depthwise_graph(16, None)
    plan = ExecutionPlan(g, "onnxruntime")
    rng = np.random.default_rng(4)
    x = rng.integers(-128, 128, (2, 16, 9, 7)).astype(np.int8)
    plan.run({"x": x})
    other = np.asfortranarray(rng.integers(-128, 128, (2, 16, 9, 7)).astype(np.int8))
    got = plan.run({"x": other}, trace=True)
    assert np.array_equal(got.outputs["dw"], run_integer(g, {"x": other}, "onnxruntime").outputs["dw"])


def test_fast_feed_quantizer_equals_quantize_linear_on_ties_and_edges():
    from qsim.numerics.policies import Kernels
    from qsim.numerics.quantize import quantize
    from qsim.sim.int_runtime import get_runtime
    from qsim.sim.plan import fast_quantizer

    rng = np.random.default_rng(5)
    for scale, zp, dtype in ((0.0186, 114, "uint8"), (0.5, -3, "int8"), (2.0 ** -7, 0, "int8"), (0.01, 300, "int16")):
        ties = (np.arange(-300, 300) + 0.5).astype(np.float32) * np.float32(scale)
        edges = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, 3e38, 2.0 ** 24, -2.0 ** 24 - 1], np.float32)
        x = np.concatenate([ties, edges, rng.standard_normal(1000).astype(np.float32) * 40])
        q = tq(scale, zp, dtype)
        fast = fast_quantizer(q, get_runtime("onnxruntime"))
        want = quantize(x, q, Kernels.ONNXRUNTIME)
        assert fast(x).dtype == want.dtype and np.array_equal(fast(x), want)
        assert np.array_equal(fast(x.astype(np.float64)), quantize(x.astype(np.float64), q, Kernels.ONNXRUNTIME))
        # float64 values between float32 ones (rounded to float32 first), and a strided input (the
        # numpy passes instead of the one-pass kernel)
        x64 = np.concatenate([ties.astype(np.float64) * (1 + 2.0 ** -30), rng.standard_normal(1000) * 40])
        assert np.array_equal(fast(x64), quantize(x64, q, Kernels.ONNXRUNTIME))
        assert np.array_equal(fast(x[::3]), quantize(x[::3], q, Kernels.ONNXRUNTIME))
    assert fast_quantizer(tq(0.5, 0, "int8"), get_runtime("tflite-reference")) is None


@pytest.mark.parametrize("options", [dict(overflow="saturate", acc_bits=16), dict(acc_bits=18), dict(impl="numpy")])
def test_executor_options_keep_their_meaning(onnx_model, options):
    """Narrow or saturating accumulators and the numpy kernels: nodes the plan cannot run with them
    keep the per-node path; every tensor and the overflow counts equal run_integer's."""
    x = {"x": np.random.default_rng(6).standard_normal((2, 3, 32, 32)).astype(np.float32) * 4}
    compiled = qsim.compile(onnx_model, x, counts=True, **options)
    for _ in range(2):
        out, trace = compiled.run(x, trace=True)
    graph, io, float_nodes = compiled._entry(x)
    ref = run_integer(graph, compiled._feeds(graph, io, x), compiled.policy, trace=True, float_nodes=float_nodes,
                      counts=True, **options)
    assert all(np.array_equal(trace[t], v) and trace[t].dtype == v.dtype for t, v in ref.trace.items())
    assert compiled.last_run.stats.equals(ref.stats)
    if "acc_bits" in options and options["acc_bits"] == 16:
        assert ref.stats["overflow_events"].sum() > 0  # the narrow accumulator did overflow
