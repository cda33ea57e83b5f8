"""qsim: simulate quantized neural-network inference on hardware that may not exist yet."""
from qsim.errors import GraphError, ProfileError, QsimError, WorkloadError
from qsim.ir import Graph, Node, TensorSpec
from qsim.precision import LayerPrecision, PrecisionPlan, parse_plan, parse_precision
from qsim.api import estimate, load_profile, load_workload, run_estimate, simulate

__all__ = ["simulate", "estimate", "load_profile", "load_workload", "run_estimate", "Graph", "Node", "TensorSpec", "LayerPrecision", "PrecisionPlan", "parse_plan",
           "parse_precision", "QsimError", "GraphError", "ProfileError", "WorkloadError"]
__version__ = "0.1.0"
