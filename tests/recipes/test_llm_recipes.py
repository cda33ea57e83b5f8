"""The LLM recipes on hand-checkable cases: per-token dynamic quantization, SmoothQuant's factors and
migration, GPTQ's error feedback, AWQ's search, KV-cache quantization, keep."""
import numpy as np
import pytest
from _recipe_graphs import norm_linear, tiny_decoder

from qsim import recipes
from qsim.errors import QsimError
from qsim.ir.graph import Graph
from qsim.numerics.formats import IntFormat
from qsim.numerics.tensor_quant import TensorQuant
from qsim.recipes._common import dynamic_qdq
from qsim.recipes.awq import search_scale
from qsim.recipes.gptq import gptq
from qsim.recipes.kv_cache import cache_projections, per_token_head
from qsim.recipes.rtn import rtn
from qsim.recipes.smoothquant import smooth, smoothing_factors
from qsim.sim.executor import run_float


def test_dynamic_per_token_scales_each_row_from_its_own_amax():
    # row 0: amax 127 -> scale 1, -63.5 is a tie (half to even: -64); row 1: scale 0.002, exact
    x = np.array([[127.0, -63.5, 10.0], [0.0, 0.0, 0.254]], np.float32)
    got = dynamic_qdq(x, "int8", (-1,))
    np.testing.assert_array_equal(got[0], [127.0, -64.0, 10.0])
    np.testing.assert_allclose(got[1], [0.0, 0.0, 0.254], rtol=1e-6)
    # one scale for the tensor: row 1 rounds to 0 on row 0's grid
    np.testing.assert_array_equal(dynamic_qdq(x, "int8", None)[1], [0.0, 0.0, 0.0])


def test_dynamic_per_tensor_asymmetric_uses_the_observed_range():
    x = np.array([0.0, 2.55], np.float32)  # uint8: scale 0.01, zero point 0
    np.testing.assert_allclose(dynamic_qdq(x, "uint8", None, symmetric=False), x, rtol=1e-6)


def test_smoothing_factors_follow_equation_4():
    s = smoothing_factors(np.array([4.0, 1.0, 0.0]), [np.array([[1.0, 4.0, 2.0]])], alpha=0.5)
    np.testing.assert_allclose(s, [2.0, 0.5, 1.0])  # sqrt(4)/sqrt(1), sqrt(1)/sqrt(4), a zero channel stays


@pytest.mark.parametrize("norm", ["LayerNorm", "RMSNorm"])
def test_smoothquant_folds_into_the_norm_and_keeps_the_function(norm):
    g, calib = norm_linear(norm)
    out = smooth(g, calib, alpha=0.5)
    before, after = run_float(g, calib[0])["sum"], run_float(out, calib[0])["sum"]
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4)
    s = g.constants["ln.gamma"] / out.constants["ln.gamma"]
    np.testing.assert_allclose(out.constants["q.weight"], g.constants["q.weight"] * s, rtol=1e-5)
    assert s[0] > 3 * np.median(s)  # the outlier channel's scale moved into the weights


def test_smoothquant_refuses_a_linear_without_a_norm_naming_it():
    g = Graph("relu-linear")
    g.add_input("x", (2, 4))
    g.add_node("Relu", "act", ["x"])
    g.add_node("Gemm", "fc", ["act"], {"out_features": 3})
    g.mark_output("fc")
    g.constants["fc.weight"], g.constants["fc.bias"] = np.ones((3, 4), np.float32), np.zeros(3, np.float32)
    with pytest.raises(QsimError, match="node 'fc'"):
        smooth(g.validate(), [{"x": np.ones((2, 4), np.float32)}])


def test_smoothquant_refuses_a_named_node_whose_norm_output_also_feeds_a_residual():
    g, calib, _ = tiny_decoder()
    with pytest.raises(QsimError, match="node 'l0.fc2'"):  # fed by GELU
        smooth(g, calib, nodes=["l0.fc2"])
    smooth(g, calib, nodes=["l0.q", "l0.o"])  # LayerNorm (q, k, v) and the value projection (o)


def test_gptq_with_uncorrelated_inputs_is_round_to_nearest():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 6)).astype(np.float32)
    x = np.diag(rng.uniform(1, 2, 6))  # X^T X diagonal: no error to push onto other columns
    tq = TensorQuant(np.full(4, 0.25, np.float32), np.zeros(4, np.int8), IntFormat(4), axis=0)
    np.testing.assert_array_equal(gptq(w, x, tq, damp=1e-9), np.clip(np.rint(w / 0.25), -8, 7))


def test_gptq_pushes_the_rounding_error_onto_a_correlated_column():
    # two identical input channels: 0.6 + 0.6 = 1.2; RTN rounds both up (sum 2), GPTQ compensates (sum 1)
    w = np.array([[0.6, 0.6]], np.float32)
    x = np.ones((8, 2))
    tq = TensorQuant(np.ones(1, np.float32), np.zeros(1, np.int8), IntFormat(4), axis=0)
    np.testing.assert_array_equal(gptq(w, x, tq, damp=1e-6), [[1.0, 0.0]])


@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_lowers_the_layer_output_error_against_rtn(act_order):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, 32)) @ rng.normal(size=(32, 32))  # correlated inputs
    w = rng.normal(size=(16, 32)).astype(np.float32)
    from qsim.sim.quantize_graph import quantize_weight

    _, tq = quantize_weight(w, "int4", per_channel=True, block=8)
    codes = gptq(w, x, tq, act_order=act_order)
    from qsim.numerics.quantize import dequantize

    err_gptq = np.sum((x @ (dequantize(codes.astype(np.int64), tq) - w).T) ** 2)
    err_rtn = np.sum((x @ (rtn(w, "int4", 8) - w).T) ** 2)
    assert -8 <= codes.min() and codes.max() <= 7 and err_gptq < 0.7 * err_rtn  # int4 codes, as the reference


def test_rtn_reference_is_group_round_to_nearest():
    w = np.array([[7.0, 3.5, -1.0, 0.5]], np.float32)  # groups of 2: scales 1 and 1/7
    np.testing.assert_allclose(rtn(w, "int4", 2), [[7.0, 4.0, -1.0, 3 / 7]], rtol=1e-6)  # 3.5 -> 4 (even)


def test_awq_scales_protect_the_salient_channel():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(128, 16))
    x[:, 3] *= 40.0  # a salient (large-activation) channel
    w = rng.normal(size=(8, 16)).astype(np.float32)
    s, r = search_scale(x, [w], "int4", group=16)
    loss = lambda ws: np.sum((x @ (ws - w).T) ** 2)  # noqa: E731
    assert r > 0 and s[3] == s.max()
    assert loss(rtn(w * s, "int4", 16) / s) < loss(rtn(w, "int4", 16))


def test_kv_cache_per_token_head_and_its_projections():
    x = np.array([[[7.0, -3.5, 0.25, 8.0]]], np.float32)  # one token, two heads of 2
    got = per_token_head(x, "int4", head_dim=2)  # head 0: scale 1 (-3.5 ties to even: -4); head 1: 8/7
    np.testing.assert_allclose(got, [[[7.0, -4.0, 0.0, 8.0]]], rtol=1e-6)
    g, _, _ = tiny_decoder()
    assert cache_projections(g) == {"l0.k": 16, "l0.v": 16, "l1.k": 16, "l1.v": 16}


def test_kv_cache_refuses_a_graph_without_attention():
    g, calib = norm_linear()
    with pytest.raises(QsimError, match="no attention MatMul"):
        recipes.apply(g, "fp32", calib, [{"name": "kv_cache"}])


def test_keep_overrides_named_nodes_and_refuses_unknown_ones():
    g, calib, _ = tiny_decoder()
    applied = recipes.apply(g, "w8a8", calib, [{"name": "keep", "names": ["logits"], "ops": ["Softmax"]}])
    assert applied.graph.tensor("logits").dtype == "float32" and "logits.weight" not in applied.graph.quant_params
    assert "l0.q.weight" in applied.graph.quant_params
    with pytest.raises(QsimError, match="no node named 'lm_head'"):
        recipes.apply(g, "w8a8", calib, [{"name": "keep", "names": ["lm_head"]}])


def test_awq_clip_search_never_loses_and_clips_a_lone_outlier_weight():
    from qsim.recipes.awq import search_clip

    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 16))
    w = (rng.normal(size=(4, 16)) * 0.1).astype(np.float32)
    w[0, 5] = 1.0  # one large weight stretches its group's grid: the other 15 round to 0
    clipped = search_clip(x, w, "int4", 16)
    err = lambda v: np.sum((x @ (rtn(v, "int4", 16) - w).T) ** 2, axis=0)  # noqa: E731
    assert np.all(err(clipped) <= err(w) + 1e-9) and err(clipped)[0] < err(w)[0]
    assert np.abs(clipped[0]).max() < 1.0 and np.array_equal(np.abs(clipped).max(axis=1)[1:] > 0, [True] * 3)
