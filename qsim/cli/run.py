"""``qsim run WORKLOAD --hw PROFILE``: per-layer memory, latency and energy of one workload."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from qsim.cli.args import positive_int


def add_parser(sub) -> None:
    run = sub.add_parser("run", help="per-layer memory / latency / energy of one workload on one profile")
    run.add_argument("workload", help="workload YAML (or shipped name), or an .onnx / .tflite model file")
    run.add_argument("--hw", required=True, help="hardware profile YAML, or a shipped name (iot, mobile, cloud, ...)")
    run.add_argument("--precision", help="override the plan: fp32 tf32 fp16 bf16 fp8 int8 int4, w8a8 w4a16 "
                     "w8a16 w4a8, or weight=FMT,activation=FMT[,accumulator=FMT]")
    run.add_argument("--batch", type=positive_int, help="override the batch size")
    run.add_argument("--format", choices=("table", "csv", "json"), default="table")
    run.add_argument("--out", help="also write the report: reports/NAME.{csv,parquet,json,html}")
    run.set_defaults(func=_cmd_run)


def _cmd_run(args) -> int:
    from qsim.api import run_estimate
    from qsim.report import check_report_path, report_dict, table_text, totals_lines, write_report

    if args.out:
        check_report_path(Path(args.out))  # before the work, not after printing the table

    wl, prof, est = run_estimate(args.workload, args.hw, args.precision, args.batch)
    precision = wl.plan.name
    report = report_dict(wl.name, prof.name, precision, est.layers, est.totals)
    if args.format == "json":
        print(json.dumps(report, indent=1))
    elif args.format == "csv":
        print(est.layers.to_csv(index=False), end="")
    else:
        print(table_text(est.layers))
        print("\n".join(totals_lines(wl.name, prof, precision, est.totals)))
    if args.out:
        write_report(Path(args.out), est.layers, report)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0
