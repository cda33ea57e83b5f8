"""LiteRT corners. Where qsim does not reproduce LiteRT bit for bit (int16 LOGISTIC / TANH / SOFTMAX, int16
MUL), simulate refuses with a message naming the node and the reason, rather than answering
differently; the int8 forms still run. (int16 ADD under the XNNPACK policy, once refused here, runs
LiteRT's builtin kernel: tests/golden/test_tflite_add_broadcast.py.) The reference FULLY_CONNECTED
beyond int32 is reproduced."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

import _int_tflite  # noqa: E402,F401  (puts tests/golden on the path)
from _tflite_models import elementwise  # noqa: E402

from qsim import simulate  # noqa: E402
from qsim.errors import QsimError  # noqa: E402


@pytest.mark.parametrize("op,policy,message", [("logistic", "tflite-reference", r"'y' \(Sigmoid, int16\)"),
                                               ("softmax", "tflite-optimized", r"'y' \(Softmax, int16\)"),
                                               ("mul", "xnnpack", r"'y' \(Mul, int16\): LiteRT's int16 MUL")])
def test_int16_refused(tmp_path, op, policy, message):
    shapes = [(1, 8)] * (2 if op == "mul" else 1)
    model = elementwise(op, shapes, [(0.001, 0)] * len(shapes), (1 / 32768, 0), dtype=np.int16)
    path = tmp_path / f"{op}.tflite"
    path.write_bytes(model)
    feeds = {f"x{i}": np.zeros(s, np.int16) for i, s in enumerate(shapes)}
    with pytest.raises(QsimError, match=message):
        simulate(path, feeds, policy=policy)
    int8 = elementwise(op, shapes, [(0.05, 0)] * len(shapes), (1 / 256, -128))
    path.write_bytes(int8)
    out = simulate(path, {k: v.astype(np.int8) for k, v in feeds.items()}, policy=policy)
    assert out["y"].dtype == np.int8


@pytest.mark.parametrize("zero_out", [107, -85])
def test_fully_connected_reference_beyond_int32(tmp_path, zero_out):
    """LiteRT's reference FULLY_CONNECTED (double multiplier) where |acc * M| passes 2^31: the int32
    cast gives INT32_MIN, the zero point is added in int32 (wrapping for a negative one), then the
    clamp: -128 or 127, not the saturation of the real value."""
    from _tflite_models import fully_connected, run

    rng = np.random.default_rng(2)
    w = rng.integers(-127, 128, (3, 16)).astype(np.int8)
    model = fully_connected((4, 16), w, np.zeros(3, np.int32), 0.0895, 0, [5.61, 1.63, 0.002], 1.73e-6, zero_out)
    path = tmp_path / "fc.tflite"
    path.write_bytes(model)
    x = rng.integers(-128, 128, (4, 16)).astype(np.int8)
    want = run(model, [x], "reference")
    for impl in ("numba", "numpy"):
        got = simulate(path, {"x": x}, policy="litert-fc-reference", impl=impl)["y"]
        assert np.array_equal(got, want), impl
