"""``qsim.simulate(..., ort_level=)``: the onnxruntime session an answer must equal. Below
ORT_ENABLE_EXTENDED onnxruntime runs QDQ units in float, which qsim refuses by name; the two levels
that fuse them are equal."""
from __future__ import annotations

import pytest

import qsim
from qsim.errors import QsimError

from .cases import write_case
from .runners import ORT_LEVELS, compare, run_onnxruntime


@pytest.mark.parametrize("level", ["disable_all", "enable_basic"])
def test_unfused_levels_refuse_a_float_qdq_unit_by_name(level, tmp_path):
    path, feeds = write_case("qdq", "Conv", 0, tmp_path)
    with pytest.raises(QsimError, match=rf"at {level} onnxruntime runs the QDQ units .* in float"):
        qsim.simulate(str(path), dict(feeds), ort_level=level)


@pytest.mark.parametrize("level", ["enable_all", "enable_extended"])
def test_fused_levels_are_equal(level, tmp_path):
    import onnxruntime as ort

    path, feeds = write_case("qdq", "Conv", 0, tmp_path)
    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, f"ORT_{level.upper()}")
    want = {o.name: v for o, v in zip(ort.InferenceSession(str(path), so).get_outputs(),
                                     ort.InferenceSession(str(path), so).run(None, dict(feeds)))}
    assert compare(want, qsim.simulate(str(path), dict(feeds), ort_level=level)).ok


def test_units_exact_in_float_run_at_every_level(tmp_path):
    path, feeds = write_case("qdq", "MaxPool", 0, tmp_path)
    want = run_onnxruntime(path, dict(feeds), "none")
    assert ORT_LEVELS["none"] == "ORT_DISABLE_ALL"
    assert compare(want, qsim.simulate(str(path), dict(feeds), ort_level="disable_all")).ok


def test_unknown_level_is_one_line(tmp_path):
    path, feeds = write_case("qdq", "Conv", 0, tmp_path)
    with pytest.raises(QsimError, match="ort_level 'fast'"):
        qsim.simulate(str(path), dict(feeds), ort_level="fast")
