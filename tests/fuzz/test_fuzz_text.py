"""Fuzz the text loaders with damaged copies of the shipped files: each case loads cleanly or
raises a QsimError; a loaded profile or workload that took a NaN / inf must still cost a model to
finite numbers (a non-finite value is either refused or provably unused)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from _mutate import NONFINITE_ACCEPTED, dump, mutated_text, mutated_tree, outcome
from qsim.api import estimate, load_workload
from qsim.hw.profile import load_profile
from qsim.sweep.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
PROFILES = sorted((ROOT / "hw_profiles").glob("*.yaml"))
# builder workloads that build in well under a second (the large ones cost the same code paths)
WORKLOADS = [ROOT / "workloads" / f"{n}.yaml" for n in ("mlperf_tiny_kws", "mlperf_tiny_ad", "mlperf_tiny_ic",
                                                         "resnet18", "bert_base", "llama7b_decode")]
SPECS = sorted((ROOT / "workloads" / "sweeps").glob("*.yaml"))
_TINY = None


def _tree(path: Path):
    return yaml.safe_load(path.read_text())


def _tiny():
    global _TINY
    if _TINY is None:
        _TINY = load_workload(ROOT / "workloads" / "mlperf_tiny_kws.yaml")
    return _TINY


def _finite_totals(df) -> None:
    for key in ("latency_s", "energy_j"):
        value = df.attrs["totals"][key]
        assert value is None or math.isfinite(value), f"{key} = {value}"


def _write(tmp: Path, name: str, data: bytes | str) -> Path:
    path = tmp / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def _check_costed(loader: str, load, cost, tmp: Path, name: str, data, nonfinite: bool) -> str:
    """Load; if that succeeds, cost a model with the result and require finite totals."""
    path = _write(tmp, name, data)
    kind, loaded = outcome(loader, lambda: load(path))
    if kind == "ok":
        if nonfinite:
            NONFINITE_ACCEPTED[loader] += 1
            NONFINITE_ACCEPTED.cases.append((loader, name, data))
        _, df = outcome(f"{loader}+estimate", lambda: cost(loaded))
        if not isinstance(df, Exception):
            _finite_totals(df)
    return kind


def check_profile(tmp: Path, name: str, data, nonfinite: bool) -> str:
    return _check_costed("profile", load_profile, lambda prof: estimate(_tiny(), prof), tmp, name, data, nonfinite)


def check_workload(tmp: Path, name: str, data, nonfinite: bool) -> str:
    return _check_costed("workload", load_workload, lambda wl: estimate(wl, "iot"), tmp, name, data, nonfinite)


def check_spec(tmp: Path, name: str, data, nonfinite: bool) -> str:
    path = _write(tmp, name, data)
    kind, _ = outcome("sweep spec", lambda: load_spec(path))
    if kind == "ok" and nonfinite:
        NONFINITE_ACCEPTED["sweep spec"] += 1
        NONFINITE_ACCEPTED.cases.append(("sweep spec", name, data))
    return kind


CHECKS = {"profile": (PROFILES, check_profile), "workload": (WORKLOADS, check_workload),
          "sweep spec": (SPECS, check_spec)}


@st.composite
def damaged(draw, files):
    """(file name, damaged content, whether a NaN/inf went in) for one of ``files``."""
    path = draw(st.sampled_from(files))
    if draw(st.booleans()):
        tree, nonfinite = draw(mutated_tree(_tree(path)))
        return path.name, dump(tree), nonfinite
    return path.name, draw(mutated_text(path.read_text())), False


@pytest.mark.parametrize("loader", sorted(CHECKS))
def test_damaged_text_files_load_or_fail_cleanly(loader, tmp_path_factory):
    files, check = CHECKS[loader]
    tmp = tmp_path_factory.mktemp("fuzz")

    @given(damaged(files))
    def run(case):
        name, data, nonfinite = case
        check(tmp, name, data, nonfinite)

    run()


@pytest.mark.parametrize("loader", sorted(CHECKS))
def test_undamaged_files_load(loader, tmp_path):
    """The baseline the mutations start from: every shipped file loads as it is."""
    files, check = CHECKS[loader]
    for path in files:
        assert check(tmp_path, path.name, path.read_text(), False) == "ok", path
