"""``qsim run WORKLOAD --hw PROFILE``: per-layer memory, latency and energy of one workload."""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from qsim.cli.args import assignments, positive_int
from qsim.errors import ProfileError


def add_parser(sub) -> None:
    run = sub.add_parser("run", help="per-layer memory / latency / energy of one workload on one profile")
    run.add_argument("workload", help="workload YAML (or shipped name), or an .onnx / .tflite model file")
    run.add_argument("--hw", required=True, help="hardware profile YAML, or a shipped name (iot, mobile, cloud, ...)")
    run.add_argument("--precision", help="override the plan: fp32 tf32 fp16 bf16 fp8 int8 int4, w8a8 w4a16 "
                     "w8a16 w4a8, or weight=FMT,activation=FMT[,accumulator=FMT]")
    run.add_argument("--batch", type=positive_int, help="override the batch size")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", dest="params",
                     help="set a workload parameter: batch, seq, or a builder parameter (context=4096, "
                     "image_size=160); checked like the workload file; repeatable")
    run.add_argument("--hw-set", action="append", metavar="KEY=VALUE", dest="hw_set",
                     help="override a profile key, dotted as in sweep specs (memories.sram.capacity_kib=1024, "
                     "clock_mhz=800); checked like the profile file; repeatable")
    run.add_argument("--format", choices=("table", "csv", "json"), default="table")
    run.add_argument("--out", help="also write the report: reports/NAME.{csv,parquet,json,html}")
    run.set_defaults(func=_cmd_run)


def _cmd_run(args) -> int:
    from qsim.api import run_estimate
    from qsim.report import check_report_path, report_dict, table_text, totals_lines, with_cycles, write_report

    if args.out:
        check_report_path(Path(args.out))  # before the work, not after printing the table
    params, hw_set = assignments(args.params, "--set"), assignments(args.hw_set, "--hw-set")
    try:
        wl, prof, est = run_estimate(args.workload, args.hw, args.precision, args.batch, params, hw_set)
    except ProfileError as exc:
        raise _flag_located(exc, hw_set, "--hw-set", args.hw) from None
    precision = wl.plan.name
    layers = with_cycles(est.layers, prof)
    report = report_dict(wl.name, prof.name, precision, layers, est.totals, prof)
    if args.format == "json":
        print(json.dumps(report, indent=1))
    elif args.format == "csv":
        print(layers.to_csv(index=False), end="")
    else:
        print(table_text(layers))
        print("\n".join(totals_lines(wl.name, prof, precision, est.totals)))
    if args.out:
        write_report(Path(args.out), layers, report)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _flag_located(exc: ProfileError, overrides: dict, flag: str, profile: str) -> ProfileError:
    """A profile problem caused by an override names the flag and value, not a line of the file."""
    if not overrides:
        return exc
    if not exc.problems and exc.message.startswith("override"):  # apply_overrides: a key the profile lacks
        from qsim.hw.profile import resolve_profile_path
        from qsim.sweep.model import close_key, has_key
        from qsim.yamlio import load_yaml

        data = load_yaml(resolve_profile_path(profile))  # it loaded a moment ago
        hint = "".join(close_key(data, k) for k in overrides if not has_key(data, k))
        return ProfileError(f"{flag}: {exc.message}{hint}")
    found = [replace(p, file=f"{flag} {p.key}={overrides[p.key]}", line=None) if p.key in overrides else p
             for p in exc.problems]
    return ProfileError(exc.message, file=exc.file, problems=found)
