"""The package layout that pyproject.toml cannot state alone: every package found under qsim/, plus the
shipped hardware profiles and workloads. Those stay at the top of the repository (where a checkout names
them: hw_profiles/iot.yaml) and install inside the package as qsim/hw_profiles and qsim/workloads, so an
installed qsim resolves ``--hw iot`` and ``qsim run resnet50`` from any directory (qsim/shipped.py)."""
from setuptools import find_namespace_packages, setup

SHIPPED = {"qsim.hw_profiles": "hw_profiles", "qsim.workloads": "workloads", "qsim.workloads.sweeps": "workloads/sweeps"}

setup(
    packages=find_namespace_packages(include=["qsim", "qsim.*"], exclude=["*.__pycache__"]) + list(SHIPPED),
    package_dir=SHIPPED,
    package_data={name: ["*.yaml"] for name in SHIPPED},
)
