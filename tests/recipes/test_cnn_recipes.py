"""CNN recipes: TensorRT entropy calibration, empirical bias correction and cross-layer equalization
(Nagel et al. 2019), on hand-checkable cases, with their refusals; and composed on a small MLP."""
from __future__ import annotations

import math

import numpy as np
import pytest

from qsim.errors import QsimError
from qsim.ir.graph import Graph
from qsim.recipes import bias_correction, entropy, equalization
from qsim.sim.executor import run_float


def mlp(w1, b1, w2, b2, relu=True, batch=4) -> Graph:
    w1, w2 = np.asarray(w1, np.float32), np.asarray(w2, np.float32)
    g = Graph("mlp")
    g.add_input("x", (batch, w1.shape[1]))
    g.add_node("Gemm", "fc1", ["x"], {"out_features": w1.shape[0]})
    g.add_node("Relu", "relu", ["fc1"]) if relu else g.add_node("Sigmoid", "sig", ["fc1"])
    g.add_node("Gemm", "fc2", ["relu" if relu else "sig"], {"out_features": w2.shape[0]})
    g.mark_output("fc2")
    for k, v in {"fc1.weight": w1, "fc1.bias": b1, "fc2.weight": w2, "fc2.bias": b2}.items():
        g.constants[k] = np.asarray(v, np.float32)
    return g.validate()


# ---- entropy (TensorRT)
def test_candidate_q_spreads_each_level_over_its_nonzero_bins():
    assert entropy.candidate_q(np.array([2.0, 0, 4, 4]), 2).tolist() == [2.0, 0.0, 4.0, 4.0]
    assert entropy.candidate_q(np.array([2.0, 6, 0, 4]), 2).tolist() == [4.0, 4.0, 0.0, 4.0]


def test_kl_divergence_by_hand():
    assert entropy.kl_divergence(np.array([1.0, 3]), np.array([1.0, 3])) == 0.0
    want = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert entropy.kl_divergence(np.array([1.0, 1]), np.array([1.0, 3])) == pytest.approx(want, rel=1e-12)
    assert entropy.kl_divergence(np.array([1.0, 1]), np.array([1.0, 0])) == math.inf


def test_entropy_threshold_clips_where_the_data_ends_and_keeps_a_flat_histogram():
    edges = np.linspace(0.0, 2048.0, 2049)  # bin width 1
    short = np.zeros(2048)
    short[:128] = np.arange(128, 0, -1)  # all mass in the first 128 bins, counts 128, 127, ..., 1
    # Q == P at i = 128 (one bin per level) and at i = 129, where bins 0 and 1 share level 0 and hold
    # equal counts (the zero bin takes bin 1's 127); from i = 130 a level mixes unequal bins: the last
    # minimum is i = 129, threshold = its upper edge
    assert entropy.entropy_threshold(short, edges) == 129.0
    spike = short.copy()
    spike[0] = 1e6  # a ReLU's zeros: the zero bin takes its neighbour's count, the answer stays
    assert entropy.entropy_threshold(spike, edges) == 129.0
    flat = np.ones(2048)  # Q == P at every i (a tie): the last minimum, keep everything
    assert entropy.entropy_threshold(flat, edges) == 2048.0


def test_entropy_apply_gives_symmetric_int8_ranges_inside_min_max():
    rng = np.random.default_rng(0)
    g = mlp(rng.standard_normal((8, 6)), np.zeros(8), rng.standard_normal((3, 8)), np.zeros(3))
    calib = [{"x": rng.standard_normal((4, 6)).astype(np.float32)} for _ in range(3)]
    r = entropy.ranges(g, calib)
    amax = max(np.abs(run_float(g, b, trace=True)["fc1"]).max() for b in calib)
    assert 0 < r["fc1"][1] <= amax and r["fc1"][0] == -r["fc1"][1]
    q = entropy.apply(g, calib, "int8")
    tq = q.quant_params["fc1"]
    assert int(tq.zero_point) == 0 and float(tq.scale) == pytest.approx(r["fc1"][1] / 127, rel=1e-6)


# ---- bias correction
def test_bias_correction_by_hand():
    # per-tensor int8: scale 1/127, 0.3 -> 38 -> 0.2992126; error -0.0007874 on input 1, 0 on input 5
    w1 = np.array([[0.3, 1.0]])
    g = mlp(w1, [0.5], [[1.0]], [0.0])
    x = np.tile(np.array([[1.0, 5.0]], np.float32), (4, 1))
    out = bias_correction.apply(g, [{"x": x}], weight="int8", per_channel=False, nodes=["fc1"])
    err = np.float32(38 / 127) - np.float32(0.3)
    assert out.constants["fc1.bias"][0] == pytest.approx(0.5 - err, abs=1e-7)
    assert g.constants["fc1.bias"][0] == np.float32(0.5)  # the input graph is unchanged


def test_bias_correction_removes_the_mean_output_error_on_its_data():
    from qsim.sim.quantize_graph import dequantized_graph, quantize_graph

    rng = np.random.default_rng(1)
    g = mlp(rng.standard_normal((16, 12)) * 0.3, rng.standard_normal(16) * 0.1, rng.standard_normal((4, 16)) * 0.3,
            np.zeros(4), batch=32)
    calib = [{"x": (rng.standard_normal((32, 12)) + 1.0).astype(np.float32)}]
    ref = run_float(g, calib[0], trace=True)["fc1"]

    def mean_error(graph):
        w_only = dequantized_graph(quantize_graph(graph, "w4a16", calib, per_channel=False))
        return np.abs((run_float(w_only, calib[0], trace=True)["fc1"] - ref).mean(axis=0)).max()

    assert mean_error(bias_correction.apply(g, calib, "int4")) < 1e-5 < mean_error(g)


def test_bias_correction_refuses_a_layer_without_bias():
    g = Graph("nb")
    g.add_input("x", (2, 3))
    g.add_node("Gemm", "fc", ["x"], {"out_features": 2, "bias": False})
    g.mark_output("fc")
    g.constants["fc.weight"] = np.ones((2, 3), np.float32)
    with pytest.raises(QsimError, match="node 'fc' \\(Gemm\\) has no bias"):
        bias_correction.apply(g.validate(), [{"x": np.ones((2, 3), np.float32)}])


# ---- cross-layer equalization
def test_equalization_by_hand_and_function_unchanged():
    g = mlp([[2.0], [0.5]], [0.2, -0.4], [[1.0, 4.0]], [0.1], batch=3)
    out = equalization.apply(g)
    s = np.array([math.sqrt(2.0), math.sqrt(2.0) / 4])
    np.testing.assert_allclose(out.constants["fc1.weight"].ravel(), [math.sqrt(2.0)] * 2, rtol=1e-6)
    np.testing.assert_allclose(out.constants["fc2.weight"].ravel(), [math.sqrt(2.0)] * 2, rtol=1e-6)
    np.testing.assert_allclose(out.constants["fc1.bias"], np.array([0.2, -0.4]) / s, rtol=1e-6)
    x = {"x": np.array([[-1.0], [0.5], [3.0]], np.float32)}
    np.testing.assert_allclose(run_float(out, x)["fc2"], run_float(g, x)["fc2"], rtol=1e-6)


def test_equalization_refuses_a_pair_that_is_not_conv_relu_conv():
    g = mlp(np.ones((2, 2)), np.zeros(2), np.ones((1, 2)), np.zeros(1), relu=False)
    assert equalization.pairs_of(g) == []
    with pytest.raises(QsimError, match="node 'sig' \\(Sigmoid\\) between 'fc1'"):
        equalization.apply(g, pairs=[("fc1", "fc2")])


def test_digits_cnn_pairs_cross_maxpool_and_flatten():
    from qsim.evaluation.digits import digits_graph

    rng = np.random.default_rng(0)
    shapes = {"conv1.weight": (8, 1, 3, 3), "conv1.bias": (8,), "conv2.weight": (16, 8, 3, 3), "conv2.bias": (16,),
              "fc.weight": (10, 256), "fc.bias": (10,)}
    g = digits_graph({k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}, 2)
    assert equalization.pairs_of(g) == [("conv1", "conv2"), ("conv2", "fc")]
    out = equalization.apply(g)
    x = {"x": rng.random((2, 1, 8, 8)).astype(np.float32)}
    np.testing.assert_allclose(run_float(out, x)["fc"], run_float(g, x)["fc"], rtol=1e-4, atol=1e-4)
    r = [np.abs(out.constants["conv2.weight"][i]).max() for i in range(16)]
    c = [np.abs(out.constants["fc.weight"][:, i * 16:(i + 1) * 16]).max() for i in range(16)]
    np.testing.assert_allclose(r, c, rtol=1e-5)  # equal ranges on both sides of every channel


def test_depthwise_separable_chain_is_equalized_and_unchanged():
    """conv -> relu -> depthwise -> relu -> pointwise (MobileNet's block): two pairs, same function,
    and after enough sweeps every channel's ranges meet on both sides of each pair."""
    rng = np.random.default_rng(3)
    g = Graph("dws")
    g.add_input("x", (2, 3, 6, 6))
    g.add_node("Conv", "stem", ["x"], {"out_channels": 4, "kernel": 3, "pad": 1})
    g.add_node("Relu", "r1", ["stem"])
    g.add_node("Conv", "dw", ["r1"], {"out_channels": 4, "kernel": 3, "pad": 1, "groups": 4})
    g.add_node("Relu", "r2", ["dw"])
    g.add_node("Conv", "pw", ["r2"], {"out_channels": 5, "kernel": 1})
    g.mark_output("pw")
    for name, spec in g.tensors.items():
        if spec.kind != "activation" and name not in g.inputs:
            g.constants[name] = (rng.standard_normal(spec.shape) * rng.uniform(0.1, 3, spec.shape[0])
                                 .reshape((-1,) + (1,) * (len(spec.shape) - 1))).astype(np.float32)
    g.validate()
    assert equalization.pairs_of(g) == [("stem", "dw"), ("dw", "pw")]
    out = equalization.apply(g, iterations=30)
    x = {"x": rng.standard_normal((2, 3, 6, 6)).astype(np.float32)}
    want = run_float(g, x)["pw"]
    np.testing.assert_allclose(run_float(out, x)["pw"], want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
    w = {k: out.constants[f"{k}.weight"] for k in ("stem", "dw", "pw")}
    np.testing.assert_allclose(np.abs(w["stem"]).reshape(4, -1).max(1), np.abs(w["dw"]).reshape(4, -1).max(1),
                               rtol=1e-3)
    np.testing.assert_allclose(np.abs(w["dw"]).reshape(4, -1).max(1), np.abs(w["pw"]).max(axis=(0, 2, 3)), rtol=1e-3)


def test_recipes_metadata_for_the_cost_model():
    from qsim.recipes import ort_static

    for mod in (entropy, bias_correction, equalization, ort_static):
        assert {"name", "extra_scale_bytes", "extra_inference_passes", "calibration_passes",
                "reference"} <= set(mod.METADATA), mod.__name__
        assert mod.METADATA["name"] == mod.__name__.rsplit(".", 1)[1]
    assert equalization.METADATA["calibration_passes"] == 0  # data free
