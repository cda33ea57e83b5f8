"""qsim: simulate quantized neural-network inference on hardware that may not exist yet."""
from qsim.errors import GraphError, ProfileError, QsimError, WorkloadError
from qsim.ir import Graph, Node, TensorSpec
from qsim.precision import LayerPrecision, PrecisionPlan, parse_plan, parse_precision

__all__ = ["Graph", "Node", "TensorSpec", "LayerPrecision", "PrecisionPlan", "parse_plan",
           "parse_precision", "QsimError", "GraphError", "ProfileError", "WorkloadError"]
__version__ = "0.1.0"
