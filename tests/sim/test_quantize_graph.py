"""quantize_graph: the same representation as an onnxruntime QDQ model through the ONNX importer,
mixed plans, fp8 / weight-only plans, and execution (fake quantization vs onnxruntime and the
integer executor)."""
from __future__ import annotations

import logging

import ml_dtypes
import numpy as np
import pytest

from qsim.errors import QsimError
from qsim.ir.onnx_import import load_onnx
from qsim.sim.executor import run_float
from qsim.sim.metrics import real_value
from qsim.sim.quantize_graph import dequantized_graph, quantize_graph, run_fake_quant
import _acc_models as A  # tests/sim is on sys.path (pytest rootdir-relative import)

logging.getLogger().setLevel(logging.ERROR)  # onnxruntime.quantization's pre-processing advice


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    pytest.importorskip("onnxruntime.quantization")
    base = tmp_path_factory.mktemp("qg")
    src = A.conv_pool_fc(base / "f.onnx")
    batches = A.random_batches((2, 2, 4, 4), 3)
    return {"float": load_onnx(src), "ort": load_onnx(A.ort_quantize(src, base / "q.onnx", batches)),
            "ort_path": base / "q.onnx", "batches": batches}


# IR tensor names in the onnxruntime model for ours (it renames weights and the graph output).
ORT_NAMES = {"x": "x", "c": "c", "p": "p", "f": "f", "y": "y_QuantizeLinear_Input", "w": "w_quantized",
             "b": "b_quantized", "fw": "fw_quantized", "fb": "fb_quantized"}


def test_same_representation_as_onnxruntime_qdq(models):
    ours = quantize_graph(models["float"], "weight=int8,activation=uint8", models["batches"])
    ref = models["ort"]
    assert [(n.name, n.op) for n in ours.nodes()] == [(n.name, n.op) for n in ref.nodes()]
    assert set(ours.quant_params) == {k for k in ORT_NAMES}
    for mine, theirs in ORT_NAMES.items():
        a, b = ours.quant_params[mine], ref.quant_params[theirs]
        assert a.fmt == b.fmt and a.axis == b.axis, mine
        assert a.scale.dtype == b.scale.dtype and np.array_equal(a.scale, b.scale), mine
        assert a.zero_point.dtype == b.zero_point.dtype and np.array_equal(a.zero_point, b.zero_point), mine
        assert ours.tensor(mine).dtype == ref.tensor(theirs).dtype, mine
        if mine in ours.constants:
            assert ours.constants[mine].dtype == ref.constants[theirs].dtype
            np.testing.assert_array_equal(ours.constants[mine], ref.constants[theirs])


def test_fake_quant_matches_onnxruntime(models):
    ort = pytest.importorskip("onnxruntime")
    so = ort.SessionOptions()
    # Exact int8 products on every CPU (x86 without VNNI sums them in saturating int16 pairs,
    # qsim.kernels.pairs16, which fake quantization does not model).
    so.add_session_config_entry("session.x64quantprecision", "1")
    sess = ort.InferenceSession(str(models["ort_path"]), so, providers=["CPUExecutionProvider"])
    g = models["ort"]
    out = g.outputs[0]
    for batch in A.random_batches((2, 2, 4, 4), 4, seed=7):
        want = sess.run(None, batch)[0]
        got = real_value(g, out, run_fake_quant(g, batch)[out])
        lsb = float(g.quant_params[out].scale)
        assert np.max(np.abs(got - want)) <= lsb * 1.001  # float requantization vs integer kernels: 1 LSB


def test_mixed_plan_and_float_nodes(models):
    plan = {"default": "w4a8", "overrides": [{"name": "fc", "precision": "int8"}]}
    q = quantize_graph(models["float"], plan, models["batches"])
    assert q.constants["w"].dtype == ml_dtypes.int4 and q.tensor("w").dtype == "int4"
    assert np.abs(q.constants["w"].astype(np.int64)).max() <= 7
    assert q.constants["fw"].dtype == np.int8 and q.quant_params["fw"].axis == 0
    assert q.tensor("x").dtype == "int8" and q.tensor("b").dtype == "int32"
    keep = quantize_graph(models["float"], {"default": "int8", "overrides": [{"op": "Gemm", "precision": "fp32"}]},
                          models["batches"])
    assert keep.tensor("y").dtype == "float32" and "y" not in keep.quant_params
    assert keep.constants["fw"].dtype == np.float32 and "fw" not in keep.quant_params
    assert keep.tensor("f").dtype == "int8"  # the float Gemm reads a quantized tensor (DQ in ONNX terms)


def test_data_movement_shares_parameters(models):
    q = quantize_graph(models["float"], "int8", models["batches"])
    assert q.quant_params["p"] is q.quant_params["c"] and q.quant_params["f"] is q.quant_params["c"]
    bias, x, w = q.quant_params["b"], q.quant_params["x"], q.quant_params["w"]
    np.testing.assert_array_equal(bias.scale, (x.scale * w.scale).astype(np.float32))


def test_fp8_and_weight_only(models):
    fp8 = quantize_graph(models["float"], "fp8", models["batches"])
    assert fp8.constants["w"].dtype == ml_dtypes.float8_e4m3fn and fp8.quant_params["w"].axis == 0
    assert fp8.tensor("c").dtype == "float8e4m3fn" and fp8.constants["b"].dtype == np.float32
    traces = [run_float(models["float"], b, trace=True) for b in models["batches"]]
    amax = max(np.abs(t["c"]).max() for t in traces)
    assert float(fp8.quant_params["c"].scale) * 448 == pytest.approx(amax, rel=1e-6)  # amax -> E4M3 max
    trace = traces[0]
    w16 = quantize_graph(models["float"], "w8a16", models["batches"])
    assert w16.tensor("c").dtype == "float16" and "c" not in w16.quant_params
    assert w16.constants["w"].dtype == np.int8 and w16.constants["b"].dtype == np.float32
    y = run_fake_quant(w16, models["batches"][0])["y"]
    assert np.array_equal(y, y.astype(np.float16).astype(np.float32))  # activations rounded to fp16
    np.testing.assert_allclose(y, trace["y"], atol=0.05)


def test_per_tensor_weights(models):
    q = quantize_graph(models["float"], "int8", models["batches"], per_channel=False)
    assert q.quant_params["w"].axis is None and q.quant_params["w"].scale.shape == ()


def test_observers_change_ranges(models):
    scales = {obs: float(quantize_graph(models["float"], "int8", models["batches"], observer=obs)
                         .quant_params["c"].scale) for obs in ("minmax", "percentile", "mse")}
    assert scales["percentile"] <= scales["minmax"] and scales["mse"] <= scales["minmax"]


def test_dequantized_graph_is_the_float_reference(models):
    q = quantize_graph(models["float"], "int8", models["batches"])
    f = dequantized_graph(q)
    assert not f.quant_params and f.tensor("x").dtype == "float32"
    batch = models["batches"][0]
    np.testing.assert_allclose(run_float(f, batch)["y"], run_float(models["float"], batch)["y"], atol=0.05)


def test_agrees_with_integer_executor(models):
    integer = pytest.importorskip("qsim.sim.integer")
    q = quantize_graph(models["float"], "int8", models["batches"])
    for batch in A.random_batches((2, 2, 4, 4), 3, seed=9):
        fake = run_fake_quant(q, batch, trace=True)
        res = integer.run_integer(q, batch, "onnxruntime", trace=True)
        for t in ("c", "p", "y"):
            assert np.max(np.abs(fake[t].astype(np.int64) - res.trace[t].astype(np.int64))) <= 1, t


def test_errors(models):
    g, batches = models["float"], models["batches"]
    with pytest.raises(QsimError, match="already quantized"):
        quantize_graph(models["ort"], "int8", batches)
    with pytest.raises(QsimError, match="at least one calibration batch"):
        quantize_graph(g, "int8", [])
    with pytest.raises(QsimError, match="shape"):
        quantize_graph(g, "int8", [{"x": np.zeros((1, 2, 4, 4), np.float32)}])
    with pytest.raises(QsimError, match="MX"):
        quantize_graph(g, "mxfp8", batches)


def test_grouped_weights(models):
    q = quantize_graph(models["float"], "w4a16", models["batches"], weight_block=8)
    fw = q.quant_params["fw"]  # (5, 16): two groups of 8 input features per output row
    assert (fw.axis, fw.block_size, fw.scale.shape, fw.fmt.name) == (1, 8, (5, 2), "int4")
    w = models["float"].constants["fw"]
    np.testing.assert_array_equal(fw.scale, (np.abs(w.reshape(5, 2, 8)).max(-1) / 7).astype(np.float32))
    assert q.constants["fb"].dtype == np.float32  # a grouped weight has no single bias scale
    per_channel = quantize_graph(models["float"], "w4a16", models["batches"])
    x = models["batches"][0]
    ref = run_float(models["float"], x)["y"]
    err = [np.abs(run_fake_quant(g, x)["y"] - ref).mean() for g in (q, per_channel)]
    assert err[0] < err[1]


def test_bias_past_int32_saturates_without_a_cast_warning():
    """A bias whose quotient passes int32 (an int16 plan's tiny s_in * s_w) saturates at the int32 ends;
    float32 cannot hold 2^31 - 1, so a float32 clip would cast 2^31 (numpy: invalid value)."""
    import warnings

    from qsim.numerics.tensor_quant import TensorQuant
    from qsim.sim.quantize_graph import _quantize_bias

    xq = TensorQuant(np.float32(1e-6), np.int16(0), "int16")
    wq = TensorQuant(np.array([1e-6, 1e-6, 0.0], np.float32), np.zeros(3, np.int16), "int16", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        q, _ = _quantize_bias(np.array([5.0, -5.0, 0.0], np.float32), xq, wq)
    assert q.tolist() == [2**31 - 1, -2**31, 0]
