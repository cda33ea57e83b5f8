"""Every format a precision plan can name is supported end to end or refused when the plan is parsed:
sub-byte integer weights (int2, int3, uint2 ...) are costed at their packed size, written by
quantize_graph, and run by the integer executor bit-exactly (numba = the numpy reference)."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from qsim.cost import estimate_graph
from qsim.errors import QsimError, WorkloadError
from qsim.hw.profile import load_profile
from qsim.ir.onnx_import import load_onnx
from qsim.numerics import get_policy
from qsim.numerics.formats import IntFormat
from qsim.precision import parse_plan
from qsim.sim.integer import run_integer
from qsim.sim.quantize_graph import quantize_graph, run_fake_quant
from qsim.sim.simulate import simulate
import _acc_models as A  # tests/sim is on sys.path (pytest rootdir-relative import)

logging.getLogger().setLevel(logging.ERROR)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    pytest.importorskip("onnx")
    src = A.conv_pool_fc(tmp_path_factory.mktemp("pf") / "f.onnx")
    return load_onnx(src), A.random_batches((2, 2, 4, 4), 3)


@pytest.mark.parametrize("plan,weight,act", [
    ("w2a8", "int2", "int8"), ("w3a8", "int3", "int8"), ("weight=uint2,activation=uint8", "uint2", "uint8"),
    ("int4", "int4", "int4"), ("weight=int2,activation=int16", "int2", "int16"),
])
@pytest.mark.parametrize("policy", ["onnxruntime", "tflite-reference", "fbgemm"])
def test_sub_byte_weights_end_to_end(model, plan, weight, act, policy):
    graph, batches = model
    q = quantize_graph(graph, plan, batches)
    wq = q.quant_params["w"]
    assert q.tensor("w").dtype == weight and wq.fmt == IntFormat(int(weight[-1]), weight[0] == "i")
    codes = np.asarray(q.constants["w"]).astype(np.int64)
    assert codes.min() >= wq.fmt.qmin and codes.max() <= wq.fmt.qmax and q.tensor("x").dtype == act
    fast = run_integer(q, batches[0], policy, trace=True, impl="numba")
    ref = run_integer(q, batches[0], policy, trace=True, impl="numpy")
    for t, value in ref.trace.items():
        assert value.dtype == fast.trace[t].dtype and np.array_equal(value, fast.trace[t]), t


def test_w2a8_gemm_by_hand():
    """An int2 weight Gemm: the accumulator (x - zx) . w computed by hand, onnxruntime requantization."""
    from qsim.ir import Graph

    g = Graph("g")
    g.add_input("x", (2, 4))
    g.add_node("Gemm", "fc", ["x"], {"out_features": 3, "bias": False})
    g.mark_output("fc")
    w = np.array([[1.0, -2.0, 0.5, 0.0], [-1.0, 1.0, 1.0, -2.0], [0.0, 0.5, -1.5, 2.0]], np.float32)
    g.constants[g.nodes()[0].weights["weight"]] = w
    x = np.array([[0.5, -1.0, 2.0, 1.5], [-2.0, 0.25, 1.0, -0.5]], np.float32)
    q = quantize_graph(g, "w2a8", [{"x": x}], per_channel=False)
    wq, xq, yq = (q.quant_params[t] for t in (g.nodes()[0].weights["weight"], "x", "fc"))
    codes = np.asarray(q.constants[g.nodes()[0].weights["weight"]]).astype(np.int64)
    assert wq.fmt.name == "int2" and set(np.unique(codes)) <= {-1, 0, 1}  # symmetric int2: -1..1
    xi = run_integer(q, {"x": x}, "onnxruntime", trace=True, impl="numpy").trace["x"].astype(np.int64)
    acc = (xi - int(xq.zero_point)) @ codes.T
    want = get_policy("onnxruntime").requantize(acc, xq.scale, wq.scale, yq.scale, int(yq.zero_point),
                                                yq.fmt.qmin, yq.fmt.qmax)
    for impl in ("numpy", "numba"):
        got = run_integer(q, {"x": x}, "onnxruntime", impl=impl).outputs["fc"]
        assert got.dtype == np.int8 and got.astype(np.int64).tolist() == want.tolist()
    assert np.array_equal(run_fake_quant(q, {"x": x})["fc"], got)


def test_w2a8_is_costed_at_packed_size(model):
    graph, _ = model
    rows = estimate_graph(graph, parse_plan("w2a8"), load_profile("iot")).layers.set_index("name")
    conv = graph.nodes()[0]
    numel = int(np.prod(graph.tensor(conv.weights["weight"]).shape))
    bias = graph.tensor(conv.weights["bias"]).numel if "bias" in conv.weights else 0
    assert rows.loc[conv.name, "weight_bytes"] == -(-numel * 2 // 8) + 4 * bias
    assert rows.loc[conv.name, "weight_format"] == "int2"


@pytest.mark.parametrize("plan,message", [
    ("tf32", "does not model tf32"), ("mxfp8", "does not support MX formats"),
    ("weight=int8,activation=int24", "integer weights and activations of 2..16 bits"),
])
def test_simulator_refuses_before_calibrating(model, plan, message):
    graph, batches = model
    parse_plan(plan)  # the cost model takes it
    with pytest.raises(WorkloadError, match=message):
        simulate(graph, batches[0], plan=plan)
    with pytest.raises(WorkloadError, match=message):
        quantize_graph(graph, plan, [])  # refused before it asks for calibration data


@pytest.mark.parametrize("spec,message", [
    ("weight=fp4_e2m1,activation=fp16", "exists only as an MX element type"),
    ("int64", "precision plans take integers of 2..32 bits"), ("int1", "unknown number format 'int1'"),
])
def test_plan_refuses_formats_no_stage_handles(spec, message):
    with pytest.raises(QsimError, match=message):
        parse_plan(spec)
