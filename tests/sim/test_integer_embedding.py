"""Embedding in the integer executor vs onnxruntime: a QDQ model ``Gather(DequantizeLinear(table_q),
ids) -> QuantizeLinear`` followed by a quantized MatMul. With the table's parameters on the Gather
output, onnxruntime drops the QDQ pair and gathers int8/uint8 rows (the output codes are the table's
rows); with other parameters it runs DQ -> Gather -> Q in float (qsim: the kernel falls back to the
float island). Every code of the Gather and MatMul outputs must equal onnxruntime's."""
from __future__ import annotations

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")

import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from qsim.ir.onnx_import import load_onnx  # noqa: E402
from qsim.kernels import reference  # noqa: E402
from qsim.sim import int_ops as O  # noqa: E402
from qsim.sim.int_common import Step  # noqa: E402
from qsim.sim.int_runtime import get_runtime  # noqa: E402
from qsim.sim.integer import run_integer  # noqa: E402

V, D, B, S, N = 50, 32, 2, 9, 24  # vocabulary, embedding width, batch, sequence, MatMul outputs


def _model(path, dtype: str, seed: int, requant: bool = False):
    """The QDQ file and ids (negative ids included: ONNX Gather counts them from the end). The
    MatMul runs fused (QLinearMatMul) for uint8; onnxruntime 1.32 leaves the int8 unit as
    DQ -> MatMul -> Q, which the integer pipeline matches on these seeds."""
    rng = np.random.default_rng(seed)
    np_t, onnx_t = (np.int8, TensorProto.INT8) if dtype == "int8" else (np.uint8, TensorProto.UINT8)
    lo, hi = (-128, 128) if dtype == "int8" else (0, 256)
    zt, zy = (-5, -3) if dtype == "int8" else (131, 120)

    def c(v, name, t=np.float32):
        return numpy_helper.from_array(np.array(v, t), name)

    inits = [numpy_helper.from_array(rng.integers(lo, hi, (V, D)).astype(np_t), "table_q"),
             c(0.0213, "ts"), c(zt, "tz", np_t), c(0.0337 if requant else 0.0213, "es"), c(zt + requant, "ez", np_t),
             numpy_helper.from_array(rng.integers(-127, 128, (D, N)).astype(np.int8), "w_q"),
             c(0.0071, "ws"), c(0, "wz", np.int8), c(0.37, "ys"), c(zy, "yz", np_t)]
    n = helper.make_node
    nodes = [n("DequantizeLinear", ["table_q", "ts", "tz"], ["table"]),
             n("Gather", ["table", "ids"], ["e"], axis=0),
             n("QuantizeLinear", ["e", "es", "ez"], ["e_q"]),
             n("DequantizeLinear", ["e_q", "es", "ez"], ["e_dq"]),
             n("DequantizeLinear", ["w_q", "ws", "wz"], ["w"]),
             n("MatMul", ["e_dq", "w"], ["m"]),
             n("QuantizeLinear", ["m", "ys", "yz"], ["m_q"]),
             n("DequantizeLinear", ["m_q", "ys", "yz"], ["y"])]
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(nodes, "embedding", [vi("ids", TensorProto.INT64, [B, S])],
                              [vi("y", TensorProto.FLOAT, [B, S, N]), vi("e_q", onnx_t, [B, S, D]),
                               vi("m_q", onnx_t, [B, S, N])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return rng.integers(-V, V, (B, S)).astype(np.int64)


def _ort(path, ids):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return sess.run(["e_q", "m_q"], {"ids": ids})


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
@pytest.mark.parametrize("requant", [False, True])
def test_embedding_matches_onnxruntime(tmp_path, dtype, requant):
    compared = bad = 0
    for seed in range(4):
        ids = _model(tmp_path / "emb.onnx", dtype, seed, requant)
        g = load_onnx(tmp_path / "emb.onnx")
        emb = next(nd for nd in g.nodes() if nd.op == "Embedding")
        ref_e, ref_m = _ort(tmp_path / "emb.onnx", ids)
        for impl in ("numba", "numpy"):
            r = run_integer(g, {"ids": ids}, "onnxruntime", impl=impl)
            for ours, ref in ((r.outputs[emb.outputs[0]], ref_e), (r.outputs[g.outputs[0]], ref_m)):
                assert ours.dtype == ref.dtype and ours.shape == ref.shape
                bad += int(np.sum(ours != ref))
                compared += ref.size
    print(f"[embedding] {dtype} requant={requant}: {compared} codes compared (numba + numpy), {bad} mismatches")
    assert bad == 0


def _step(g, node, ids):
    return Step(g, node, [ids], get_runtime("onnxruntime"), reference, "numpy", 32, "wrap")


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_embedding_kernel_gathers_table_codes(tmp_path, dtype):
    """The kernel itself: the table's rows, in the table's storage type, for int64 ids and for ids
    held as fp32 (how the executor stores a feed without quantization)."""
    ids = _model(tmp_path / "emb.onnx", dtype, 0)
    g = load_onnx(tmp_path / "emb.onnx")
    node = next(nd for nd in g.nodes() if nd.op == "Embedding")
    table = np.asarray(g.constants[node.weights["weight"]])
    ref_e, _ = _ort(tmp_path / "emb.onnx", ids)
    for held in (ids, ids.astype(np.float32)):
        (out,) = O.embedding(_step(g, node, held))
        assert out.dtype == table.dtype == ref_e.dtype
        assert np.array_equal(out, table[ids]) and np.array_equal(out, ref_e)
    with pytest.raises(Exception, match="ids must lie"):
        O.embedding(_step(g, node, np.array([[V]], np.int64)))


def test_embedding_other_output_params_fall_back(tmp_path):
    _model(tmp_path / "emb.onnx", "uint8", 0, requant=True)
    g = load_onnx(tmp_path / "emb.onnx")
    node = next(nd for nd in g.nodes() if nd.op == "Embedding")
    with pytest.raises(O.Fallback):
        O.embedding(_step(g, node, np.zeros((B, S), np.int64)))


def test_embedding_runs_in_integer_mode(tmp_path):
    ids = _model(tmp_path / "emb.onnx", "uint8", 0)
    g = load_onnx(tmp_path / "emb.onnx")
    stats = run_integer(g, {"ids": ids}, "onnxruntime").stats
    assert (stats.loc[stats["op"] == "Embedding", "mode"] == "integer").all()
