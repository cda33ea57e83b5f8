"""Accuracy in sweeps: one measurement per distinct accuracy key joined to every point sharing it,
stored so that a resumed sweep measures nothing twice; constraints pick the best point."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qsim.evaluation.data import Evaluation
from qsim.sweep import load_spec, run_sweep
from qsim.sweep.constraints import meets
from qsim.sweep.report import best_points
from qsim.workload import load_workload

from tests.sweep._eval_specs import spec


@pytest.fixture
def counted(monkeypatch):
    """Every Evaluation.measure call, as (plan, policy, accumulator bits)."""
    calls = []
    measure = Evaluation.measure

    def counting(self, graph, plan, policy="onnxruntime", acc_bits=None, *args, **kwargs):
        calls.append((plan, policy, acc_bits))
        return measure(self, graph, plan, policy, acc_bits, *args, **kwargs)

    monkeypatch.setattr(Evaluation, "measure", counting)
    return calls


def test_two_profiles_share_one_measurement_per_plan(tmp_path, counted):
    df = run_sweep(spec(tmp_path), workers=1)
    assert len(df) == 6 and (df["status"] == "ok").all()
    # fp32, int8 and int4, each measured once for both profiles (same policy, same 32-bit accumulator)
    assert sorted(c[0] for c in counted) == ["fp32", "int4", "int8"] and df.attrs["evaluations"] == 3
    assert df.groupby("precision")["accuracy_key"].nunique().eq(1).all() and df["accuracy_key"].nunique() == 3
    by_profile = df.pivot(index="precision", columns="profile", values="accuracy")
    assert (by_profile.iloc[:, 0] == by_profile.iloc[:, 1]).all()
    assert df.groupby("precision")["latency_s"].nunique().eq(2).all()  # the clocks differ, the accuracy not
    # the joined numbers are those of one direct measurement under the profile's policy and accumulator
    s = load_spec(spec(tmp_path))
    ev = s.evaluations[next(iter(s.workloads))]
    graph = load_workload(tmp_path / "tiny.yaml", batch=9).graph
    direct = ev.measure(graph, "int8", "cmsis-nn", 32)
    row = df[df["precision"] == "int8"].iloc[0]
    assert counted[-1] == ("int8", "cmsis-nn", 32)
    assert row["accuracy"] == direct["accuracy"] and row["sqnr_db"] == direct["sqnr_db"]
    assert row["accuracy_drop"] == direct["accuracy_drop"] and row["accuracy_metric"] == "top1"
    assert row["evaluated_by"] == direct["executed_by"]
    fp32 = df[df["precision"] == "fp32"].iloc[0]
    assert fp32["accuracy_drop"] == 0 and fp32["accuracy"] == row["accuracy"] + row["accuracy_drop"]


def test_another_accumulator_width_is_another_measurement(tmp_path, counted):
    df = run_sweep(spec(tmp_path, precisions=["int8"], overrides={"compute.accumulator_bits": [32, 16]}), workers=1)
    assert len(df) == 4 and df["accuracy_key"].nunique() == 2
    assert sorted(c[2] for c in counted) == [16, 32]


def test_resume_measures_nothing_twice(tmp_path, counted):
    out = tmp_path / "out"

    class Stop(Exception):
        pass

    measure = Evaluation.measure

    def stop_at_the_third(self, *args, **kwargs):
        if len(counted) == 2:
            raise Stop  # an interruption during the accuracy step, after two measurements were stored
        return measure(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Evaluation, "measure", stop_at_the_third)
        with pytest.raises(Stop):
            run_sweep(spec(tmp_path), out_dir=out, workers=1)
    assert len(counted) == 2 and len(list((out / "accuracy").glob("part-*.parquet"))) == 2
    resumed = run_sweep(spec(tmp_path), out_dir=out, workers=1)
    assert len(counted) == 3 and resumed.attrs["evaluations"] == 1
    again = run_sweep(spec(tmp_path), out_dir=out, workers=1)
    assert len(counted) == 3 and again.attrs["evaluations"] == 0
    pd.testing.assert_frame_equal(resumed, again)
    clean = run_sweep(spec(tmp_path), workers=1)
    pd.testing.assert_series_equal(clean["accuracy"], again["accuracy"])


def test_resume_on_local_processes(tmp_path):
    out = tmp_path / "out"
    first = run_sweep(spec(tmp_path), out_dir=out, workers=2)
    assert first.attrs["evaluations"] == 3 and first["accuracy"].notna().all()
    assert run_sweep(spec(tmp_path), out_dir=out, workers=2).attrs["evaluations"] == 0


def _frame(rows):
    columns = ["workload", "batch", "precision", "profile", "status", "latency_s", "energy_j", "memory_bytes",
               "emulated_nodes", "fits", "accuracy", "accuracy_drop"]
    df = pd.DataFrame(rows, columns=columns)
    df["pareto"] = True
    return df


def test_constraints_filter_the_best_point():
    df = _frame([
        ("m", 1, "int4", "npu", "ok", 1.0, 1.0, 10, 0, True, 0.90, 0.05),      # cheapest, breaks the budget
        ("m", 1, "w4a8", "mcu", "ok", 2.0, 2.0, 20, 3, True, 0.945, 0.005),    # emulated nodes
        ("m", 1, "int8", "npu", "ok", 3.0, 3.0, 30, 0, False, 0.95, 0.0),      # does not fit
        ("m", 1, "int8", "mcu", "ok", 4.0, 4.0, 30, 0, True, 0.94, 0.01),      # exactly the budget: meets it
        ("m", 1, "fp32", "mcu", "ok", 9.0, 9.0, 90, 0, True, 0.95, 0.0),
        ("m", 1, "fp8", "npu", "refused", np.nan, np.nan, np.nan, np.nan, None, np.nan, np.nan),
        ("m", 1, "int2", "npu", "ok", 0.5, 0.5, 5, 0, True, np.nan, np.nan),   # accuracy not measured
    ])
    rules = {"max_accuracy_drop": 0.01, "fits": True, "native_only": True}
    assert meets(df, rules).tolist() == [False, False, False, True, True, False, False]
    assert meets(df, {"max_accuracy_drop": 0.01}).tolist() == [False, True, True, True, True, False, False]
    assert meets(df, {"fits": True}).tolist() == [True, True, False, True, True, False, True]
    assert best_points(df)["precision"].tolist() == ["int2"]  # no constraints: the smallest energy x delay
    df["meets_constraints"] = pd.array(meets(df, rules).to_numpy(), dtype="boolean")
    best = best_points(df)
    assert best[["precision", "profile"]].values.tolist() == [["int8", "mcu"]]
    df["meets_constraints"] = pd.array([False] * len(df), dtype="boolean")
    assert best_points(df).empty


def test_sweep_with_constraints_adds_the_column(tmp_path):
    df = run_sweep(spec(tmp_path, constraints={"max_accuracy_drop": 0.0, "fits": True}), workers=1)
    assert df.attrs["constraints"] == {"max_accuracy_drop": 0.0, "fits": True}
    expect = (df["accuracy_drop"] <= 1e-12) & df["fits"].astype(bool)
    assert df["meets_constraints"].astype(bool).tolist() == expect.tolist()
    assert df.loc[df["precision"] == "fp32", "meets_constraints"].all()


def test_without_an_evaluation_accuracy_stays_empty(tmp_path):
    df = run_sweep({k: v for k, v in spec(tmp_path).items() if k != "evaluation"}, workers=1)
    assert df["accuracy"].isna().all() and "accuracy_key" not in df.columns and df.attrs["evaluations"] == 0


def test_the_accuracy_step_has_its_own_progress_bar(tmp_path, capsys):
    run_sweep(spec(tmp_path), workers=1, progress=True)
    err = capsys.readouterr().err
    assert "6/6 points" in err and "3/3 evaluations" in err
