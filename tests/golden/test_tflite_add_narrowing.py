"""LiteRT's optimized int8 ADD and MUL narrow to int16 lanes before the output zero point (ADD
without saturation, MUL with it; the zero point added wrapping): where the output scale is far
below the input scales (ADD: s_in / s_out from about 64 with zero points at the int8 ends; MUL:
s1 * s2 / s_out from about 0.5) the codes wrap. The XNNPACK delegate leaves scale ratios of 256 and
more to those builtin kernels. Every int8 pair (65,536, plus a 9-element scalar tail) against the
runtime, for the numpy spec and its numba twin; each planted case differs from the formula without
the lanes (it would fail without them)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from _tflite_models import elementwise, run  # noqa: E402

import qsim.kernels.elementwise as ew  # noqa: E402
import qsim.kernels.elementwise_jit as ewj  # noqa: E402
from qsim import simulate  # noqa: E402
from qsim.numerics.requant_ref import multiply_by_quantized_multiplier as _mbqm  # noqa: E402

_G = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128))
X1, X2 = (np.r_[g.ravel(), g.ravel()[:9]].astype(np.int8) for g in _G)
ZPS = [(-128, -128, 127), (127, 127, -128), (-128, 127, -128), (5, -3, 0)]
# (s1, s2, s_out): ADD with s_in / s_out from 66 to 2.5e5 (LiteRT aborts from 2^19: its output
# multiplier must be below 1); MUL with s1 * s2 / s_out from 0.5 to 0.999
ADD = [(0.02, 0.02, 0.02 / 66), (0.02, 0.013, 0.013 / 129), (0.02, 0.02, 0.0001), (0.02, 0.013, 2e-6),
       (0.3, 0.001, 1.2e-6)]
MUL = [(0.02, 0.013, 0.02 * 0.013 / 0.65), (0.02, 0.02, 0.02 * 0.02 / 0.999), (0.05, 0.01, 0.05 * 0.01 / 0.52)]


def _old_add(s1, z1, s2, z2, so, zo):
    """add_tflite's optimized form before the int16 lanes (int32 to the clamp)."""
    p = ew.tflite_add_params(s1, s2, so)
    a, b = (X1.astype(np.int64) - z1) << 20, (X2.astype(np.int64) - z2) << 20
    vec = np.arange(a.size) < a.size - a.size % 16
    raw = np.where(vec, ew._single(a, p[0], p[1]) + ew._single(b, p[2], p[3]),
                   _mbqm(a, p[0], p[1]) + _mbqm(b, p[2], p[3]))
    return np.clip(_mbqm(raw, p[4], p[5]) + zo, -128, 127)


def _check(op, scales, kernels, spec_kernels):
    s1, s2, so = scales
    bad = planted = 0
    for z1, z2, zo in ZPS:
        y = run(elementwise(op, [X1.shape, X2.shape], [(s1, z1), (s2, z2)], (so, zo)), [X1, X2], kernels)
        y = y.astype(np.int64)
        if op == "add":
            got = [f(X1, X2, s1, z1, s2, z2, so, zo, kernels=spec_kernels) for f in (ew.add_tflite, ewj.add_tflite)]
            planted += int(np.sum(_old_add(s1, z1, s2, z2, so, zo) != y))
        else:
            got = [f(X1, X2, s1, z1, s2, z2, so, zo, kernels=spec_kernels) for f in (ew.mul_tflite, ewj.mul_tflite)]
            planted += int(np.sum(ew.mul_tflite(X1, X2, s1, z1, s2, z2, so, zo) != y))
        bad += sum(int(np.sum(g != y)) for g in got)
    assert bad == 0
    assert planted > 0, "no pair reaches the int16 lanes: the case would pass without them"


@pytest.mark.parametrize("scales", ADD)
def test_optimized_add(scales):
    _check("add", scales, "optimized", "optimized")


@pytest.mark.parametrize("scales", MUL)
def test_optimized_mul(scales):
    _check("mul", scales, "optimized", "optimized")


@pytest.mark.parametrize("op, scales", [("add", (0.02, 0.013, 0.013 / 256)), ("add", (0.02, 0.02, 2e-5)),
                                        ("mul", (0.02, 0.02, 0.02 * 0.02 / 256))])
def test_xnnpack_leaves_large_ratios_to_the_builtin_kernel(op, scales):
    from qsim.sim.int_elementwise import xnnpack_declines

    s1, s2, so = scales
    assert xnnpack_declines(op, (s1, 0, s2, 0, so, 0))
    if op == "add":
        _check(op, scales, "xnnpack", "optimized")
        return
    z1, z2, zo = -128, 127, -128
    y = run(elementwise(op, [X1.shape, X2.shape], [(s1, z1), (s2, z2)], (so, zo)), [X1, X2], "xnnpack")
    want = ew.mul_tflite(X1, X2, s1, z1, s2, z2, so, zo, kernels="optimized")
    assert np.array_equal(want, y) and not np.array_equal(ew.mul_xnnpack(X1, X2, s1, z1, s2, z2, so, zo), y)


@pytest.mark.parametrize("policy, kernels", [("tflite-optimized", "optimized"), ("xnnpack", "xnnpack")])
@pytest.mark.parametrize("shape", [(1, 16, 16, 256), (1, 3, 5, 7)])
def test_simulate(tmp_path, policy, kernels, shape):
    """End to end (loader, executor or plan): an NHWC ADD at s_in / s_out = 1000, both sizes
    (a multiple of 16 and one with a scalar tail)."""
    x1, x2 = (np.resize(X, shape) for X in (X1, X2[::-1]))
    model = elementwise("add", [shape, shape], [(0.02, -128), (0.013, -128)], (2e-5, 127))
    path = tmp_path / "add.tflite"
    path.write_bytes(model)
    want = run(model, [x1, x2], kernels)
    got = next(iter(simulate(path, {"x0": x1, "x1": x2}, policy=policy).values()))
    assert np.array_equal(got, want)


@pytest.mark.parametrize("policy, kernels", [("tflite-optimized", "optimized"), ("xnnpack", "xnnpack")])
def test_simulate_mul_at_multipliers_of_one_and_more(tmp_path, policy, kernels):
    """MUL with s1 * s2 / s_out of 1 and 300 (formerly refused under the optimized kernels): the
    product saturates in the int16 lanes; XNNPACK leaves 300 to the builtin kernel."""
    shape = (1, 16, 16, 256)
    x1, x2 = (np.resize(X, shape) for X in (X1, X2))
    for m in (1.0, 300.0):
        # negative products: the saturated -32768 plus the zero point -128 wraps to 127
        model = elementwise("mul", [shape, shape], [(0.02, -128), (0.013, 127)], (0.02 * 0.013 / m, -128))
        path = tmp_path / "mul.tflite"
        path.write_bytes(model)
        want = run(model, [x1, x2], kernels)
        got = next(iter(simulate(path, {"x0": x1, "x1": x2}, policy=policy).values()))
        assert np.array_equal(got, want)
        if policy == "tflite-optimized" or m > 256:  # the builtin kernel: its lanes wrap
            assert not np.array_equal(ew.mul_tflite(x1, x2, 0.02, -128, 0.013, 127, 0.02 * 0.013 / m, -128), want)


@pytest.mark.parametrize("policy, kernels", [("tflite-optimized", "optimized"), ("xnnpack", "xnnpack")])
def test_broadcast_mul_beyond_the_int16_lanes(tmp_path, policy, kernels):
    """MUL with a broadcast operand where the int16 lanes saturate (once refused): LiteRT's
    BroadcastMulDispatch runs MulElementwise rows and MulSimpleBroadcast runs in 16-wide vectors
    (elementwise.litert_vectors); XNNPACK leaves this multiplier (1.3e3) to that builtin kernel."""
    x1 = np.resize(X1, (1, 4, 4, 16))
    path = tmp_path / "mul.tflite"
    for x2 in (np.resize(X1[::-1], (1, 1, 1, 16)), np.resize(X1[::-1], (1, 4, 4, 1))):
        model = elementwise("mul", [x1.shape, x2.shape], [(0.02, -128), (0.013, -128)], (2e-7, 127))
        path.write_bytes(model)
        want = run(model, [x1, x2], kernels)
        got = next(iter(simulate(path, {"x0": x1, "x1": x2}, policy=policy).values()))
        assert np.array_equal(got, want)
        assert not np.array_equal(ew.mul_tflite(x1, x2, 0.02, -128, 0.013, -128, 2e-7, 127), want)


_ABORT = """
import sys, numpy as np
sys.path.insert(0, {golden!r})
from _tflite_models import elementwise, run
x = np.arange(-100, 100).astype(np.{dtype})
run(elementwise("add", [x.shape, x.shape], [(0.02, 0), (0.02, 0)], (0.02 / {ratio}, 0), dtype=np.{dtype}), [x, x],
    "optimized")
"""


@pytest.mark.parametrize("dtype, ratio", [("int8", 2 ** 19), ("uint8", 2 ** 19), ("int16", 2 ** 14)])
def test_add_litert_aborts_on_is_refused(tmp_path, dtype, ratio):
    """s_in / s_out of 2^19 (int8, uint8) or 2^14 (int16): LiteRT's ADD aborts the process (its output
    multiplier must be below 1); qsim refuses the model, naming the node. One below is answered
    (int16 under XNNPACK: by the builtin kernel the delegate leaves it to)."""
    import subprocess
    import sys
    from pathlib import Path

    from qsim.errors import QsimError

    script = _ABORT.format(golden=str(Path(__file__).parent), dtype=dtype, ratio=ratio)
    assert subprocess.run([sys.executable, "-c", script], capture_output=True).returncode != 0
    x = np.arange(-100, 100).astype(dtype)
    path = tmp_path / "add.tflite"
    for r, refused in ((ratio, True), (ratio - 1, False)):
        path.write_bytes(elementwise("add", [x.shape, x.shape], [(0.02, 0), (0.02, 0)], (0.02 / r, 0), dtype=x.dtype))
        for policy in ("tflite-reference", "tflite-optimized", "xnnpack"):
            if refused:
                with pytest.raises(QsimError, match=rf"\(Add, {dtype}\): output scale .* LiteRT's ADD aborts"):
                    simulate(path, {"x0": x, "x1": x}, policy=policy)
            else:
                kernels = {"tflite-reference": "reference", "tflite-optimized": "optimized"}.get(policy, "xnnpack")
                got = next(iter(simulate(path, {"x0": x, "x1": x}, policy=policy).values()))
                assert np.array_equal(got, run(path.read_bytes(), [x, x], kernels))


@pytest.mark.parametrize("case", [(0.007, 3, 2e-6, -5, 0.01, 0), (0.028613535, -15, 9.7e-6, -11, 0.01, -8)])
def test_xnnpack_leaves_small_add_ratios_to_the_builtin_kernel(tmp_path, case):
    """An ADD input with s_in / s_out below 2^-10 (1/5000; 0.00097): the delegate declines the node,
    the builtin optimized kernel answers (its rounding differs from XNNPACK's on a few pairs)."""
    s1, z1, s2, z2, so, zo = case
    model = elementwise("add", [X1.shape, X2.shape], [(s1, z1), (s2, z2)], (so, zo))
    y = run(model, [X1, X2], "xnnpack")
    assert not np.array_equal(ew.add_xnnpack(X1, X2, *case), y)
    path = tmp_path / "add.tflite"
    path.write_bytes(model)
    assert np.array_equal(next(iter(simulate(path, {"x0": X1, "x1": X2}, policy="xnnpack").values())), y)
