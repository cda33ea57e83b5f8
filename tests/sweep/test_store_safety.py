"""The sweep store is safe to share: one writer per folder, stale locks taken over, unreadable parts
set aside and redone."""
import os
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from qsim.sweep import SweepError, StoreLock, run_sweep
from qsim.sweep.lock import LOCK_NAME
from qsim.sweep.store import ResultStore

from tests.sweep._specs import tiny

HELD_RUN = """
import os, sys, time
sys.path.insert(0, {root!r})
from qsim.sweep import run_sweep
from tests.sweep._specs import tiny

def hold(rows):  # after each stored chunk, wait until the test lets the run go on
    deadline = time.time() + 120
    while not os.path.exists({go!r}) and time.time() < deadline:
        time.sleep(0.02)

df = run_sweep(tiny(), out_dir={out!r}, workers=1, chunk_size=2, on_chunk=hold)
print(len(df))
"""


def _wait_for(predicate, seconds=60.0):
    deadline = time.time() + seconds
    while time.time() < deadline and not predicate():
        time.sleep(0.05)
    assert predicate()


def test_two_processes_on_one_folder(tmp_path):
    """The second run refuses with one line while the first writes; the first loses nothing."""
    out, go = tmp_path / "shared", tmp_path / "go"
    first = subprocess.Popen([sys.executable, "-c", HELD_RUN.format(root=os.getcwd(), out=str(out), go=str(go))],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: len(list((out / "parts").glob("part-*.parquet"))) >= 1)
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(tiny()))
    second = subprocess.run([sys.executable, "-m", "qsim.cli", "sweep", str(spec), "--out", str(out), "--workers",
                             "1", "--no-progress"], capture_output=True, text=True)
    assert second.returncode == 2
    assert second.stderr == (f"qsim: error: {out}: another qsim sweep is writing this folder (pid {first.pid} on "
                             f"{socket.gethostname()}, since {second.stderr.split('since ')[1].split(')')[0]}); "
                             "wait for it to finish or use another --out\n")
    with pytest.raises(SweepError, match=f"pid {first.pid}"):  # the library refuses the same way
        run_sweep(tiny(), out_dir=out, workers=1)
    assert len(list((out / "parts").glob("part-*.parquet"))) == 1  # the first run is still on its second chunk
    go.touch()
    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    assert stdout.strip() == "24"
    parts = sorted((out / "parts").glob("part-*.parquet"))
    assert len(parts) == 12 and len({p.name.split("-")[1] for p in parts}) == 1  # all from the first run
    rows = pd.concat([pd.read_parquet(p) for p in parts])
    assert len(rows) == 24 and rows["point_id"].is_unique
    assert not list((out / "parts").glob(".*"))  # no temporary file left behind
    assert (out / LOCK_NAME).read_text() == ""  # released
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), run_sweep(tiny(), workers=1))


def test_a_stale_lock_is_taken_over(tmp_path, capfd):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "stale"
    out.mkdir()
    (out / LOCK_NAME).write_text(f"{dead.pid} {socket.gethostname()} 2026-01-01T00:00:00+0000\n")
    df = run_sweep(tiny(), out_dir=out, workers=1)
    assert len(df) == 24
    assert f"taking over the lock of a stopped run (pid {dead.pid} on {socket.gethostname()})" in capfd.readouterr().err


def test_the_lock_is_reentrant_in_one_process_and_exclusive_across(tmp_path):
    out = tmp_path / "nested"
    with StoreLock(out):
        run_sweep(tiny(), out_dir=out, workers=1)  # the CLI holds the lock around run_sweep
        probe = subprocess.run([sys.executable, "-c", f"from qsim.sweep import StoreLock\nwith StoreLock({str(out)!r}):"
                                "\n    pass"], capture_output=True, text=True)
        assert probe.returncode != 0 and "another qsim sweep is writing this folder" in probe.stderr
    assert str(os.getpid()) not in (out / LOCK_NAME).read_text()


def test_unreadable_parts_are_set_aside_and_recomputed(tmp_path, capfd):
    out = tmp_path / "damaged"
    clean = run_sweep(tiny(), out_dir=out, workers=1, chunk_size=3)
    parts = sorted((out / "parts").glob("part-*.parquet"))
    assert len(parts) == 8
    truncated, empty, wrong = parts[0], parts[3], parts[6]
    truncated.write_bytes(truncated.read_bytes()[:200])
    empty.write_bytes(b"")
    pd.DataFrame({"x": [1, 2, 3]}).to_parquet(wrong)
    capfd.readouterr()
    evaluated = []
    healed = run_sweep(tiny(), out_dir=out, workers=1, chunk_size=3, on_chunk=lambda rows: evaluated.extend(rows))
    err = capfd.readouterr().err
    assert len(evaluated) == 9  # the three damaged parts' points, and only those
    pd.testing.assert_frame_equal(healed, clean)
    for part in (truncated, empty, wrong):
        assert f"{part} cannot be read" in err
        assert (out / "corrupt" / part.name).exists() and not part.exists()
    assert "no column point_id" in err
    assert sorted(healed.attrs["set_aside"]) == sorted(str(out / "corrupt" / p.name) for p in (truncated, empty, wrong))
    assert len(ResultStore(out).done_ids()) == 24


def test_interrupted_temporary_parts_never_count(tmp_path):
    out = tmp_path / "tmp"
    run_sweep(tiny(profiles=["iot"]), out_dir=out, workers=1)
    (out / "parts" / ".part-dead-000000.parquet.tmp").write_bytes(b"PAR1 half")
    df = run_sweep(tiny(), out_dir=out, workers=1)
    assert len(df) == 24 and not list((out / "parts").glob(".*.tmp"))


def test_an_output_path_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SweepError, match="file: cannot use as the output folder"):
        run_sweep(tiny(), out_dir=tmp_path / "file", workers=1)
