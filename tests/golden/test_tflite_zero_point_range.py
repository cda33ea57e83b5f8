"""Zero points outside the storage type's range (an int8 tensor with zero point 2100): LiteRT has no
one answer for them (its XNNPACK delegate refuses the model; its builtin optimized and reference
kernels overflow differently), so qsim's TFLite loader refuses them, naming the operator and tensor."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from _tflite_models import elementwise, run  # noqa: E402

from qsim.errors import GraphError  # noqa: E402
from qsim.ir.tflite_import import load_tflite  # noqa: E402

ADD = (0.05, 0.1, 0.12)  # scales of x0, x1, y


def _add(z0, z1, zy):
    x = np.arange(-128, 128)
    x0, x1 = (g.ravel().astype(np.int8) for g in np.meshgrid(x, x))
    s0, s1, sy = ADD
    return elementwise("add", [x0.shape, x1.shape], [(s0, z0), (s1, z1)], (sy, zy)), [x0, x1]


def test_litert_has_no_one_answer_for_out_of_range_zero_points():
    model, inputs = _add(5000, 100, -3)
    ref, opt = (run(model, inputs, k).astype(np.int64) for k in ("reference", "optimized"))
    assert np.sum(ref != opt) == ref.size  # the builtin kernel sets disagree: their int32 lanes overflow apart
    with pytest.raises(RuntimeError, match="unsupported zero-point value"):
        run(model, inputs, "xnnpack")  # LiteRT's default delegate refuses the model
    model, inputs = _add(127, -128, 2)  # in range (the edges): XNNPACK takes it (test_policy_elementwise: bit-exact)
    assert run(model, inputs, "xnnpack").shape == inputs[0].shape


@pytest.mark.parametrize("zps, words", [
    ((2100, -2000, 2),
     "operator 0 (ADD) input tensor 'x0' (int8): zero point 2100 is outside the int8 range [-128, 127]"),
    ((3, -2500, 2), "operator 0 (ADD) input tensor 'x1' (int8): zero point -2500"),
    ((3, -7, 300), "operator 0 (ADD) output tensor 'y' (int8): zero point 300"),
    ((3, -7, -129), "zero point -129 is outside"),
])
def test_the_loader_names_the_operator_and_tensor(tmp_path, zps, words):
    path = tmp_path / "add.tflite"
    path.write_bytes(_add(*zps)[0])
    with pytest.raises(GraphError) as info:
        load_tflite(path)
    message = str(info.value)
    assert words in message and message.startswith(str(path)) and "\n" not in message


def test_the_range_edges_load(tmp_path):
    path = tmp_path / "add.tflite"
    path.write_bytes(_add(127, -128, -128)[0])
    assert [n.op for n in load_tflite(path).nodes()] == ["Add"]
