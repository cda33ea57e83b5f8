"""Dynamic activations asked for by a precision plan: spelling, qsim's own quantizer (equal to
onnxruntime's ``quantize_dynamic`` for the per-tensor recipe), per-token scales, and the cost
model's charge for the min/max pass (hand-checked)."""
from __future__ import annotations

import numpy as np
import pytest

import qsim
from qsim.cost import estimate_graph
from qsim.errors import WorkloadError
from qsim.hw.profile import load_profile
from qsim.ir import Graph
from qsim.precision import Dynamic, parse_plan, parse_precision, plan_spec
from qsim.sim.dynamic_graph import dynamic_graph
from qsim.sim.executor import run_float
from qsim.sim.int_dynamic import dynamic_params

def _linear(tokens=6, k=16, n=8, seed=0) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph("linear")
    g.add_input("x", (2, tokens, k))
    g.add_node("Gemm", "fc", ["x"], {"out_features": n})
    g.constants["fc.weight"] = rng.standard_normal((n, k)).astype(np.float32)
    g.constants["fc.bias"] = rng.standard_normal(n).astype(np.float32)
    g.mark_output("fc")
    return g.validate()


@pytest.mark.parametrize("text, dynamic", [("w8a8-dynamic", Dynamic.PER_TENSOR),
                                           ("int8-dynamic-per-token", Dynamic.PER_TOKEN),
                                           ("weight=int8,activation=int8,dynamic=per_token", Dynamic.PER_TOKEN)])
def test_plan_spelling_round_trips(text, dynamic):
    plan = parse_plan(text)
    assert plan.default.dynamic is dynamic and parse_plan(plan_spec(plan)) == plan
    assert parse_plan({"default": "fp32", "overrides": [{"op": "Gemm", "precision": text}]}).overrides[0][1].dynamic


@pytest.mark.parametrize("bad", ["fp16-dynamic", "int16-dynamic", "weight=int8,activation=int8,dynamic=per_row"])
def test_bad_dynamic_plans_are_refused(bad):
    with pytest.raises(WorkloadError, match="dynamic"):
        parse_precision(bad)


def test_cost_charges_the_min_max_pass_hand_checked():
    g = _linear(tokens=32, k=64, n=16)
    prof = load_profile("mobile")
    static = estimate_graph(g, parse_plan("w8a8"), prof).layers.iloc[0]
    dyn = estimate_graph(g, parse_plan("w8a8-dynamic"), prof).layers.iloc[0]
    elems = 2 * 32 * 64  # the Gemm's input
    assert static.vector_ops == 2 * 32 * 16  # bias adds
    assert dyn.vector_ops == 2 * 32 * 16 + 2 * elems  # + a min and a max compare per input element
    assert static.input_bytes == elems and dyn.input_bytes == 2 * elems  # the input read twice (int8)
    assert dyn.macs == static.macs and dyn.weight_bytes == static.weight_bytes
    assert dyn.compute_s > static.compute_s and dyn.energy_j > static.energy_j
    per_token = estimate_graph(g, parse_plan("w8a8-dynamic-per-token"), prof).layers.iloc[0]
    assert per_token.vector_ops == dyn.vector_ops and per_token.input_bytes == dyn.input_bytes


def test_per_token_scales_one_per_row():
    x = np.array([[[-1.0, 1.55, 0.0], [0.0, 0.0, 0.0], [2.0, 4.0, 6.0]]], np.float32)
    scale, zp = dynamic_params(x, per_token=True)
    assert scale.shape == zp.shape == (1, 3, 1)
    assert scale[0, 0, 0] == np.float32(np.float32(2.55) / np.float32(255)) and zp[0, 0, 0] == 100
    assert scale[0, 1, 0] == 1.0 and zp[0, 1, 0] == 0  # an all-zero row
    assert scale[0, 2, 0] == np.float32(np.float32(6.0) / np.float32(255)) and zp[0, 2, 0] == 0


@pytest.mark.parametrize("plan", ["w8a8-dynamic", "w8a8-dynamic-per-token"])
def test_dynamic_plan_simulates_close_to_float(plan):
    g = _linear()
    x = np.random.default_rng(1).standard_normal((2, 6, 16)).astype(np.float32)
    x[0, 0] *= 50  # one outlier token: per-token scales keep the other rows fine
    want = run_float(g, {"x": x})["fc"]
    qg = dynamic_graph(g, plan)
    ops = [n.op for n in qg.nodes()]
    assert ops == ["DynamicQuantizeLinear", "MatMulIntegerDynamic", "Cast", "MulConst", "Mul", "AddConst"]
    got = qsim.simulate(g, {"x": x}, plan=plan)["fc"]
    err = np.abs(got - want)[1].max()  # the rows without the outlier
    bound = 0.25 if plan.endswith("token") else 1.0
    assert 0 < err < bound


def test_per_token_beats_per_tensor_with_an_outlier_token(monkeypatch):
    # Exact int8 products (a VNNI target): on x86 without VNNI onnxruntime's saturating int16 pairs
    # (qsim.kernels.pairs16) cost the full-range per-token rows more than the granularity gains.
    monkeypatch.setenv("QSIM_ORT_CPU", "vnni")
    g = _linear()
    x = np.random.default_rng(2).standard_normal((2, 6, 16)).astype(np.float32)
    x[0, 0] *= 100
    want = run_float(g, {"x": x})["fc"]
    errs = {p: np.abs(qsim.simulate(g, {"x": x}, plan=p)["fc"] - want).mean()
            for p in ("w8a8-dynamic", "w8a8-dynamic-per-token")}
    assert errs["w8a8-dynamic-per-token"] < errs["w8a8-dynamic"] / 5


def test_dynamic_kernels_follow_the_ort_cpu_argument(monkeypatch):
    """``ort_cpu=`` reaches the dynamic-quantization kernels (MatMulInteger's int16 pairs) over the
    environment: "vnni" by argument under QSIM_ORT_CPU=avx2 equals "vnni" by the environment."""
    g = _linear()
    x = np.random.default_rng(2).standard_normal((2, 6, 16)).astype(np.float32)
    x[0, 0] *= 100
    plan = "w8a8-dynamic-per-token"
    monkeypatch.setenv("QSIM_ORT_CPU", "vnni")
    by_env = qsim.simulate(g, {"x": x}, plan=plan)["fc"]
    monkeypatch.setenv("QSIM_ORT_CPU", "avx2")
    by_arg = {cpu: qsim.simulate(g, {"x": x}, plan=plan, ort_cpu=cpu)["fc"] for cpu in ("vnni", "avx2")}
    np.testing.assert_array_equal(by_arg["vnni"], by_env)
    np.testing.assert_array_equal(by_arg["avx2"], qsim.simulate(g, {"x": x}, plan=plan)["fc"])
    assert not np.array_equal(by_arg["vnni"], by_arg["avx2"])  # the pairs saturate on these rows


def test_plan_reproduces_onnxruntime_quantize_dynamic(tmp_path):
    """qsim's own per-tensor recipe on the float model = onnxruntime running quantize_dynamic's file."""
    pytest.importorskip("onnxruntime")
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from test_dynamic_ort import _small_model

    from _dynamic_ort import ort_session

    _small_model(tmp_path / "f.onnx")
    quantize_dynamic(str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx"), weight_type=QuantType.QInt8,
                     op_types_to_quantize=["Conv", "MatMul", "Gemm"])
    x = np.random.default_rng(4).standard_normal((2, 3, 8, 8)).astype(np.float32)
    want = ort_session(str(tmp_path / "q.onnx")).run(None, {"x": x})[0]
    got = qsim.simulate(tmp_path / "f.onnx", {"x": x}, plan="w8a8-dynamic")["y"]
    np.testing.assert_array_equal(got, want)
    with pytest.raises(WorkloadError, match="per-token dynamic quantization applies to token rows"):
        qsim.simulate(tmp_path / "f.onnx", {"x": x}, plan="w8a8-dynamic-per-token")
