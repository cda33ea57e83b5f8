"""LiteRT's optimized int8 ADD with a broadcast operand (BroadcastAddDispatch): the output, in C
order, is cut by TFLite's fivefold broadcast into rows (AddElementwise: 16-wide vectors, scalar
tail) or scalar broadcasts (AddScalarBroadcast: 16- then 8-wide vectors with their own rounding);
the generic category is the reference form (``elementwise.litert_broadcast_layout``). Every element
against the runtime, all 65,536 pairs for the 256-wide shapes; each case differs from the reference
form used before (it would fail without the layout)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from _tflite_models import _Builder, fb, run  # noqa: E402

import qsim.kernels.elementwise as ew  # noqa: E402
from qsim import simulate  # noqa: E402

_C = np.arange(-128, 128)
ZPS = [(-128, -128, 127), (5, -3, 0), (127, -128, -128)]
SCALES = [(0.02, 0.02, 0.0001), (0.02, 0.013, 0.013 / 1.7), (0.01, 0.03, 0.02), (0.3, 0.001, 0.002)]
SHAPES = [((256, 256), (1, 256)), ((256, 256), (256, 1)), ((256, 1), (256, 256)), ((64, 7), (1, 7)),
          ((64, 15), (1, 15)), ((64, 17), (64, 1)), ((64, 33), (1, 33)), ((2, 4, 4, 17), (1, 1, 1, 17)),
          ((2, 4, 5, 1), (1, 1, 1, 1)), ((1,), (33,)), ((2, 3, 4, 33), (2, 1, 4, 33)), ((2, 3, 4, 5), (1, 3, 1, 5)),
          ((2, 1, 40), (1, 4, 40)), ((1, 9, 13), (4, 1, 1))]


def _add(shapes, params, out_param, oshape):
    bld = _Builder()
    ins = [bld.tensor(f"x{i}", s, np.int8, sc, zp) for i, (s, (sc, zp)) in enumerate(zip(shapes, params))]
    y = bld.tensor("y", oshape, np.int8, *out_param)
    return bld.model(fb.BuiltinOperator.ADD, ins, [y], fb.BuiltinOptions.AddOptions, fb.AddOptionsT(), version=2)


def _codes(shape, rng):
    if shape in ((256, 256),):
        return np.tile(_C, (256, 1)).astype(np.int8)
    if shape in ((256, 1), (1, 256)):
        return _C.reshape(shape).astype(np.int8)
    return rng.integers(-128, 128, shape).astype(np.int8)


@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_optimized_broadcast_add(shapes):
    rng = np.random.default_rng(0)
    oshape = np.broadcast_shapes(*shapes)
    bad = old = 0
    for s1, s2, so in SCALES:
        for z1, z2, zo in ZPS:
            x1, x2 = _codes(shapes[0], rng), _codes(shapes[1], rng)
            y = run(_add(shapes, [(s1, z1), (s2, z2)], (so, zo), oshape), [x1, x2], "optimized")
            bad += int(np.sum(ew.add_tflite(x1, x2, s1, z1, s2, z2, so, zo, kernels="optimized") != y))
            old += int(np.sum(ew.add_tflite(x1, x2, s1, z1, s2, z2, so, zo) != y))
    assert bad == 0
    layout = ew.litert_broadcast_layout(*shapes)
    if layout is not None and layout[0] >= layout[1]:  # some vectors: the reference form differs there
        assert old > 0


@pytest.mark.parametrize("policy", ["tflite-optimized", "xnnpack"])
@pytest.mark.parametrize("shapes", [((1, 4, 4, 33), (1, 1, 1, 33)), ((1, 4, 5, 16), (1, 4, 5, 1))], ids=str)
def test_simulate(tmp_path, policy, shapes):
    """End to end: an NHWC broadcast ADD at s_in / s_out = 1000 (the int16 lanes wrap; formerly
    refused) and at an ordinary ratio (ties), under the builtin optimized kernel (XNNPACK declines
    ratios of 256 and more)."""
    rng = np.random.default_rng(1)
    x1, x2 = (rng.integers(-128, 128, s).astype(np.int8) for s in shapes)
    path = tmp_path / "add.tflite"
    for so in (2e-5, 0.013 / 1.7):
        if policy == "xnnpack" and so > 1e-4:
            continue
        model = _add(shapes, [(0.02, -128), (0.013, -128)], (so, 127), shapes[0])
        path.write_bytes(model)
        want = run(model, [x1, x2], "xnnpack" if policy == "xnnpack" else "optimized")
        got = next(iter(simulate(path, {"x0": x1, "x1": x2}, policy=policy).values()))
        assert np.array_equal(got, want)
