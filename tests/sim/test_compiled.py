"""``qsim.compile``: a model prepared once and run on many batches gives, batch for batch, the bits
``qsim.simulate`` gives (and onnxruntime gives); a symbolic batch axis takes each run's batch; the
thread count changes no bit; per-node statistics are counted when asked."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

pytest.importorskip("onnxruntime.quantization")

import _int_onnx as M  # noqa: E402

import qsim  # noqa: E402
from qsim.errors import QsimError  # noqa: E402


def _symbolic(path, out):
    m = onnx.load(str(path))
    for v in list(m.graph.input[:1]) + list(m.graph.output):
        v.type.tensor_type.shape.dim[0].dim_param = "N"
    del m.graph.value_info[:]
    onnx.save(m, str(out))
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("compiled")
    fpath = M.resnet_cnn(d / "float.onnx", batch=2)
    qpath = M.quantize(fpath, d / "quant.onnx", "qoperator", True)
    return fpath, qpath, _symbolic(qpath, d / "quant_n.onnx"), _symbolic(fpath, d / "float_n.onnx")


def _x(seed, batch=2):
    return {"x": np.random.default_rng(seed).standard_normal((batch, 3, 32, 32)).astype(np.float32)}


def test_one_compile_many_batches_equal_simulate_and_onnxruntime(models):
    _, qpath, _, _ = models
    compiled = qsim.compile(qpath)
    for seed in range(3):
        x = _x(seed)
        got, want = compiled.run(x), M.ort_run(qpath, x)
        assert list(got) == list(want)
        for name in want:
            assert got[name].dtype == want[name].dtype and np.array_equal(got[name], want[name])
            assert np.array_equal(qsim.simulate(qpath, x)[name], got[name])


def test_symbolic_batch_takes_each_runs_batch(models):
    _, _, qn, _ = models
    compiled = qsim.compile(qn, _x(0, 2))
    for batch in (2, 3, 1, 3):
        x = _x(batch, batch)
        got = compiled.run(x)
        assert got["logits"].shape == (batch, 10)
        assert np.array_equal(got["logits"], M.ort_run(qn, x)["logits"])


def test_threads_change_no_bit_and_bad_count_is_refused(models):
    _, qpath, _, _ = models
    x = _x(5)
    one, two = qsim.compile(qpath, threads=1).run(x), qsim.compile(qpath, threads=2).run(x)
    assert all(np.array_equal(one[k], two[k]) for k in one)
    with pytest.raises(QsimError, match="threads must be >= 1"):
        qsim.compile(qpath, threads=0)


def test_plan_is_calibrated_once_at_its_batch(models):
    _, _, _, fn = models
    compiled = qsim.compile(fn, _x(1, 2), plan="int8")
    again = compiled.run(_x(1, 2))
    assert np.array_equal(again["logits"], qsim.simulate(fn, _x(1, 2), plan="int8")["logits"])
    with pytest.raises(QsimError, match="compiled for a plan at batch 2; got a batch of 3"):
        compiled.run(_x(1, 3))
    with pytest.raises(QsimError, match="needs calibration inputs"):
        qsim.compile(fn, plan="int8")


def test_counts_on_request(models):
    _, qpath, _, _ = models
    counted = qsim.compile(qpath, counts=True)
    counted.run(_x(2))
    stats = counted.last_run.stats
    assert stats["saturated_low"].notna().all() and int(stats["saturated_low"].sum()) > 0  # the ReLUs clamp at zp
    plain = qsim.compile(qpath)
    plain.run(_x(2))
    assert plain.last_run.stats["saturated_low"].isna().all()
    assert list(plain.last_run.stats["overflow_events"]) == list(stats["overflow_events"])
