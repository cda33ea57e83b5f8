"""The CPU kind whose onnxruntime a sweep's accuracy step reproduces (``ort_cpu:`` / ``--ort-cpu`` /
QSIM_ORT_CPU): it enters the accuracy key under the onnxruntime policy only, a store filled for one
kind is measured again for another, and the measurements (serial or on Dask workers) run as that kind."""
from __future__ import annotations

import dataclasses

import pytest

from qsim.evaluation.data import Evaluation, accuracy_key
from qsim.sim.int_runtime import host_ort_cpu, ort_cpu, ort_float_lanes
from qsim.sweep import SweepError, load_spec, run_sweep

from tests.sweep._eval_specs import spec, write_tiny

OTHER = "vnni" if host_ort_cpu() != "vnni" else "avx2"  # not this machine's kind: "host" would not pass for it


@pytest.fixture
def kinds(monkeypatch):
    """(plan, the CPU kind and MLAS lanes in force) of every Evaluation.measure call."""
    calls = []
    measure = Evaluation.measure

    def recording(self, graph, plan, *args, **kwargs):
        calls.append((plan, ort_cpu(), ort_float_lanes()))
        return measure(self, graph, plan, *args, **kwargs)

    monkeypatch.setattr(Evaluation, "measure", recording)
    return calls


def _ort(folder, **changes):
    """fp32 and int8 on the cloud profile (requant_policy: onnxruntime): 2 points, 2 measurements."""
    return spec(folder, **{"profiles": ["cloud"], "precisions": ["fp32", "int8"], **changes})


def test_keys_name_the_kind_under_onnxruntime_only(tmp_path):
    ev = next(iter(load_spec(_ort(tmp_path)).evaluations.values()))
    ort = {cpu: ev.key("g", "int8", "onnxruntime", 32, ort_cpu=cpu) for cpu in ("avx2", "vnni", "arm64")}
    assert len(set(ort.values())) == 3
    assert len({ev.key("g", "int8", "tflite-reference", 32, ort_cpu=cpu) for cpu in ("avx2", "vnni")}) == 1
    assert len({ev.key("g", "fp32", "onnxruntime", ort_cpu=cpu) for cpu in ("avx2", "vnni")}) == 1  # float: one
    assert accuracy_key("g", "int8", "onnxruntime", ort_cpu="avx2") != accuracy_key("g", "int8", ort_cpu="vnni")


def test_search_and_sweep_keys_share_the_helper(tmp_path):
    from qsim.search.measure import Measurer, graph_key
    from qsim.workload import load_workload

    ev = next(iter(load_spec(_ort(tmp_path)).evaluations.values()))
    graph = load_workload(write_tiny(tmp_path), batch=ev.build_batch).graph
    for cpu in ("avx2", "vnni"):
        assert Measurer(graph, ev, ort_cpu=cpu).key("int8") == \
            ev.key(graph_key(graph), "int8", "onnxruntime", 32, "wrap", ort_cpu=cpu) + "-v1"


def test_a_store_of_one_kind_is_measured_again_for_another(tmp_path, kinds, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setenv("QSIM_ORT_CPU", "avx2")  # as a run on an AVX2 host would fill it
    first = run_sweep(_ort(tmp_path), out_dir=out, workers=1)
    assert first.attrs["evaluations"] == 2 and first.attrs["ort_cpu"] == "avx2"
    assert kinds == [("fp32", "avx2", 8), ("int8", "avx2", 8)]
    assert run_sweep(_ort(tmp_path), out_dir=out, workers=1).attrs["evaluations"] == 0  # same kind: reused
    vnni = run_sweep(_ort(tmp_path), out_dir=out, workers=1, ort_cpu="vnni")  # the argument over the variable
    assert vnni.attrs["evaluations"] == 1 and kinds[2:] == [("int8", "vnni", 16)]  # fp32 runs no integer path
    key = {df.attrs["ort_cpu"]: df.set_index("precision")["accuracy_key"] for df in (first, vnni)}
    assert key["avx2"]["fp32"] == key["vnni"]["fp32"] and key["avx2"]["int8"] != key["vnni"]["int8"]
    # the spec's ort_cpu: names the kind too, over QSIM_ORT_CPU (both now stored: nothing to measure)
    monkeypatch.setenv("QSIM_ORT_CPU", "arm64")
    by_spec = run_sweep(_ort(tmp_path, ort_cpu="vnni"), out_dir=out, workers=1)
    assert by_spec.attrs["evaluations"] == 0 and by_spec.attrs["ort_cpu"] == "vnni"
    by_arg = run_sweep(_ort(tmp_path, ort_cpu="vnni"), out_dir=out, workers=1, ort_cpu="avx2")  # over the spec
    assert by_arg.attrs["evaluations"] == 0 and by_arg.attrs["ort_cpu"] == "avx2"
    assert len(kinds) == 3


def test_other_policies_reuse_across_kinds(tmp_path, kinds):
    out = tmp_path / "out"
    iot = spec(tmp_path, profiles=["iot"], precisions=["int8"])  # requant_policy: cmsis-nn
    assert run_sweep(iot, out_dir=out, workers=1, ort_cpu="avx2").attrs["evaluations"] == 1
    assert run_sweep(iot, out_dir=out, workers=1, ort_cpu="vnni").attrs["evaluations"] == 0


def test_a_bad_kind_in_the_spec_is_located(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\nworkloads: [{write_tiny(tmp_path)}]\nprecisions: [int8]\nprofiles: [cloud]\n"
                    "ort_cpu: vnii\n")
    with pytest.raises(SweepError) as info:
        load_spec(path)
    assert f"{path}:5: ort_cpu: 'vnii' is not one of host, avx2, vnni, arm64 (did you mean 'vnni'?)" in str(info.value)
    path.write_text(path.read_text().replace("vnii", "vnni"))
    assert load_spec(path).ort_cpu == "vnni"


def test_a_worker_of_another_kind_refuses_a_host_job(tmp_path):
    from qsim.sweep.accuracy import measure_job, point_jobs
    from qsim.sweep.points import iter_points

    s = load_spec(_ort(tmp_path, precisions=["int8"], ort_cpu=OTHER))
    job = next(iter(point_jobs(s, iter_points(s))[1].values()))
    assert (job.ort_cpu, job.cpu_tag) == (OTHER, f"{OTHER}/{ort_float_lanes(OTHER)}")
    with pytest.raises(SweepError, match="on this worker but"):  # "host" here is not the kind in the key
        measure_job(s, dataclasses.replace(job, ort_cpu="host"))


def test_dask_workers_run_the_kind_asked_for(tmp_path, kinds):
    distributed = pytest.importorskip("distributed")
    # worker threads of this process (so the recording patch sees them): neither a context variable
    # set here nor QSIM_ORT_CPU names OTHER there; the kind travels in each job
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        df = run_sweep(_ort(tmp_path), scheduler=client, ort_cpu=OTHER)
    assert sorted(kinds) == [("fp32", OTHER, ort_float_lanes(OTHER)), ("int8", OTHER, ort_float_lanes(OTHER))]
    assert df.attrs["ort_cpu"] == OTHER and df.attrs["evaluations"] == 2


def test_the_flag():
    from qsim.cli import build_parser

    assert build_parser().parse_args(["sweep", "s.yaml", "--ort-cpu", "VNNI"]).ort_cpu == "vnni"
    assert build_parser().parse_args(["sweep", "s.yaml"]).ort_cpu is None
