"""run_sweep: the tidy table, refusals, decoder throughput, local processes."""
import math

import pandas as pd

from qsim.api import run_estimate
from qsim.sweep import run_sweep

from tests.sweep._specs import tiny


def test_one_row_per_point_with_refusals_as_rows():
    df = run_sweep(tiny(), workers=1)
    assert len(df) == 24 and df["point_id"].is_unique
    refused = df[df["status"] == "refused"]
    assert set(zip(refused["precision"], refused["profile"])) == {("fp32", "mobile")}
    assert len(refused) == 4
    assert refused["reason"].str.contains("profile 'mobile' has no unit for fp32").all()
    assert refused["latency_s"].isna().all() and refused["pareto"].eq(False).all()
    ok = df[df["status"] == "ok"]
    assert ok["reason"].eq("").all() and ok["latency_s"].gt(0).all()
    assert df["accuracy"].isna().all()  # not simulated yet: never invented


def test_metrics_match_a_single_estimate():
    df = run_sweep(tiny(), workers=1)
    row = df[(df["workload"] == "mlperf_tiny_kws") & (df["precision"] == "int8") & (df["profile"] == "iot")
             & (df["memories.sram.capacity_kib"] == 256)].iloc[0]
    _, _, est = run_estimate("mlperf_tiny_kws", "iot", "int8")
    assert row["latency_s"] == est.totals["latency_s"] and row["energy_j"] == est.totals["energy_j"]
    assert row["weight_bytes"] == est.totals["weight_bytes"]
    assert row["memory_bytes"] == est.totals["weight_bytes"] + est.totals["peak_activation_bytes"]
    assert row["capacity_sram_bytes"] == 256 * 1024
    assert row["need_sram_bytes"] == est.totals["memory_need_bytes"]["sram"]
    assert bool(row["fits_sram"]) == (row["need_sram_bytes"] <= 256 * 1024)
    assert pd.isna(row["capacity_dram_bytes"])  # iot has no dram: the column is missing for this row


def test_tokens_per_second_for_decoders_only():
    spec = {"name": "llm", "workloads": ["llama7b_decode", "mlperf_tiny_ad"], "precisions": ["w4a16"],
            "profiles": ["cloud"], "batch": [1, 4]}
    df = run_sweep(spec, workers=1)
    llama = df[df["workload"] == "llama7b_decode"]
    assert list(llama["batch"]) == [1, 4]
    for _, row in llama.iterrows():  # decode: seq = 1 new token per sequence
        assert math.isclose(row["tokens_per_s"], row["batch"] * 1 / row["latency_s"])
    assert df[df["workload"] == "mlperf_tiny_ad"]["tokens_per_s"].isna().all()
    assert (llama["state_bytes"] > 0).all()


def test_local_processes_give_the_same_table():
    serial = run_sweep(tiny(), workers=1)
    pooled = run_sweep(tiny(), workers=2, chunk_size=5)
    pd.testing.assert_frame_equal(serial, pooled)


def test_progress_bar_only_when_asked_or_on_a_terminal():
    import io

    from qsim.sweep.progress import Progress

    stream = io.StringIO()  # not a terminal: nothing drawn by default
    bar = Progress(10, None, stream)
    bar.update(10)
    bar.close()
    assert stream.getvalue() == ""
    bar = Progress(10, True, stream)
    bar.update(10)
    bar.close()
    assert "10/10 points (100%)" in stream.getvalue()
