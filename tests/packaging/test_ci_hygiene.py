"""CI runs what a contributor runs: plain ``pytest`` collects every test, and with CI set a test whose
runtime is missing fails instead of skipping (the mechanism is tests/conftest.py's report hooks)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# -P: no working directory on sys.path, as when the `pytest` script runs (python -m pytest adds it)
PLAIN_PYTEST = [sys.executable, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider"]


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CI")}
    return env | extra


def test_plain_pytest_collects_the_helper_importing_modules():
    proc = subprocess.run(PLAIN_PYTEST + ["--collect-only", "tests/sweep"], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for module in ("test_dask", "test_points", "test_report_cli", "test_resume", "test_run"):
        assert f"tests/sweep/{module}.py::" in proc.stdout


def _run_fake_suite(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "test_module_level.py").write_text(
        "import pytest\npytest.importorskip('qsim_no_such_runtime')\n\ndef test_never():\n    pass\n")
    (tmp_path / "test_in_test.py").write_text(
        "import pytest\n\ndef test_runtime():\n    pytest.importorskip('qsim_no_such_runtime.sub')\n\n"
        "def test_other_skip():\n    pytest.skip('no avx512_vnni')\n\ndef test_ok():\n    pass\n")
    env = _env(PYTHONPATH=str(ROOT), **({"CI": ci} if ci is not None else {}))
    return subprocess.run(PLAIN_PYTEST + ["-p", "tests.conftest", "-c", os.devnull, "--rootdir", str(tmp_path),
                                          "--continue-on-collection-errors", "-rA", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_missing_runtime_skips_outside_ci(tmp_path):
    proc = _run_fake_suite(tmp_path, None)
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.strip().splitlines()[-1].startswith("1 passed, 3 skipped")


def test_missing_runtime_fails_in_ci(tmp_path):
    proc = _run_fake_suite(tmp_path, "true")
    assert proc.returncode == 1, proc.stdout
    assert "FAILED test_in_test.py::test_runtime" in proc.stdout
    assert "ERROR test_module_level.py" in proc.stdout
    assert "'qsim_no_such_runtime.sub' does not import" in proc.stdout
    assert "SKIPPED [1] test_in_test.py" in proc.stdout  # a skip for another reason stays a skip
    assert proc.stdout.strip().splitlines()[-1].startswith("1 failed, 1 passed, 1 skipped, 1 error")
