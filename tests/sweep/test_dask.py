"""The same sweep on a Dask cluster gives the same table as the local executor."""
import sys

import pandas as pd
import pytest

from qsim.sweep import run_sweep

from tests.sweep._specs import tiny

distributed = pytest.importorskip("distributed")


def test_dask_local_cluster_matches_local(tmp_path):
    local = run_sweep(tiny(), workers=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        on_dask = run_sweep(tiny(), scheduler=client, chunk_size=4)
        stored = run_sweep(tiny(), out_dir=tmp_path / "d", scheduler=cluster.scheduler_address, chunk_size=4)
    pd.testing.assert_frame_equal(on_dask, local)
    pd.testing.assert_frame_equal(stored, local)


def test_missing_dask_is_a_clear_error(monkeypatch):
    from qsim.sweep import SweepError

    monkeypatch.setitem(sys.modules, "distributed", None)  # "import distributed" now raises ImportError
    with pytest.raises(SweepError, match=r'pip install "dask\[distributed\]"'):
        run_sweep(tiny(), dask_local=True)


def test_accuracy_on_dask_matches_local(tmp_path):
    from tests.sweep._eval_specs import spec

    local = run_sweep(spec(tmp_path), workers=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        on_dask = run_sweep(spec(tmp_path), out_dir=tmp_path / "d", scheduler=client)
        again = run_sweep(spec(tmp_path), out_dir=tmp_path / "d", scheduler=client)
    assert on_dask.attrs["evaluations"] == 3 and again.attrs["evaluations"] == 0
    pd.testing.assert_frame_equal(on_dask, local)
