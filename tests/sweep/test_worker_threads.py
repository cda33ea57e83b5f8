"""Worker processes share the cores: each runs the simulator's kernels on its share (QSIM_THREADS),
not on every core (MobileNetV2 at batch 1 on 2 cores, two workers of 2 threads each: 6x fewer
images per second than of 1 thread each); a user's QSIM_THREADS wins; a bad one is a clear error."""
from __future__ import annotations

import pytest

from qsim.errors import QsimError
from qsim.sim import compiled
from qsim.sweep import executor


def test_each_worker_gets_its_share_of_the_cores(monkeypatch):
    monkeypatch.delenv("QSIM_THREADS", raising=False)
    monkeypatch.setattr(compiled, "physical_cores", lambda: 8)
    assert [executor.worker_threads(w) for w in (1, 2, 3, 8, 16)] == ["8", "4", "2", "1", "1"]
    monkeypatch.setenv("QSIM_THREADS", "3")
    assert executor.worker_threads(2) == "3"


def test_a_compiled_model_takes_qsim_threads(monkeypatch):
    monkeypatch.setattr(compiled, "physical_cores", lambda: 8)
    monkeypatch.delenv("QSIM_THREADS", raising=False)
    assert compiled.default_threads() == 8
    monkeypatch.setenv("QSIM_THREADS", "2")
    assert compiled.default_threads() == 2
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("QSIM_THREADS", bad)
        with pytest.raises(QsimError, match="QSIM_THREADS"):
            compiled.default_threads()


def _threads_seen(spec, chunk):
    import os

    return [{"threads": os.environ.get("QSIM_THREADS")} for _ in chunk]


def test_worker_processes_run_with_their_share(monkeypatch):
    monkeypatch.delenv("QSIM_THREADS", raising=False)
    monkeypatch.setattr(compiled, "physical_cores", lambda: 4)  # read in this process, before the pool starts
    rows = []
    executor.run_processes(None, [[1], [2], [3]], 2, rows.extend, task=_threads_seen)
    assert [r["threads"] for r in rows] == ["2", "2", "2"]
