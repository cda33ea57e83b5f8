"""Integer executor: accumulator overflow accounting, clear errors, fp8 value emulation, and the
``simulate`` entry point on ONNX / TFLite / float models."""
from __future__ import annotations

import numpy as np
import pytest

from _int_graphs import int8_attention, int8_gemm

from qsim.errors import GraphError, QsimError, WorkloadError
from qsim.sim.executor import run_float
from qsim.sim.integer import run_integer
from qsim.sim.simulate import simulate


@pytest.mark.parametrize("impl", ["numba", "numpy"])
def test_planted_overflow_wrap_and_saturate(impl):
    g = int8_gemm()
    x = np.full((4, 64), 127, np.int8)
    x[0, :] = 1  # row 0: 64 * 127 = 8128 fits 16 bits; rows 1..3: 127 * 127 * 64 = 1032256 does not
    exact = x.astype(np.int64) @ g.constants["fc.weight"].astype(np.int64).T
    expected = int(np.sum(exact > 2**15 - 1))
    wrap = run_integer(g, {"x": x}, "tflite-reference", acc_bits=16, overflow="wrap", impl=impl)
    sat = run_integer(g, {"x": x}, "tflite-reference", acc_bits=16, overflow="saturate", impl=impl)
    wide = run_integer(g, {"x": x}, "tflite-reference", impl=impl)
    assert expected == 9
    assert wrap.stats.loc[0, "overflow_events"] == expected
    assert sat.stats.loc[0, "overflow_events"] == expected  # all products positive: clamps = overflows
    assert wide.stats.loc[0, "overflow_events"] == 0
    # saturate: 32767 * 0.02 * 0.01 / 64 = 0.1 -> 0; wrap: 1032256 mod 2^16 = -16576 -> -0.05 -> 0;
    # 32 bits: 1032256 * 0.02 * 0.01 / 64 = 3.2 -> 3. Row 0 (no overflow) agrees everywhere.
    assert np.array_equal(wide.outputs["fc"][1:], np.full((3, 3), 3, np.int8))
    assert np.array_equal(sat.outputs["fc"][1:], np.zeros((3, 3), np.int8))
    assert np.array_equal(wrap.outputs["fc"][0], wide.outputs["fc"][0])


def test_saturated_outputs_counted():
    g = int8_gemm(w_value=-127)
    g.quant_params["fc"] = g.quant_params["fc"].__class__(np.float32(0.01), np.int64(0), "int8")
    r = run_integer(g, {"x": np.full((4, 64), 100, np.int8)}, "onnxruntime")
    assert r.stats.loc[0, "saturated_low"] == 12 and r.stats.loc[0, "saturated_high"] == 0
    assert r.outputs["fc"].dtype == np.int8


def test_missing_quant_params_is_a_graph_error():
    g = int8_gemm()
    del g.quant_params["fc.weight"]
    with pytest.raises(GraphError, match=r"node 'fc' \(Gemm\).*fc.weight.*quantization parameters"):
        run_integer(g, {"x": np.ones((4, 64), np.int8)}, "onnxruntime")


def test_unsupported_op_is_a_graph_error():
    with pytest.raises(GraphError, match=r"node 'attn' \(Attention\).*not supported by the integer executor"):
        run_integer(int8_attention(), {"x": np.ones((1, 4, 8), np.int8)}, "onnxruntime")


def test_unsupported_element_type_is_a_graph_error():
    from _int_graphs import tq

    g = int8_gemm()
    g.quant_params["fc"] = tq(0.5, 0, "int64")
    with pytest.raises(GraphError, match=r"node 'fc' \(Gemm\).*'int64'"):
        run_integer(g, {"x": np.ones((4, 64), np.int8)}, "onnxruntime")


def test_unknown_policy_and_settings():
    g = int8_gemm()
    with pytest.raises(WorkloadError, match="unknown requantization policy 'tflite'"):
        run_integer(g, {"x": np.ones((4, 64), np.int8)}, "tflite")
    with pytest.raises(QsimError, match="overflow must be"):
        run_integer(g, {"x": np.ones((4, 64), np.int8)}, "onnxruntime", overflow="clamp")


def test_wider_accumulator_than_the_policy_takes():
    g = int8_gemm((1, 140_000), out_features=1)  # 127 * 127 * 140000 > 2^31
    x = np.full((1, 140_000), 127, np.int8)
    with pytest.raises(GraphError, match="node 'fc'.*int32 accumulators"):
        run_integer(g, {"x": x}, "tflite-optimized", acc_bits=40)  # FC: int32 fixed-point
    r = run_integer(g, {"x": x}, "onnxruntime", acc_bits=40)  # the float32 policy takes any width
    assert r.stats.loc[0, "overflow_events"] == 0
    assert run_integer(g, {"x": x}, "onnxruntime").stats.loc[0, "overflow_events"] == 1


# -- simulate() --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cnn_files(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    import _int_onnx as M

    d = tmp_path_factory.mktemp("sim_api")
    f = M.resnet_cnn(d / "float.onnx")
    return f, M.quantize(f, d / "quant.onnx", "qoperator", True)


def test_simulate_quantized_onnx_default_policy(cnn_files):
    """The model's own output names and float32 values (its outputs are DequantizeLinear), equal to
    onnxruntime's; the trace keeps the IR's names (the stored uint8 codes)."""
    import _int_onnx as M
    from qsim.ir.onnx_import import load_onnx

    _, qpath = cnn_files
    g = load_onnx(qpath)
    x = np.random.default_rng(3).standard_normal(g.tensor("x").shape).astype(np.float32)
    out, trace = simulate(qpath, x, trace=True)
    ref = M.ort_run(qpath, {"x": x})
    assert list(out) == list(ref)
    for name in ref:
        assert out[name].dtype == ref[name].dtype == np.float32 and out[name].shape == ref[name].shape
        assert np.array_equal(out[name], ref[name])
    assert set(g.outputs) <= set(trace) and all(trace[t].dtype == np.uint8 for t in g.outputs)
    with pytest.raises(QsimError, match="already quantized"):
        simulate(qpath, x, plan="int8")


def test_simulate_float_model_without_and_with_plan(cnn_files):
    from qsim.ir.onnx_import import load_onnx

    fpath, _ = cnn_files
    g = load_onnx(fpath)
    x = np.random.default_rng(4).standard_normal(g.tensor("x").shape).astype(np.float32)
    ref = run_float(g, {"x": x})
    out = simulate(fpath, {"x": x})
    assert list(out) == list(ref) and all(np.array_equal(out[t], ref[t]) for t in ref)
    int8 = simulate(g, x, plan="int8")
    assert all(v.dtype in (np.int8, np.uint8) for v in int8.values())
    fp8 = simulate(g, x, plan="fp8_e4m3")  # value emulation: fp32 values on the fp8 grid
    for t in ref:
        assert fp8[t].dtype == np.float32
        err = np.abs(fp8[t] - ref[t]).max() / (np.abs(ref[t]).max() + 1e-9)
        assert 0 < err < 0.25, (t, err)


def test_fp8_tensors_hold_grid_values():
    from qsim.ir.graph import Graph
    from qsim.numerics.tensor_quant import TensorQuant
    from qsim.numerics import FP8_E4M3, round_float

    g = Graph("fp8")
    g.add_input("x", (2, 16), "float8e4m3fn")
    g.add_node("Gemm", "fc", ["x"], {"out_features": 4, "bias": False}, dtype="float8e4m3fn")
    g.mark_output("fc")
    rng = np.random.default_rng(0)
    g.constants["fc.weight"] = rng.standard_normal((4, 16)).astype(np.float32)
    for t, s in (("x", 0.5), ("fc", 0.25)):
        g.quant_params[t] = TensorQuant(np.float32(s), np.float32(0), "float8e4m3fn")
    x = rng.standard_normal((2, 16)).astype(np.float32) * 8
    r = run_integer(g, {"x": x}, "onnxruntime", trace=True)
    xg = (round_float(x / 0.5, FP8_E4M3, saturate=True) * 0.5).astype(np.float32)
    assert np.array_equal(r.trace["x"], xg)
    y = (xg @ g.constants["fc.weight"].T).astype(np.float32)
    assert np.array_equal(r.outputs["fc"], (round_float(y / 0.25, FP8_E4M3, saturate=True) * 0.25).astype(np.float32))
    assert r.stats.loc[0, "mode"] == "float"


def test_simulate_tflite_default_policy(tmp_path):
    pytest.importorskip("ai_edge_litert")
    import _int_tflite as T

    path = T.int8_cnn(tmp_path / "cnn.tflite", "ties")
    x = np.random.default_rng(5).integers(-40, 41, (4, 8, 8, 3)).astype(np.int8)  # NHWC, as LiteRT
    out = simulate(path, x)
    ref = T.run_all(path, x, "reference")
    assert list(out) == list(ref)
    for name in ref:  # the model's names, NHWC, int8
        assert out[name].dtype == ref[name].dtype and out[name].shape == ref[name].shape
        assert np.array_equal(out[name], ref[name]), name


def test_mx_tensors_hold_block_values():
    from qsim.ir.graph import Graph
    from qsim.numerics.tensor_quant import TensorQuant
    from qsim.numerics import get_format, mx_cast

    g = Graph("mx")
    g.add_input("x", (2, 64), "mxfp8_e4m3")
    g.add_node("Relu", "relu", ["x"], dtype="mxfp8_e4m3")
    g.mark_output("relu")
    for t in ("x", "relu"):
        g.quant_params[t] = TensorQuant(np.float32(1), np.float32(0), "mxfp8_e4m3")
    x = np.random.default_rng(1).standard_normal((2, 64)).astype(np.float32) * 5
    r = run_integer(g, {"x": x}, "onnxruntime")
    want = np.maximum(np.asarray(mx_cast(x, get_format("mxfp8_e4m3"), axis=-1), np.float32), 0)
    assert np.array_equal(r.outputs["relu"], want)


def test_simulate_workload_with_int8_plan(cnn_files):
    from qsim.api import as_workload
    from qsim.ir.onnx_import import load_onnx

    fpath, _ = cnn_files
    w = as_workload(load_onnx(fpath), precision="int8")
    x = np.random.default_rng(6).standard_normal(w.graph.tensor("x").shape).astype(np.float32)
    out = simulate(w, {"x": x}, policy="onnxruntime")
    ref = run_float(w.graph, {"x": x})
    for t in ref:
        q = out[t]
        assert q.dtype in (np.int8, np.uint8)
