"""A regular (non-editable) install ships the profiles and workloads: build the sdist, build the wheel
from it (as pip does for a source download), install the wheel into an empty folder and run the
README's main job by shipped names from a directory that is not the checkout.

Everything is built offline with the running interpreter's setuptools (no build isolation) in a copy
of the sources, so the checkout gets no build/ or egg-info litter."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ["pyproject.toml", "setup.py", "README.md", "qsim", "hw_profiles", "workloads"]
SHIPPED = ["hw_profiles", "workloads"]


def _run(cmd: list[str], cwd: Path, env: dict | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> Path:
    """The folder the wheel was installed into (``pip install --target``): qsim/ and bin/qsim."""
    work = tmp_path_factory.mktemp("wheel")
    src, dist, target = work / "src", work / "dist", work / "site"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    sdist = _run([sys.executable, "-c", f"from setuptools import build_meta as b; print(b.build_sdist({str(dist)!r}))"],
                 cwd=src).split()[-1]
    with tarfile.open(dist / sdist) as tar:  # extraction filters came with 3.11.4
        tar.extractall(work / "unpacked", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    (unpacked,) = (work / "unpacked").iterdir()
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    _run(pip + ["wheel", "--no-deps", "--no-build-isolation", "--no-index", str(unpacked), "-w", str(dist)], cwd=work)
    (wheel,) = dist.glob("qsim-*.whl")
    _run(pip + ["install", "--no-deps", "--no-index", "--target", str(target), str(wheel)], cwd=work)
    return target


def _env(target: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # not the checkout: only the install
    env["PYTHONPATH"] = str(target)
    return env


def test_wheel_ships_every_profile_and_workload(installed):
    for name in SHIPPED:
        want = sorted(p.relative_to(ROOT / name) for p in (ROOT / name).rglob("*.yaml"))
        got = sorted(p.relative_to(installed / "qsim" / name) for p in (installed / "qsim" / name).rglob("*.yaml"))
        assert got == want, name
        assert want, name


def test_installed_qsim_resolves_shipped_names_from_its_package(installed, tmp_path):
    out = _run([sys.executable, "-c", "import qsim.hw.profile as p, qsim.workload as w\n"
                "print(p.__file__, p.PROFILE_DIR, w.WORKLOAD_DIR, w.resolve_workload('resnet50'), sep='\\n')"],
               cwd=tmp_path, env=_env(installed))
    module, profile_dir, workload_dir, resnet = out.split("\n")[:4]
    assert Path(module).is_relative_to(installed)  # the installed copy, not the checkout
    assert Path(profile_dir) == installed / "qsim" / "hw_profiles"
    assert Path(workload_dir) == installed / "qsim" / "workloads"
    assert Path(resnet) == installed / "qsim" / "workloads" / "resnet50.yaml"


def test_installed_command_runs_the_readme_job_by_name_from_elsewhere(installed, tmp_path):
    qsim = [str(installed / "bin" / "qsim")]
    out = _run(qsim + ["run", "resnet50", "--hw", "iot"], cwd=tmp_path, env=_env(installed))
    assert "workload resnet50 on iot (STM32H743" in out
    assert "latency 10.3 s, held-out error on this profile: median 7 %, worst 8 %   energy 2.83 J" in out
    assert "flash: needs 24.43 MiB of 2.00 MiB: DOES NOT FIT" in out
    listed = _run(qsim + ["profiles", "list"], cwd=tmp_path, env=_env(installed))
    assert [line.split()[0] for line in listed.splitlines()] == sorted(p.stem for p in (ROOT / "hw_profiles").glob("*.yaml"))
    shown = _run(qsim + ["profiles", "show", "cloud"], cwd=tmp_path, env=_env(installed))
    assert f"source {installed / 'qsim' / 'hw_profiles' / 'cloud.yaml'}" in shown
    # a path given by the user is still a path, relative to the working directory
    (tmp_path / "mine.yaml").write_text((ROOT / "hw_profiles" / "iot.yaml").read_text())
    own = _run(qsim + ["run", "resnet50", "--hw", "mine.yaml"], cwd=tmp_path, env=_env(installed))
    assert "latency 10.3 s" in own
