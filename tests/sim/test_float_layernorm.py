"""qsim's float LayerNorm (``qsim.sim.float_ops.layernorm``) against onnxruntime's CPU
LayerNormalization (opset 17), fp32: every output must be the same bit pattern. Covers the AVX2
kernel's lane and tail structure (norm sizes 8..768 with n % 8 in 0..7), the scalar Welford path
(n <= 7), rows with a large offset against their spread, with and without bias, two epsilons."""
from __future__ import annotations

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from qsim.sim.float_ops import layernorm  # noqa: E402

SIZES = [1, 3, 7, 8, 12, 13, 15, 20, 64, 384, 768]


def _ort_layernorm(x, gamma, beta, eps):
    inputs = ["x", "g"] + (["b"] if beta is not None else [])
    inits = [numpy_helper.from_array(gamma, "g")] + ([numpy_helper.from_array(beta, "b")] if beta is not None else [])
    node = helper.make_node("LayerNormalization", inputs, ["y"], axis=-1, epsilon=eps)
    vi = helper.make_tensor_value_info
    graph = helper.make_graph([node], "ln", [vi("x", TensorProto.FLOAT, list(x.shape))],
                              [vi("y", TensorProto.FLOAT, list(x.shape))], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("eps", [1e-5, 1e-12])
def test_layernorm_bits_match_onnxruntime(n, bias, eps):
    rng = np.random.default_rng(n * 4 + 2 * bias + (eps == 1e-5))
    compared = bad = 0
    for spread, offset in ((1.0, 0.0), (100.0, 30.0), (1e-3, 5.0)):  # offset >> spread: cancellation
        x = (rng.standard_normal((4, 9, n)) * spread + offset * rng.standard_normal((4, 9, 1))).astype(np.float32)
        gamma = rng.standard_normal(n).astype(np.float32)
        beta = rng.standard_normal(n).astype(np.float32) if bias else None
        ref = _ort_layernorm(x, gamma, beta, eps)
        w = {"gamma": gamma} if beta is None else {"gamma": gamma, "beta": beta}
        ours = layernorm([x], w, {"eps": eps})[0]
        assert ours.dtype == np.float32 and ours.shape == ref.shape
        bad += int(np.sum(ours.view(np.int32) != ref.view(np.int32)))
        compared += ref.size
    print(f"[layernorm] n={n} bias={bias} eps={eps}: {compared} fp32 outputs, {bad} differing bit patterns")
    assert bad == 0
