"""LiteRT's uint8 ADD and MUL (legacy asymmetric .tflite models). The reference kernels are the
int8 formulas; the optimized ones are the legacy ``optimized_ops`` kernels: 8-wide vectors (ADD:
both inputs through the rounding high multiply then a flooring shift; MUL: int16 lanes that
saturate, except MulSimpleBroadcast's, which wrap), fivefold broadcasts as the int8 kernels
(``elementwise.litert_vectors``). Every uint8 pair (65,536 plus a 13-element tail) against the
runtime; each planted case differs from the form qsim used before (int8's optimized kernels, or the
reference form for broadcasts), so it would fail without the uint8 kernels."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from _tflite_models import _Builder, fb, run  # noqa: E402

import qsim.kernels.elementwise as ew  # noqa: E402
import qsim  # noqa: E402
from qsim import simulate  # noqa: E402

_G = np.meshgrid(np.arange(256), np.arange(256))
X1, X2 = (np.r_[g.ravel(), g.ravel()[:13]].astype(np.uint8) for g in _G)  # 13: vectors of 8, not of 16
ZPS = [(0, 0, 0), (255, 255, 255), (0, 255, 128), (128, 3, 100), (255, 0, 128)]
# ADD: s_in / s_out from 0.5 to 1e4 (the lanes wrap from about 64); MUL: s1 * s2 / s_out 0.3 to 300
ADD = [(0.02, 0.013, 0.03), (0.3, 0.001, 0.002), (0.02, 0.02, 0.0001), (0.02, 0.013, 2e-6)]
MUL = [(0.02, 0.013, 0.02 * 0.013 / 0.3), (0.02, 0.02, 0.02 * 0.02 / 0.65), (0.02, 0.02, 0.02 * 0.02 / 300)]
SHAPES = [((256, 256), (1, 256)), ((256, 256), (256, 1)), ((256, 1), (256, 256)), ((64, 17), (64, 1)),
          ((2, 4, 4, 17), (1, 1, 1, 17)), ((1,), (33,)), ((2, 3, 4, 5), (1, 3, 1, 5))]


def _model(op, shapes, params, out_param):
    bld = _Builder()
    ins = [bld.tensor(f"x{i}", s, np.uint8, sc, zp) for i, (s, (sc, zp)) in enumerate(zip(shapes, params))]
    y = bld.tensor("y", np.broadcast_shapes(*shapes), np.uint8, *out_param)
    code, otype, ocls = {"add": (fb.BuiltinOperator.ADD, fb.BuiltinOptions.AddOptions, fb.AddOptionsT),
                         "mul": (fb.BuiltinOperator.MUL, fb.BuiltinOptions.MulOptions, fb.MulOptionsT)}[op]
    return bld.model(code, ins, [y], otype, ocls(), version=2)


def _codes(shape):
    if shape == (256, 256):
        return np.tile(np.arange(256), (256, 1)).astype(np.uint8)
    if 256 in shape:
        return np.arange(256).reshape(shape).astype(np.uint8)
    return np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8)


def _compare(op, shapes, x1, x2, scales, former_kernels):
    """(elements differing from the spec under each kernel set, elements where the former form differs)."""
    fn = ew.add_tflite if op == "add" else ew.mul_tflite
    s1, s2, so = scales
    bad, former = {"reference": 0, "optimized": 0}, 0
    for z1, z2, zo in ZPS:
        model = _model(op, shapes, [(s1, z1), (s2, z2)], (so, zo))
        for kernels, spec in (("reference", "reference"), ("optimized", "optimized-uint8")):
            y = run(model, [x1, x2], kernels)
            bad[kernels] += int(np.sum(fn(x1, x2, s1, z1, s2, z2, so, zo, 0, 255, kernels=spec) != y))
        former += int(np.sum(fn(x1, x2, s1, z1, s2, z2, so, zo, 0, 255, kernels=former_kernels) != y))
    return bad, former


@pytest.mark.parametrize("op, scales", [("add", s) for s in ADD] + [("mul", s) for s in MUL])
def test_same_shape(op, scales):
    bad, former = _compare(op, [X1.shape, X2.shape], X1, X2, scales, "optimized")
    assert bad == {"reference": 0, "optimized": 0}
    if op == "add" or scales[2] < 0.02 * 0.02:  # ADD rounds otherwise; MUL differs where its lanes saturate
        assert former > 0


@pytest.mark.parametrize("op", ["add", "mul"])
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_broadcast(shapes, op):
    x1, x2 = _codes(shapes[0]), _codes(shapes[1])
    bad, former = {"reference": 0, "optimized": 0}, 0
    for scales in ADD if op == "add" else MUL:
        b, f = _compare(op, shapes, x1, x2, scales, "reference")
        bad = {k: bad[k] + b[k] for k in bad}
        former += f
    assert bad == {"reference": 0, "optimized": 0}
    vec, _ = ew.litert_vectors(*shapes, op, "optimized-uint8")
    if vec is not None and vec.any():  # some vectors: the reference form differs there
        assert former > 0


_ULP = float(np.nextafter(np.float32(0.5), np.float32(1)))  # 0.5 plus one float32 ulp


@pytest.mark.parametrize("op, scales", [("add", (0.25, 0.25, 0.5)), ("add", (0.25, 0.125, 0.5)),
                                        ("add", (0.25, 0.25, _ULP)), ("mul", (0.25, 0.25, 0.5)),
                                        ("mul", (0.5, 0.5, _ULP / 2))])
def test_ties_and_shift_boundaries(op, scales):
    """Scales that make the last rounding a tie on many outputs (multipliers that are powers of two)
    and output scales one ulp past a power of two, which puts the multiplier just below one where
    QuantizeMultiplier's shift changes: same shape, rows
    and scalar broadcasts, both kernel sets (a sweep of 400 such uint8 and int8 models, zero points at
    both ends, found no difference)."""
    for shapes in ([X1.shape, X2.shape], [(256, 256), (1, 256)], [(256, 256), (256, 1)]):
        x1, x2 = (X1, X2) if shapes[0] == X1.shape else (_codes(shapes[0]), _codes(shapes[1]))
        bad, _ = _compare(op, shapes, x1, x2, scales, "reference")
        assert bad == {"reference": 0, "optimized": 0}, shapes


def test_scalar_broadcast_mul_wraps():
    """MulSimpleBroadcast narrows the product to int16 without saturation (vmovn_s32): at
    s1 * s2 / s_out = 300 products past 32767 wrap, where MulElementwise's lanes saturate."""
    shapes, (s1, s2, so), (z1, z2, zo) = ((256, 256), (256, 1)), MUL[2], (0, 0, 0)
    x1, x2 = _codes(shapes[0]), _codes(shapes[1])
    y = run(_model("mul", shapes, [(s1, z1), (s2, z2)], (so, zo)), [x1, x2], "optimized")
    assert np.array_equal(ew.mul_tflite(x1, x2, s1, z1, s2, z2, so, zo, 0, 255, kernels="optimized-uint8"), y)
    saturated = ew.mul_tflite(x1, x2, s1, z1, s2, z2, so, zo, 0, 255, kernels="optimized")  # int8's: saturates
    assert not np.array_equal(saturated, y)


@pytest.mark.parametrize("policy, kernels", [("tflite-reference", "reference"), ("tflite-optimized", "optimized"),
                                             ("xnnpack", "xnnpack")])
@pytest.mark.parametrize("op", ["add", "mul"])
def test_simulate(tmp_path, policy, kernels, op):
    """End to end, NHWC: same shape (315 elements: an 8-wide tail of 3), a broadcast activation, a
    constant channel operand, a rank-1 activation of one value; scales XNNPACK delegates and scales
    it leaves to the builtin kernel."""
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (1, 5, 7, 9)).astype(np.uint8)
    path = tmp_path / "m.tflite"
    for s_out in ((0.03, 2e-6) if op == "add" else (0.02 * 0.013 / 0.65, 0.02 * 0.013 / 300)):
        for shape2, const in (((1, 5, 7, 9), False), ((1, 1, 1, 9), False), ((9,), True), ((1,), False)):
            x2 = rng.integers(0, 256, shape2).astype(np.uint8)
            bld = _Builder()
            a = bld.tensor("x0", x.shape, np.uint8, 0.02, 255)
            b = bld.tensor("x1", shape2, np.uint8, 0.013, 3, data=x2 if const else None)
            y = bld.tensor("y", x.shape, np.uint8, s_out, 128)
            code, otype, ocls = {"add": (fb.BuiltinOperator.ADD, fb.BuiltinOptions.AddOptions, fb.AddOptionsT),
                                 "mul": (fb.BuiltinOperator.MUL, fb.BuiltinOptions.MulOptions, fb.MulOptionsT)}[op]
            model = bld.model(code, [a, b], [y], otype, ocls(), version=2)
            path.write_bytes(model)
            feeds = {"x0": x} if const else {"x0": x, "x1": x2}
            want = run(model, list(feeds.values()), kernels)
            got = next(iter(simulate(path, feeds, policy=policy).values()))
            assert got.dtype == np.uint8 and np.array_equal(got, want), (s_out, shape2)


@pytest.mark.parametrize("policy, kernels", [("tflite-optimized", "optimized"), ("xnnpack", "xnnpack")])
def test_compiled_second_run(tmp_path, policy, kernels):
    """A compiled model's later runs take the execution plan's bound kernels (``plan_ops.plan_binary``):
    a uint8 ADD of every pair (no scalar tail) keeps LiteRT's 8-wide uint8 kernel there too."""
    from qsim.sim.simulate import compile_model

    x1, x2 = (X[:65536].reshape(1, 16, 16, 256) for X in (X1, X2))
    former = 0
    for s_out, z in ((0.03, (128, 3, 100)), (2e-6, (0, 255, 128))):  # XNNPACK delegates the first only
        model = _model("add", [x1.shape, x2.shape], [(0.02, z[0]), (0.013, z[1])], (s_out, z[2]))
        path = tmp_path / "add.tflite"
        path.write_bytes(model)
        want = run(model, [x1, x2], kernels)
        compiled = compile_model(path, {"x0": x1, "x1": x2}, policy=policy)
        for _ in range(2):
            assert np.array_equal(next(iter(compiled.run({"x0": x1, "x1": x2}).values())), want)
        int8_kernel = ew.add_tflite(x1, x2, 0.02, z[0], 0.013, z[1], s_out, z[2], 0, 255, kernels="optimized")
        former += int(np.sum(int8_kernel != want))  # int8's kernel: 16-wide, single rounding
    assert former > 0


def test_4d_activation_with_a_lower_rank_activation_is_refused(tmp_path):
    """The IR holds 4-D activations as NCHW; where a (17,) activation lands in it is not modelled, so
    the loader refuses it, naming the node and the shapes (a one-value activation broadcasts as is)."""
    path = tmp_path / "m.tflite"
    path.write_bytes(_model("add", [(2, 4, 4, 17), (17,)], [(0.02, 3), (0.03, 5)], (0.04, 7)))
    with pytest.raises(qsim.QsimError, match=r"4-D activation with an activation of shape \(17,\)"):
        simulate(path, {"x0": np.zeros((2, 4, 4, 17), np.uint8), "x1": np.zeros(17, np.uint8)})
