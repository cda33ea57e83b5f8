from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _run_from_repo_root(monkeypatch):
    """Tests name shipped files as a user would from a checkout: workloads/..., hw_profiles/..."""
    monkeypatch.chdir(ROOT)
