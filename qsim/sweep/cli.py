"""``qsim sweep SPEC``: run a design-space sweep and write its report folder.

Wired into ``qsim.cli.build_parser`` by ``add_sweep_parser(sub)``. User errors raise QsimError
subclasses, which the main CLI prints without a traceback (exit status 2).
"""
from __future__ import annotations

import sys
from pathlib import Path

from qsim.errors import QsimError
from qsim.files import check_output_dir


def _cmd_sweep(args) -> int:
    from qsim.sweep import StoreLock, load_spec, run_sweep, write_report
    from qsim.sweep.points import check_size

    if args.workers is not None and args.workers < 1:
        raise QsimError(f"--workers must be >= 1, got {args.workers}")
    spec = load_spec(args.spec)
    check_size(spec, args.yes)  # refuse before the output folder is created
    if spec.evaluations:
        from qsim.sim.int_runtime import ort_cpu_name

        ort_cpu_name(args.ort_cpu if args.ort_cpu is not None else spec.ort_cpu)  # a bad QSIM_ORT_CPU, too
    out = Path(args.out) if args.out else Path("reports") / spec.name  # spec names are plain file names
    check_output_dir(out, "--out")
    with StoreLock(out):  # held across the sweep and its report: a second run on `out` refuses at once
        try:
            df = run_sweep(spec, out_dir=out, workers=args.workers, scheduler=args.scheduler, yes=args.yes,
                           dask_local=args.dask == "local", progress=False if args.no_progress else None,
                           ort_cpu=args.ort_cpu)
        except KeyboardInterrupt:  # every finished chunk is already stored: say how to go on
            print(f"\nqsim: interrupted; the finished points are stored in {out / 'parts'}: run the same command "
                  "again to resume", file=sys.stderr)
            return 130
        report = write_report(df, out, spec)
    ok = int((df["status"] == "ok").sum())
    print(f"sweep {spec.name}: {len(df)} points ({ok} evaluated, {len(df) - ok} refused), "
          f"{int(df['pareto'].sum())} on the Pareto front")
    if spec.evaluations:
        print(f"accuracy: {df['accuracy_key'].nunique()} distinct measurement(s) for {ok} points, "
              f"{df.attrs.get('evaluations', 0)} made by this run; onnxruntime-policy points as on CPU kind "
              f"{df.attrs.get('ort_cpu')!r}")
        for workload, ev in spec.evaluations.items():
            print(f"  {workload}: {len(ev)} evaluation samples, metric {ev.metric.label}, {ev.calibration_note}")
    _print_best(df, spec)
    print(f"wrote {report} (+ results.csv, results.parquet, PNG figures); stored parts in {out / 'parts'}",
          file=sys.stderr)
    return 0


def _print_best(df, spec) -> None:
    from qsim.sweep.constraints import describe
    from qsim.sweep.report import best_points

    best = best_points(df)
    rule = (f" meeting the constraints ({describe(spec.constraints)})" if spec.constraints
            else " (smallest energy x delay)")
    for workload in dict.fromkeys(df["workload"]):
        rows = best[best["workload"] == workload]
        if rows.empty:
            print(f"best {workload}: no point{rule}")
            continue
        row = rows.iloc[0]
        accuracy = "" if row["accuracy"] != row["accuracy"] else (  # NaN: not measured
            f", {row['accuracy_metric']} {row['accuracy']:.4f} (drop {row['accuracy_drop']:+.4f})")
        print(f"best {workload}: {row['precision']} on {row['profile']}{rule}: latency {row['latency_s']:.3g} s, "
              f"energy {row['energy_j']:.3g} J{accuracy}")


def add_sweep_parser(subparsers) -> None:
    from qsim.sim.validate_cli import add_ort_cpu_flag  # light: no simulator import for ``--help``

    sweep = subparsers.add_parser("sweep", help="evaluate a design-space sweep (workloads x precisions x "
                                  "profiles x overrides) and write a report")
    sweep.add_argument("spec", help="sweep spec YAML (see workloads/sweeps/), or a shipped sweep's name")
    sweep.add_argument("--out", help="report folder (default reports/NAME); a rerun resumes what is stored there")
    sweep.add_argument("--workers", type=int, help="local worker processes (default: all usable cores; 1: none)")
    where = sweep.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run on this Dask distributed scheduler")
    where.add_argument("--dask", choices=("local",), help="run on a Dask LocalCluster of --workers processes")
    sweep.add_argument("--yes", action="store_true", help="run a sweep of more than 100,000 points (a spec's own "
                       "max_points: N also allows it)")
    add_ort_cpu_flag(sweep, "for the accuracy of onnxruntime-policy points, ",
                     "the spec's ort_cpu:, else QSIM_ORT_CPU, else host", ". It enters the stored accuracy's key")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar (it is off when not a terminal)")
    sweep.set_defaults(func=_cmd_sweep)
