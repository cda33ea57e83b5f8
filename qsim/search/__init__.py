"""Per-layer sensitivity and hardware-aware mixed-precision search (``qsim sensitivity``, ``qsim search``)."""
from qsim.search.measure import Measurement, Measurer
from qsim.search.search import SearchResult, search
from qsim.search.sensitivity import sensitivity

__all__ = ["Measurement", "Measurer", "SearchResult", "search", "sensitivity"]
