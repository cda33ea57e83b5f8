"""An interrupted sweep resumes: no row lost, none duplicated, the same table as one clean run."""
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from qsim.sweep import run_sweep
from qsim.sweep.store import ResultStore

from tests.sweep._specs import tiny


class Stop(Exception):
    pass


def test_resume_after_an_exception_and_after_a_limit(tmp_path):
    clean = run_sweep(tiny(), out_dir=tmp_path / "clean", workers=1, chunk_size=3)
    out = tmp_path / "resumed"
    seen = []

    def interrupt(rows):  # like Ctrl-C after the third chunk was stored
        seen.append(len(rows))
        if len(seen) == 3:
            raise Stop
    with pytest.raises(Stop):
        run_sweep(tiny(), out_dir=out, workers=1, chunk_size=3, on_chunk=interrupt)
    assert len(ResultStore(out).done_ids()) == 9 and not (out / "results.csv").exists()
    partial = run_sweep(tiny(), out_dir=out, workers=1, chunk_size=3, limit=5)  # 5 more, then stop
    assert len(partial) == 14 and partial.attrs["pending"] == 10
    evaluated = []
    final = run_sweep(tiny(), out_dir=out, workers=1, chunk_size=3, on_chunk=lambda rows: evaluated.extend(rows))
    assert len(evaluated) == 10  # only what was missing
    assert final["point_id"].is_unique
    pd.testing.assert_frame_equal(final, clean)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), clean)


SCRIPT = """
import sys, time
from qsim.sweep import run_sweep
sys.path.insert(0, {root!r})
from tests.sweep._specs import tiny
run_sweep(tiny(), out_dir={out!r}, workers=1, chunk_size=2, on_chunk=lambda rows: time.sleep(0.3))
"""


def test_resume_after_kill_9(tmp_path):
    """A process killed without warning keeps every chunk it stored; none is half-written."""
    out = tmp_path / "killed"
    code = SCRIPT.format(root=os.getcwd(), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", code])
    parts = out / "parts"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(parts.glob("part-*.parquet"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored = ResultStore(out).done_ids()
    assert 6 <= len(stored) < 24
    final = run_sweep(tiny(), out_dir=out, workers=1)
    clean = run_sweep(tiny(), workers=1)
    assert final["point_id"].is_unique
    pd.testing.assert_frame_equal(final, clean)


def test_a_changed_spec_reuses_the_points_it_shares(tmp_path):
    out = tmp_path / "grow"
    run_sweep(tiny(profiles=["iot"]), out_dir=out, workers=1)
    evaluated = []
    grown = run_sweep(tiny(), out_dir=out, workers=1, on_chunk=lambda rows: evaluated.extend(rows))
    assert len(evaluated) == 12 and len(grown) == 24
    pd.testing.assert_frame_equal(grown, run_sweep(tiny(), workers=1))
