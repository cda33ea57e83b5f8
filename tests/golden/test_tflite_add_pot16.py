"""LiteRT's int16 ADD when all three scales are powers of two and AddOptions' ``pot_scale_int16`` is
set (the schema's default): one input divided by 2^-shift (RoundingDivideByPOT), added to the other
with int16 saturation, the same under every kernel set (``elementwise.add_pot_int16``). The general
int16 formula qsim used before differs on up to 19% of these elements; LiteRT rejects other shifts.
With the option false or no AddOptions (as converters may write), the general formula is LiteRT's."""
from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from _tflite_models import _Builder, elementwise, fb, run  # noqa: E402

import qsim.kernels.elementwise as ew  # noqa: E402
from qsim.errors import QsimError  # noqa: E402
from qsim.sim.simulate import compile_model  # noqa: E402

POLICIES = [("tflite-reference", "reference"), ("tflite-optimized", "optimized"), ("xnnpack", "xnnpack")]
# (s1, s2, s_out): the second input shifted, the first, none; 2^-7 * 1.0004 counts as a power of two
SCALES = [(2 ** -10, 2 ** -11, 2 ** -10), (2 ** -12, 2 ** -10, 2 ** -10), (2 ** -10, 2 ** -3, 2 ** -3),
          (2 ** -7, 2 ** -7, 2 ** -7 * 1.0004)]


@pytest.mark.parametrize("policy, kernels", POLICIES)
@pytest.mark.parametrize("shape", [(1, 16, 16, 16), (1, 5, 7, 9)])
def test_pot_int16_add(tmp_path, policy, kernels, shape):
    rng = np.random.default_rng(6)
    x1, x2 = (rng.integers(-32768, 32768, shape).astype(np.int16) for _ in range(2))
    x1.flat[:2], x2.flat[:2] = (32767, -32768), (32767, -32768)  # saturating sums
    path = tmp_path / "add.tflite"
    former = 0
    for s1, s2, so in SCALES:
        model = elementwise("add", [shape, shape], [(s1, 0), (s2, 0)], (so, 0), dtype=np.int16)
        path.write_bytes(model)
        want = run(model, [x1, x2], kernels)
        compiled = compile_model(path, {"x0": x1, "x1": x2}, policy=policy)
        for _ in range(2):  # the first run per node, the second through the execution plan
            assert np.array_equal(compiled.run({"x0": x1, "x1": x2})["y"], want), (s1, s2, so)
        general = ew.add_tflite(x1, x2, s1, 0, s2, 0, so, 0, -32768, 32767, left_shift=15)
        former += int(np.sum(general != want))
    assert former > 0


# (s1, s2, s_out, the failed check): both inputs shifted; a positive shift; one of 2^14, where the general
# path's output multiplier would reach 1 (which aborts the process there: not here, no multiplier is computed)
REJECTED = [(2 ** -15, 2 ** -15, 2 ** -14, "input1_shift == 0 || data->input2_shift == 0", "-1, -1"),
            (2 ** -9, 2 ** -10, 2 ** -10, "input1_shift <= 0", "1, 0"),
            (2 ** -10, 2 ** 4, 2 ** -10, "input2_shift <= 0", "0, 14")]


@pytest.mark.parametrize("s1, s2, so, check, shifts", REJECTED)
def test_rejected_shifts_are_refused(tmp_path, s1, s2, so, check, shifts):
    """LiteRT's Prepare rejects these models (a RuntimeError at allocate_tensors, every kernel set, the
    process lives on); qsim refuses them with that reason, not as an abort."""
    x = np.arange(-100, 100).astype(np.int16)
    model = elementwise("add", [x.shape, x.shape], [(s1, 0), (s2, 0)], (so, 0), dtype=np.int16)
    for _, kernels in POLICIES:
        with pytest.raises(RuntimeError, match=rf"{re.escape(check)} was not true.*failed to prepare"):
            run(model, [x, x], kernels)
    path = tmp_path / "add.tflite"
    path.write_bytes(model)
    for policy, _ in POLICIES:
        with pytest.raises(QsimError, match=rf"power-of-two scales whose input shifts \({shifts}\) .* Prepare rejects "
                                            "the model") as info:
            compile_model(path, {"x0": x, "x1": x}, policy=policy).run({"x0": x, "x1": x})
        assert "abort" not in str(info.value)


@pytest.mark.parametrize("options", ["pot_scale_int16 false", "no AddOptions"])
def test_general_path_without_the_option(tmp_path, options):
    rng = np.random.default_rng(7)
    x1, x2 = (rng.integers(-32768, 32768, (1, 5, 7, 9)).astype(np.int16) for _ in range(2))
    bld = _Builder()
    ins = [bld.tensor("x0", x1.shape, np.int16, 2 ** -10, 0), bld.tensor("x1", x1.shape, np.int16, 2 ** -11, 0)]
    y = bld.tensor("y", x1.shape, np.int16, 2 ** -10, 0)
    opts = fb.AddOptionsT()
    opts.potScaleInt16 = False
    given = (fb.BuiltinOptions.AddOptions, opts) if options.startswith("pot") else (0, None)
    model = bld.model(fb.BuiltinOperator.ADD, ins, [y], *given, version=3)
    path = tmp_path / "add.tflite"
    path.write_bytes(model)
    for policy, kernels in POLICIES:
        want = run(model, [x1, x2], kernels)
        compiled = compile_model(path, {"x0": x1, "x1": x2}, policy=policy)
        for _ in range(2):
            assert np.array_equal(compiled.run({"x0": x1, "x1": x2})["y"], want), policy
        assert not np.array_equal(ew.add_pot_int16(x1, x2, 0, -1), want)
