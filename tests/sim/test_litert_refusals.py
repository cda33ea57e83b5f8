"""Where qsim does not reproduce LiteRT bit for bit (int16 LOGISTIC / TANH / SOFTMAX, int16 ADD under
the XNNPACK policy, which LiteRT runs on its builtin kernels), simulate refuses with a message
naming the node and the reason, rather than answering differently; the int8 forms still run."""
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
                                               ("add", "xnnpack", r"'y' \(Add, int16\): XNNPACK delegates int8 only")])
def test_int16_refused(tmp_path, op, policy, message):
    shapes = [(1, 8)] * (2 if op == "add" else 1)
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
