"""Design-space sweeps: a spec of axes -> design points -> an executor (local processes, or Dask)
-> one tidy DataFrame, a Pareto front, and a report (CSV, Parquet, HTML with plots).

Names load on first use, so ``qsim --help`` (which registers ``qsim sweep``) stays fast."""
from importlib import import_module

_LAZY = {"run_sweep": "qsim.sweep.run", "load_spec": "qsim.sweep.spec", "SweepSpec": "qsim.sweep.spec",
         "SweepError": "qsim.errors", "generate_points": "qsim.sweep.spec", "iter_points": "qsim.sweep.points",
         "Point": "qsim.sweep.model", "StoreLock": "qsim.sweep.lock",
         "pareto_front": "qsim.sweep.pareto", "write_report": "qsim.sweep.report"}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'qsim.sweep' has no attribute {name!r}")
