"""Where the shipped hardware profiles and workloads are.

An installed qsim (a wheel) carries them inside the package, as qsim/hw_profiles and qsim/workloads
(setup.py maps the repository's top-level folders there); a checkout, or an editable install of one,
has them at the top of the repository. Both resolve through the package's own location, never the
working directory, so shipped names work from anywhere.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def shipped_dir(name: str) -> Path:
    """``hw_profiles`` or ``workloads``: the installed package's copy, else the checkout's folder."""
    installed = files("qsim") / name
    if installed.is_dir():
        return Path(str(installed))  # a wheel installs as plain files: a real directory
    return Path(__file__).resolve().parents[1] / name
