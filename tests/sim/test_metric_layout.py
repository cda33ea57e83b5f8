"""The search / sensitivity / sweep evaluation path hands its metrics a .tflite model's output as
LiteRT returns it: samples on axis 0, NHWC (the file's own layout), float32, the model's first
output. A user metric ``fn(reference_outputs, outputs, labels)`` sees LiteRT's own shape and
values; top-1 takes its classes from the NHWC last axis; the int8 outputs equal ``qsim.compile``'s
for the same plan and calibration (the same dequantization, in the same layout)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from qsim.cli import main

_TESTS = Path(__file__).resolve().parents[1]
if str(_TESTS / "unit") not in sys.path:
    sys.path.insert(0, str(_TESTS / "unit"))

pytest.importorskip("ai_edge_litert")

import _model_files as M  # noqa: E402

PROBE = '''
import numpy as np
seen = []

def fn(ref, out, labels):
    seen.append((ref.copy(), out.copy()))
    assert ref.shape[1:] == {want} and out.shape == ref.shape, (ref.shape, out.shape)
    return -float(np.mean((ref.astype(np.float64) - out) ** 2))
'''


def _litert(path, samples) -> np.ndarray:
    """LiteRT's own float outputs, one invoke per sample (the file's batch is 1)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    (inp,), (out,) = it.get_input_details(), it.get_output_details()
    got = []
    for sample in samples:
        it.set_tensor(inp["index"], sample[None])
        it.invoke()
        got.append(it.get_tensor(out["index"])[0].copy())
    return np.stack(got)


def _probe(tmp_path, name: str, want: tuple):
    (tmp_path / f"{name}.py").write_text(PROBE.format(want=want))
    return f"{name}:fn"


def _seg(tmp_path) -> Path:
    """A 1x6x5x3 -> 1x6x5x4 map (SAME 3x3, stride 1)."""
    return M.tflite_float_conv(tmp_path / "seg.tflite", "scores", 4, (3, 3), True, 12)


def _classifier(tmp_path) -> Path:
    """A 1x6x5x3 -> 1x1x1x5 classifier (VALID 6x5 window): LiteRT returns (N, 1, 1, 5)."""
    return M.tflite_float_conv(tmp_path / "cls.tflite", "logits", 5, (6, 5), False, 13)


def test_user_metric_sees_litert_layout(tmp_path):
    """fp32 and int8: the user metric gets (samples, 6, 5, 4) float32 arrays: LiteRT's float
    output for the reference, ``qsim.compile``'s int8 output (same plan, same calibration sample)
    for the plan."""
    import qsim
    from qsim.evaluation.data import load_evaluation
    from qsim.ir.tflite_import import load_tflite

    path = _seg(tmp_path)
    x = np.random.default_rng(14).standard_normal((8, 6, 5, 3)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x)
    metric = _probe(tmp_path, "probe_seg_layout", (6, 5, 4))
    ev = load_evaluation({"data": "d.npz", "batch": 1, "metric": metric}, str(tmp_path / "spec.yaml"), tmp_path)
    graph = load_tflite(path)
    ev.check(graph)
    policy = "tflite-reference"
    result = ev.measure(graph, "int8", policy=policy)
    assert result["executed_by"].startswith("integer"), result
    seen = sys.modules["probe_seg_layout"].seen
    ref, out = seen[-1]
    assert ref.dtype == np.float32 and out.dtype == np.float32
    litert = _litert(path, x[1:])  # the first sample calibrates (the first tenth, at least one)
    assert ref.shape == litert.shape == (7, 6, 5, 4)
    np.testing.assert_allclose(ref, litert, rtol=1e-5, atol=1e-5)
    compiled = qsim.compile(str(path), policy=policy, plan="int8", calib=[{"x": x[:1]}])
    ours = np.concatenate([compiled.run({"x": s[None]})["scores"] for s in x[1:]])
    np.testing.assert_array_equal(out, ours)
    assert result["accuracy"] == -float(np.mean((ref.astype(np.float64) - ours) ** 2))


def test_top1_classes_on_the_nhwc_last_axis(tmp_path):
    """A (N, 1, 1, 5) classifier: 5 classes (its NHWC last axis, not the IR's NCHW (N, 5, 1, 1));
    the fp32 top-1 equals LiteRT's on the same samples and labels."""
    from qsim.evaluation.data import load_evaluation
    from qsim.ir.tflite_import import load_tflite

    path = _classifier(tmp_path)
    x = np.random.default_rng(15).standard_normal((12, 6, 5, 3)).astype(np.float32)
    litert = _litert(path, x)
    assert litert.shape == (12, 1, 1, 5)
    labels = litert.reshape(12, 5).argmax(axis=1)
    labels[::3] = (labels[::3] + 1) % 5  # a third of them wrong: fp32 top-1 is 2/3 on every split
    np.savez(tmp_path / "d.npz", x=x, labels=labels)
    ev = load_evaluation({"data": "d.npz", "calibration": "d.npz", "batch": 1, "metric": "top1"},
                         str(tmp_path / "spec.yaml"), tmp_path)
    graph = load_tflite(path)
    ev.check(graph)
    result = ev.measure(graph, "fp32")
    assert result["accuracy"] == result["accuracy_fp32"] == pytest.approx(8 / 12)


def test_top1_on_a_map_is_refused_naming_its_shape(tmp_path, capsys):
    """Labels are one class per sample: top-1 over a (N, 6, 5, 4) map is refused in one line that
    gives the map's NHWC shape, before any simulation."""
    path = _seg(tmp_path)
    x = np.random.default_rng(16).standard_normal((6, 6, 5, 3)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, labels=np.zeros(6, np.int64))
    code = main(["sensitivity", str(path), "--data", str(tmp_path / "d.npz"), "--batch", "1", "--metric", "top1",
                 "--candidates", "int8", "--out", str(tmp_path / "s.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert "the model's output 'scores' is (1, 6, 5, 4), 30 positions of 4 classes each" in err, err


def test_sensitivity_user_metric_in_model_layout(tmp_path, capsys, monkeypatch):
    """``qsim sensitivity --metric module:fn``: the function (found beside the command, in the working
    folder) gets NHWC arrays; it asserts their shape, so a wrong layout is a failed metric (exit 2)."""
    path = _seg(tmp_path)
    x = np.random.default_rng(17).standard_normal((6, 6, 5, 3)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x)
    metric = _probe(tmp_path, "probe_seg_cli", (6, 5, 4))
    monkeypatch.chdir(tmp_path)
    code = main(["sensitivity", str(path), "--data", "d.npz", "--batch", "1", "--metric", metric,
                 "--candidates", "int8", "--out", str(tmp_path / "s.csv")])
    err = capsys.readouterr().err
    assert code == 0, err
    seen = sys.modules["probe_seg_cli"].seen
    assert seen and all(r.shape == o.shape == (5, 6, 5, 4) for r, o in seen)


def test_sweep_user_metric_in_model_layout(tmp_path, monkeypatch):
    """A sweep's ``evaluation:`` block over a .tflite workload: its user metric gets NHWC arrays, and
    the accuracy column holds what it returned on them."""
    from qsim.sweep import run_sweep

    path = _seg(tmp_path)
    x = np.random.default_rng(18).standard_normal((6, 6, 5, 3)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x)
    metric = _probe(tmp_path, "probe_seg_sweep", (6, 5, 4))
    monkeypatch.syspath_prepend(str(tmp_path))
    df = run_sweep({"name": "seg", "workloads": [str(path)], "precisions": ["fp32", "int8"], "profiles": ["iot"],
                    "evaluation": {"data": str(tmp_path / "d.npz"), "batch": 1, "metric": metric}}, workers=1)
    assert df["evaluated_by"].notna().all() and not df["evaluated_by"].str.startswith("not").any(), df
    seen = sys.modules["probe_seg_sweep"].seen
    assert seen and all(r.shape == o.shape == (5, 6, 5, 4) for r, o in seen)
    int8 = df.loc[df["precision"] == "int8", "accuracy"].iloc[0]
    assert int8 in [-float(np.mean((r.astype(np.float64) - o) ** 2)) for r, o in seen]
