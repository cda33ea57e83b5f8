"""LiteRT's optimized int8 ADD and MUL with a broadcast operand (BroadcastAddDispatch,
BroadcastMulDispatch): the output, in C order, is cut by TFLite's fivefold broadcast into rows
(AddElementwise / MulElementwise: 16-wide vectors, scalar tail) or scalar broadcasts
(AddScalarBroadcast: 8-wide vectors with their own rounding; MulSimpleBroadcast: 16-wide); the
generic category is the reference form (``elementwise.litert_vectors``). Every element against the
runtime, all 65,536 pairs for the 256-wide shapes; each case differs from the reference form used
before (it would fail without the layout)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from _tflite_models import _Builder, fb, run  # noqa: E402

import qsim.kernels.elementwise as ew  # noqa: E402
from qsim import simulate  # noqa: E402
from qsim.numerics.requant_ref import multiply_by_quantized_multiplier as _mbqm  # noqa: E402

_C = np.arange(-128, 128)
ZPS = [(-128, -128, 127), (5, -3, 0), (127, -128, -128)]
SCALES = [(0.02, 0.02, 0.0001), (0.02, 0.013, 0.013 / 1.7), (0.01, 0.03, 0.02), (0.3, 0.001, 0.002)]
# MUL: s1 * s2 / s_out of 0.3 (no lane saturates), 0.65 and 300 (the int16 lanes saturate)
MUL_SCALES = [(0.02, 0.013, 0.02 * 0.013 / 0.3), (0.02, 0.02, 0.02 * 0.02 / 0.65), (0.02, 0.02, 0.02 * 0.02 / 300)]
SHAPES = [((256, 256), (1, 256)), ((256, 256), (256, 1)), ((256, 1), (256, 256)), ((64, 7), (1, 7)),
          ((64, 15), (1, 15)), ((64, 17), (64, 1)), ((64, 33), (1, 33)), ((2, 4, 4, 17), (1, 1, 1, 17)),
          ((2, 4, 5, 1), (1, 1, 1, 1)), ((1,), (33,)), ((2, 3, 4, 33), (2, 1, 4, 33)), ((2, 3, 4, 5), (1, 3, 1, 5)),
          ((2, 1, 40), (1, 4, 40)), ((1, 9, 13), (4, 1, 1))]


def _add(shapes, params, out_param, oshape, op="add", dtype=np.int8):
    bld = _Builder()
    ins = [bld.tensor(f"x{i}", s, dtype, sc, zp) for i, (s, (sc, zp)) in enumerate(zip(shapes, params))]
    y = bld.tensor("y", oshape, dtype, *out_param)
    if op == "mul":
        return bld.model(fb.BuiltinOperator.MUL, ins, [y], fb.BuiltinOptions.MulOptions, fb.MulOptionsT(), version=2)
    return bld.model(fb.BuiltinOperator.ADD, ins, [y], fb.BuiltinOptions.AddOptions, fb.AddOptionsT(), version=2)


def _codes(shape, rng):
    if shape in ((256, 256),):
        return np.tile(_C, (256, 1)).astype(np.int8)
    if shape in ((256, 1), (1, 256)):
        return _C.reshape(shape).astype(np.int8)
    return rng.integers(-128, 128, shape).astype(np.int8)


@pytest.mark.parametrize("op", ["add", "mul"])
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_optimized_broadcast(shapes, op):
    rng = np.random.default_rng(0)
    oshape = np.broadcast_shapes(*shapes)
    fn = ew.add_tflite if op == "add" else ew.mul_tflite
    bad = old = 0
    for s1, s2, so in SCALES if op == "add" else MUL_SCALES:
        for z1, z2, zo in ZPS:
            x1, x2 = _codes(shapes[0], rng), _codes(shapes[1], rng)
            y = run(_add(shapes, [(s1, z1), (s2, z2)], (so, zo), oshape, op), [x1, x2], "optimized")
            bad += int(np.sum(fn(x1, x2, s1, z1, s2, z2, so, zo, kernels="optimized") != y))
            old += int(np.sum(fn(x1, x2, s1, z1, s2, z2, so, zo) != y))
    assert bad == 0
    vec, _ = ew.litert_vectors(*shapes, op, "optimized")
    if vec is not None and vec.any():  # some vectors: the reference form differs there
        assert old > 0


@pytest.mark.parametrize("first", [True, False])
def test_scalar_broadcast_floors_both_inputs(first):
    """AddScalarBroadcast scales both inputs with the rounding high multiply then a flooring shift;
    the form used before (gemmlowp's rounding for the first operand) differed where the first
    operand has the smaller scale (its shift is not 0): 21 of these 65,536 pairs."""
    shapes = [(256, 1), (256, 256)] if first else [(256, 256), (256, 1)]
    x1, x2 = (_codes(s, None) for s in shapes)
    s1, z1, s2, z2, so, zo = 0.001, -128, 0.3, 127, 0.002, -128
    y = run(_add(shapes, [(s1, z1), (s2, z2)], (so, zo), (256, 256)), [x1, x2], "optimized")
    assert np.array_equal(ew.add_tflite(x1, x2, s1, z1, s2, z2, so, zo, kernels="optimized"), y)
    p = ew.tflite_add_params(s1, s2, so)
    a, b = ((np.broadcast_to(x, (256, 256)).astype(np.int64) - z) << 20 for x, z in ((x1, z1), (x2, z2)))
    former = _mbqm(_mbqm(a, p[0], p[1]) + ew._srdhm_floor(b, p[2], p[3]), p[4], p[5])
    former = np.clip(ew._wrap16(ew._wrap16(former) + zo), -128, 127)
    assert int(np.sum(former != y)) == 21


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


@pytest.mark.parametrize("policy, kernels", [("tflite-reference", "reference"), ("tflite-optimized", "optimized"),
                                             ("xnnpack", "xnnpack")])
def test_int16_broadcast_add(tmp_path, policy, kernels):
    """int16x8 ADD with a broadcast operand: add.cc runs BroadcastAdd6DSlow, the reference form, under
    every kernel set (XNNPACK delegates 8-bit ADD only; once refused under it). The same-shape
    optimized form (single rounding in 16-wide vectors) differs on some of these elements."""
    rng = np.random.default_rng(3)
    path = tmp_path / "add.tflite"
    former = 0
    for shapes in [((1, 4, 4, 33), (1, 1, 1, 33)), ((1, 4, 5, 16), (1, 4, 5, 1)), ((256, 257), (1, 257)),
                   ((1, 9, 13), (4, 1, 1))]:
        x1, x2 = (rng.integers(-32768, 32768, s).astype(np.int16) for s in shapes)
        for s1, s2, so in [(0.02, 0.013, 0.03), (1 / 1024, 1 / 2048, 0.0003), (3e-4, 3e-4, 2e-4)]:
            model = _add(shapes, [(s1, 0), (s2, 0)], (so, 0), np.broadcast_shapes(*shapes), dtype=np.int16)
            path.write_bytes(model)
            want = run(model, [x1, x2], kernels)
            got = next(iter(simulate(path, {"x0": x1, "x1": x2}, policy=policy).values()))
            assert got.dtype == np.int16 and np.array_equal(got, want), (shapes, s1, s2, so)
            lanes = ew.add_tflite(x1, x2, s1, 0, s2, 0, so, 0, -32768, 32767, left_shift=15, kernels="optimized")
            former += int(np.sum(lanes != want))
    assert former > 0
