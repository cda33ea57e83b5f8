"""A small sample of damaged files through the command line, as a user meets them: exit 0 or 2
(never 1, never a traceback), and JSON output without NaN / Infinity."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _mutate import COUNTS, dump, mutated_bytes, mutated_text, mutated_tree
from test_fuzz_text import PROFILES, WORKLOADS, _tree

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = 2 if not os.environ.get("QSIM_FUZZ_EXAMPLES") else max(4, int(os.environ["QSIM_FUZZ_EXAMPLES"]) // 100)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qsim.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _assert_clean(proc: subprocess.CompletedProcess, what: str) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode in (0, 2), f"{what}: exit {proc.returncode}\n{out[-2000:]}"
    assert "Traceback" not in out and "internal error" not in out, f"{what}:\n{out[-2000:]}"
    if proc.returncode == 0:
        assert "NaN" not in proc.stdout and "Infinity" not in proc.stdout, f"{what}: non-finite JSON"
    COUNTS[("cli", "ok" if proc.returncode == 0 else "error")] += 1


@st.composite
def _damaged_yaml(draw, files):
    path = draw(st.sampled_from(files))
    if draw(st.booleans()):
        return path.name, dump(draw(mutated_tree(_tree(path)))[0]).encode()
    return path.name, draw(mutated_text(path.read_text()))


@pytest.mark.parametrize("kind", ["profile", "workload"])
def test_cli_on_damaged_text_files(kind, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")

    @settings(max_examples=EXAMPLES)
    @given(_damaged_yaml(PROFILES if kind == "profile" else WORKLOADS))
    def run(case):
        name, data = case
        path = tmp / name
        path.write_bytes(data)
        args = ["mlperf_tiny_kws", "--hw", str(path)] if kind == "profile" else [str(path), "--hw", "iot"]
        _assert_clean(_cli("run", *args, "--format", "json"), f"{kind} {name}")

    run()


def test_cli_on_damaged_model_files(tmp_path):
    sys.path.insert(0, str(ROOT / "tests" / "unit"))
    from _model_files import small_cnn, tflite_int8_cnn

    seeds = [small_cnn(tmp_path / "m.onnx"), tflite_int8_cnn(tmp_path / "m.tflite")]

    @settings(max_examples=EXAMPLES)
    @given(st.sampled_from(seeds).flatmap(lambda p: st.tuples(st.just(p), mutated_bytes(p.read_bytes()))))
    def run(case):
        seed, data = case
        path = tmp_path / f"damaged{seed.suffix}"
        path.write_bytes(data)
        _assert_clean(_cli("run", str(path), "--hw", "iot", "--format", "json"), seed.name)

    run()
