"""The planned Gemm (qsim/sim/plan_matmul.py) equals the per-node path (``vnni_ops.matmul``) bit for
bit: planted rounding ties, activation zero points of both signs, int8 and uint8 activations and
weights (uint8 weights off 128 need the row sums), K not a multiple of 4, N not a multiple of 64, one
row (the classifier at batch 1) and more rows than one work item's run."""
from __future__ import annotations

import numpy as np
import pytest

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _int_graphs import tq  # noqa: E402
from _int_ties import count_ties  # noqa: E402

from qsim.ir.graph import Graph  # noqa: E402
from qsim.kernels import avx2, vnni  # noqa: E402
from qsim.sim.integer import run_integer  # noqa: E402
from qsim.sim.plan import ExecutionPlan  # noqa: E402

pytestmark = pytest.mark.skipif(not (vnni.HAS_VNNI or avx2.HAS_AVX2),
                                reason="the planned Gemm runs on the VNNI or AVX2 core")


def _gemm_graph(m: int, k: int, n: int, x_dtype: str, x_zp: int, w_dtype: str, w_zp: int, seed: int) -> Graph:
    """x (M, K) -> Gemm (per-channel weights, int32 bias) -> x_dtype. s_in * s_w / s_out is 2^-1,
    2^-2 or 2^-3 per channel, so every odd (resp. 2 mod 4, 4 mod 8) accumulator is a rounding tie.
    Weights within 3 of their zero point (and inputs within 4 of theirs, ``_near``) keep most outputs
    inside the output range, where a wrong accumulator shows."""
    rng = np.random.default_rng(seed)
    g = Graph("gemm")
    g.add_input("x", (m, k), x_dtype)
    g.add_node("Gemm", "fc", ["x"], {"out_features": n, "bias": True}, dtype=x_dtype)
    g.mark_output("fc")
    g.constants["fc.weight"] = _near(rng, w_zp, 3, (n, k), w_dtype)
    s_w = (2.0 ** -(5 + rng.integers(0, 3, n))).astype(np.float32)
    g.constants["fc.bias"] = rng.integers(-300, 300, n).astype(np.int32)
    g.quant_params["x"] = tq(0.25, x_zp, x_dtype)
    g.quant_params["fc.weight"] = tq(s_w, np.full(n, w_zp, np.int64), w_dtype, 0)
    g.quant_params["fc.bias"] = tq(0.25 * s_w, np.zeros(n, np.int64), "int32", 0)
    g.quant_params["fc"] = tq(2.0 ** -6, 3 if x_dtype == "uint8" else -2, x_dtype)
    return g.validate()


def _near(rng, zp: int, span: int, shape, dtype) -> np.ndarray:
    """Integers within ``span`` of ``zp``, clipped to ``dtype``'s range."""
    info = np.iinfo(dtype)
    return np.clip(zp + rng.integers(-span, span + 1, shape), info.min, info.max).astype(dtype)


@pytest.mark.parametrize("policy", ["onnxruntime", "tflite-reference"])
@pytest.mark.parametrize("m, k, n, x_dtype, x_zp, w_dtype, w_zp", [
    (1, 1280, 1000, "uint8", 131, "int8", 0),     # MobileNetV2's classifier at batch 1
    (1, 300, 70, "int8", -3, "int8", 0),          # int8 activations: shifted to uint8 in the copy
    (1, 37, 130, "int8", 5, "uint8", 120),        # K % 4 != 0; uint8 weights off 128: row sums
    (40, 64, 65, "uint8", 0, "uint8", 128),       # two runs of rows; a panel of one column
])
def test_planned_gemm_equals_per_node_path(policy, m, k, n, x_dtype, x_zp, w_dtype, w_zp):
    g = _gemm_graph(m, k, n, x_dtype, x_zp, w_dtype, w_zp, seed=m + k + n)
    plan = ExecutionPlan(g, policy)
    rng = np.random.default_rng(k)
    ties = 0
    for _ in range(3):
        x = {"x": _near(rng, x_zp, 4, (m, k), x_dtype)}
        got, want = plan.run(x, trace=True), run_integer(g, x, policy, trace=True)
        assert got.outputs["fc"].dtype == want.outputs["fc"].dtype
        assert np.array_equal(got.outputs["fc"], want.outputs["fc"])
        assert got.stats.equals(want.stats)
        ties += count_ties(g, want.trace, policy, want.stats)
        info = np.iinfo(x_dtype)
        inside = (want.outputs["fc"] > info.min) & (want.outputs["fc"] < info.max)
        assert inside.mean() > 0.5
    assert ties > 0
    assert [n.op for n, b in zip(plan.nodes, plan._bound) if b is not False] == ["Gemm"]
