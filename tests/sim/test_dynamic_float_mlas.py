"""The float kernels onnxruntime runs between dynamically quantized layers (MLAS Erf, Softmax,
SGEMM and FusedMatMul's alpha), bit for bit: a last-bit difference there would change the codes
of the next DynamicQuantizeLinear."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

pytest.importorskip("onnxruntime")

import qsim  # noqa: E402
from qsim.sim import float_mlas as M  # noqa: E402

from _dynamic_ort import ort_session  # noqa: E402


def _one_node(op: str, n_inputs: int, **attrs) -> bytes:
    ins = [helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, None) for i in range(n_inputs)]
    node = helper.make_node(op, [i.name for i in ins], ["y"], **attrs)
    graph = helper.make_graph([node], op, ins, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_erf_equals_mlas():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(50_000).astype(np.float32) * 2, np.linspace(-5, 5, 20_001, dtype=np.float32),
                        np.array([0.0, -0.0, 0.921875, -0.921875, 3.925, 40.0, -40.0], np.float32)])
    want = ort_session(_one_node("Erf", 1)).run(None, {"x0": x})[0]
    np.testing.assert_array_equal(M.erf([x], {}, {})[0], want)


@pytest.mark.parametrize("d", [1, 5, 16, 17, 32, 47, 48, 49, 100, 384])
def test_softmax_equals_mlas_with_masked_entries(d):
    x = (np.random.default_rng(d).standard_normal((3, 5, d)) * 6).astype(np.float32)
    x[0, 0, : d // 2] = -np.inf  # an attention mask
    want = ort_session(_one_node("Softmax", 1, axis=-1)).run(None, {"x0": x})[0]
    np.testing.assert_array_equal(M.softmax([x], {}, {"axis": -1})[0], want)


@pytest.mark.parametrize("m, k, n", [(32, 32, 32), (5, 7, 3), (64, 300, 17), (8, 1024, 8)])
def test_matmul_equals_mlas_sgemm(m, k, n):
    rng = np.random.default_rng(k)
    a, b = rng.standard_normal((2, m, k)).astype(np.float32), rng.standard_normal((2, k, n)).astype(np.float32)
    want = ort_session(_one_node("MatMul", 2)).run(None, {"x0": a, "x1": b})[0]
    np.testing.assert_array_equal(M.matmul([a, b], {}, {})[0], want)


def test_scaled_attention_scores_equal_fused_matmul(tmp_path):
    """Q * s and K * s feeding one MatMul: onnxruntime folds both into FusedMatMul(alpha = s * s)."""
    s = numpy_helper.from_array(np.float32(0.4204482), "s")
    nodes = [helper.make_node("Mul", ["q", "s"], ["qs"]), helper.make_node("Relu", ["k"], ["kr"]),
             helper.make_node("Mul", ["kr", "s"], ["ks"]),
             helper.make_node("MatMul", ["qs", "ks"], ["y"])]
    graph = helper.make_graph(nodes, "att", [helper.make_tensor_value_info("q", TensorProto.FLOAT, [2, 4, 8, 32]),
                                             helper.make_tensor_value_info("k", TensorProto.FLOAT, [2, 4, 32, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4, 8, 8])], [s])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "a.onnx"))
    rng = np.random.default_rng(1)
    feeds = {"q": rng.standard_normal((2, 4, 8, 32)).astype(np.float32),
             "k": rng.standard_normal((2, 4, 32, 8)).astype(np.float32)}
    want = ort_session(str(tmp_path / "a.onnx")).run(None, feeds)[0]
    got = qsim.simulate(tmp_path / "a.onnx", feeds)["y"]
    np.testing.assert_array_equal(got, want)
