"""Integer executor vs LiteRT, end to end: an int8 CNN (conv, depthwise, add, max/avg pooling, fully
connected, softmax) written with the flatbuffer schema, run with each of LiteRT's kernel sets and
simulated with the policy that names it. Every intermediate tensor is a model output, so every
layer is compared; planted scales put many accumulators on exact ties."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

import _int_tflite as T  # noqa: E402
from _int_ties import count_ties  # noqa: E402

from qsim.ir.tflite_import import load_tflite  # noqa: E402
from qsim.sim.integer import run_integer  # noqa: E402

POLICY = {"reference": "tflite-reference", "optimized": "tflite-optimized", "xnnpack": "xnnpack"}


@pytest.mark.parametrize("scales", ["ties", "random"])
@pytest.mark.parametrize("kernels", list(POLICY))
def test_matches_litert(tmp_path, kernels, scales):
    path = T.int8_cnn(tmp_path / "cnn.tflite", scales)
    g = load_tflite(path)
    x = np.random.default_rng(11).integers(-40, 41, g.tensor(g.inputs[0]).shape)
    x_nhwc = x.transpose(0, 2, 3, 1).astype(np.int8)
    ref = T.run_all(path, x_nhwc, kernels)
    compared = bad = 0
    traces = {}
    for impl in ("numba", "numpy"):
        r = run_integer(g, {g.inputs[0]: x.astype(np.int8)}, POLICY[kernels], trace=True, impl=impl)
        traces[impl] = r
        for name, want in ref.items():
            ours = r.trace[name]
            ours = ours.transpose(0, 2, 3, 1) if ours.ndim == 4 else ours
            assert ours.dtype == want.dtype == np.int8, name
            bad += int(np.sum(ours != want))
            compared += want.size
    assert all(np.array_equal(traces["numba"].trace[t], traces["numpy"].trace[t]) for t in traces["numpy"].trace)
    r = traces["numpy"]
    ties = count_ties(g, r.trace, POLICY[kernels], r.stats)
    print(f"[int-tflite] LiteRT {kernels} / {POLICY[kernels]} ({scales} scales): {compared} elements compared "
          f"(numba + numpy), {ties} matrix outputs on exact .5, {bad} mismatches")
    assert bad == 0
    assert (r.stats["mode"] == "integer").all()
    assert scales != "ties" or ties > 0
