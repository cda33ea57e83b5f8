"""Design-space sweeps: a spec of axes -> design points -> an executor (local processes, or Dask)
-> one tidy DataFrame, a Pareto front, and a report (CSV, Parquet, HTML with plots)."""
from qsim.sweep.pareto import pareto_front
from qsim.sweep.points import Point, generate_points
from qsim.sweep.run import run_sweep
from qsim.sweep.spec import SweepError, SweepSpec, load_spec


def write_report(frame, out_dir, spec=None):
    """reports/NAME/report.html with PNG plots beside it, plus results.csv and results.parquet."""
    from qsim.sweep.report import write_report as _write

    return _write(frame, out_dir, spec)


__all__ = ["run_sweep", "load_spec", "generate_points", "pareto_front", "write_report", "SweepSpec", "SweepError",
           "Point"]
