"""Pareto fronts, checked by hand."""
import pandas as pd
import pytest

from qsim.errors import QsimError
from qsim.sweep import pareto_front

# name: (latency, energy, memory)
POINTS = {
    "a": (1.0, 9.0, 5),   # fastest                                  -> front
    "b": (2.0, 4.0, 5),   # trades latency for energy                -> front
    "c": (3.0, 4.0, 5),   # dominated by b (slower, same rest)
    "d": (4.0, 1.0, 9),   # least energy                             -> front
    "e": (5.0, 5.0, 1),   # least memory                             -> front
    "f": (5.0, 5.0, 2),   # dominated by e (more memory)
    "g": (2.0, 4.0, 5),   # equal to b: neither dominates            -> front
    "h": (6.0, 9.0, 9),   # dominated by everything
}


def frame(**extra):
    df = pd.DataFrame([(k, *v) for k, v in POINTS.items()], columns=["name", "latency_s", "energy_j", "memory_bytes"])
    df["status"] = "ok"
    for column, values in extra.items():
        df[column] = values
    return df


def names(df, mask):
    return sorted(df.loc[mask, "name"])


def test_three_objectives():
    df = frame()
    assert names(df, pareto_front(df)) == ["a", "b", "d", "e", "g"]


def test_two_objectives_and_directions():
    df = frame()
    assert names(df, pareto_front(df, ["latency_s", "energy_j"])) == ["a", "b", "d", "g"]
    # maximise energy instead: a and h (9 J) tie on energy; a is faster
    assert names(df, pareto_front(df, {"latency_s": "min", "energy_j": "max"})) == ["a"]


def test_accuracy_counts_when_present():
    df = frame(accuracy=[0.5, 0.5, 0.9, 0.5, 0.5, 0.5, 0.5, 0.5])
    assert names(df, pareto_front(df)) == ["a", "b", "c", "d", "e", "g"]  # c is now the most accurate
    df["accuracy"] = float("nan")
    assert names(df, pareto_front(df)) == ["a", "b", "d", "e", "g"]


def test_refused_and_missing_values_are_never_on_it_and_groups():
    df = frame(workload=["x", "x", "x", "x", "y", "y", "y", "y"])
    df.loc[0, "status"] = "refused"
    df.loc[3, "energy_j"] = float("nan")
    assert names(df, pareto_front(df, by=["workload"])) == ["b", "e", "g"]
    with pytest.raises(QsimError, match="not a column"):
        pareto_front(df, ["accuracy_drop"])


def test_a_group_without_accuracy_keeps_its_front_over_cost():
    df = frame(workload=["x", "x", "x", "x", "y", "y", "y", "y"],
               accuracy=[0.5, 0.5, 0.9, 0.5] + [float("nan")] * 4)  # y has no evaluation data
    assert names(df, pareto_front(df, by=["workload"])) == ["a", "b", "c", "d", "e", "g"]
    y = df[df["workload"] == "y"]
    assert names(y, pareto_front(y)) == ["e", "g"]
