"""Cost model: pure functions graph x precision plan x profile -> per-node DataFrame and totals."""
from qsim.cost.estimate import Estimate, estimate_graph
from qsim.cost.footprint import peak_activation_bytes, weight_footprint

__all__ = ["Estimate", "estimate_graph", "peak_activation_bytes", "weight_footprint"]
