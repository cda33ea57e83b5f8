"""qsim: simulate quantized neural-network inference on hardware that may not exist yet.

The public names load on first use, so ``qsim --help`` and modules that only need the errors do
not pay for pandas, networkx or numba.
"""
from importlib import import_module

from qsim.errors import GraphError, ProfileError, QsimError, WorkloadError

_LAZY = {
    "estimate": "qsim.api", "load_profile": "qsim.api", "load_workload": "qsim.api", "run_estimate": "qsim.api",
    "simulate": "qsim.api", "compile": "qsim.api", "Graph": "qsim.ir", "Node": "qsim.ir", "TensorSpec": "qsim.ir",
    "LayerPrecision": "qsim.precision", "PrecisionPlan": "qsim.precision", "parse_plan": "qsim.precision",
    "parse_precision": "qsim.precision",
}
__all__ = sorted(_LAZY) + ["QsimError", "GraphError", "ProfileError", "WorkloadError"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'qsim' has no attribute {name!r}")
