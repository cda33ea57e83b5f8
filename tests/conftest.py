import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# pytest.importorskip's message; the name is the module that failed to import.
MISSING_MODULE = re.compile(r"could not import '([\w.]+)'")


@pytest.fixture(autouse=True)
def _run_from_repo_root(monkeypatch):
    """Tests name shipped files as a user would from a checkout: workloads/..., hw_profiles/..."""
    monkeypatch.chdir(ROOT)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def _missing_module_fails_in_ci(report) -> None:
    """Outside CI a test whose runtime is not installed (onnxruntime, LiteRT, TFLM, torch, ...) skips.
    In CI (the CI variable set, as .ci/run and hosted runners do) it fails: .ci/run installs the [test]
    extra, so such a skip would silently drop a golden comparison."""
    if not report.skipped or not _in_ci():
        return
    message = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    missing = MISSING_MODULE.search(message)
    if missing:
        report.outcome = "failed"
        report.longrepr = (f"{message}\nCI is set and {missing.group(1)!r} does not import: install the [test] "
                           f"extra (.ci/run does); in CI a missing test runtime fails instead of skipping")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    _missing_module_fails_in_ci(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    _missing_module_fails_in_ci(report)  # a module-level importorskip skips the whole file at collection
    return report
