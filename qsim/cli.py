"""The ``qsim`` command: thin subcommands over the library API.

User errors (bad files, flags, models) print one short message to stderr and exit with status 2;
no traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from qsim.errors import QsimError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _cmd_run(args) -> int:
    from qsim.api import run_estimate
    from qsim.report import check_report_path, report_dict, table_text, totals_lines, write_report

    if args.out:
        check_report_path(Path(args.out))  # before the work, not after printing the table

    wl, prof, est = run_estimate(args.workload, args.hw, args.precision, args.batch)
    precision = wl.plan.name
    report = report_dict(wl.name, prof.name, precision, est.layers, est.totals, prof)
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


def _cmd_profiles(args) -> int:
    from qsim.hw.profile import PROFILE_DIR, load_profile
    from qsim.report import mib

    if args.action == "list":
        for path in sorted(PROFILE_DIR.glob("*.yaml")):
            p = load_profile(path)
            print(f"{p.name:10s} {p.kind:9s} {p.description}")
        return 0
    if not args.target:
        raise QsimError(f"qsim profiles {args.action} needs a profile name or file")
    p = load_profile(args.target)
    if args.action == "check":
        print(f"{p.source}: ok ({p.name})")
        return 0
    print(f"{p.name}: {p.description}\n  kind {p.kind}, clock {p.clock_hz / 1e6:g} MHz, source {p.source}")
    for unit, peak in p.compute.macs_per_cycle.items():
        tops = 2 * peak * p.clock_hz / 1e12
        print(f"  {unit:6s} {peak:>10g} MACs/cycle  ({tops:.3g} TOPS peak, efficiency {p.compute.efficiency[unit]:g}, "
              f"{p.mac_pj[unit]:g} pJ/MAC)")
    for m in p.memories.values():
        print(f"  {m.name:14s} {mib(m.capacity_bytes):>12s}  {m.bandwidth_bytes_per_s / 1e9:g} GB/s  "
              f"{'on chip' if m.on_chip else 'off chip'}")
    print(f"  weights in {p.weights_in}, activations in {p.activations_in}, buffer {p.buffer}; "
          f"dispatch {p.dispatch_s * 1e6:g} us; static {p.static_w:g} W")
    return 0


def _cmd_import(args) -> int:
    import os

    import yaml

    from qsim.precision import plan_spec
    from qsim.workload import workload_from_model_file
    from qsim.yamlio import atomic_write

    src, out = Path(args.model), Path(args.output)
    if src.suffix not in (".onnx", ".tflite"):
        raise QsimError(f"{src}: qsim import takes an .onnx or .tflite file")
    wl = workload_from_model_file(src, args.batch)  # imports and validates before anything is written
    summary = wl.graph.summary()
    data = {"name": args.name or src.stem,
            "description": f"imported from {src.name}: {summary['nodes']} nodes, {summary['macs']:,} MACs, "
                           f"{summary['params']:,} parameters",
            "model": {src.suffix[1:]: os.path.relpath(src.resolve(), out.resolve().parent)},
            "precision": plan_spec(wl.plan)}
    if args.batch:
        data["batch"] = args.batch
    atomic_write(out, lambda tmp: tmp.write_text(yaml.safe_dump(data, sort_keys=False)))
    print(f"wrote {out}: {data['description']}")
    return 0


def _cmd_calibrate(args) -> int:
    from qsim.calibrate import write_profile

    print(write_profile(Path(args.out), quick=args.quick), end="")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qsim", description="Simulate quantized neural-network inference "
                                     "on hardware that may not exist yet.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="per-layer memory / latency / energy of one workload on one profile")
    run.add_argument("workload", help="workload YAML (or shipped name), or an .onnx / .tflite model file")
    run.add_argument("--hw", required=True, help="hardware profile YAML, or a shipped name (iot, mobile, cloud, ...)")
    run.add_argument("--precision", help="override the plan: fp32 tf32 fp16 bf16 fp8 int8 int4, w8a8 w4a16 "
                     "w8a16 w4a8, or weight=FMT,activation=FMT[,accumulator=FMT]")
    run.add_argument("--batch", type=_positive_int, help="override the batch size")
    run.add_argument("--format", choices=("table", "csv", "json"), default="table")
    run.add_argument("--out", help="also write the report: reports/NAME.{csv,parquet,json,html}")
    run.set_defaults(func=_cmd_run)

    prof = sub.add_parser("profiles", help="list, show or check hardware profiles")
    prof.add_argument("action", choices=("list", "show", "check"))
    prof.add_argument("target", nargs="?", help="profile name or YAML file (show, check)")
    prof.set_defaults(func=_cmd_profiles)
    from qsim.sweep.cli import add_sweep_parser; add_sweep_parser(sub)

    imp = sub.add_parser("import", help="import an .onnx or .tflite model and write a workload YAML")
    imp.add_argument("model", help="the .onnx or .tflite file")
    imp.add_argument("-o", "--output", required=True, help="workload YAML to write, e.g. workloads/NAME.yaml")
    imp.add_argument("--name", help="workload name (default: the file's stem)")
    imp.add_argument("--batch", type=_positive_int, help="batch size to record in the workload")
    imp.set_defaults(func=_cmd_import)

    cal = sub.add_parser("calibrate", help="micro-benchmark this machine and write a hardware profile")
    cal.add_argument("--out", default="hw_profiles/local.yaml", help="where to write the profile")
    cal.add_argument("--quick", action="store_true", help="smaller, faster measurements (less accurate)")
    cal.set_defaults(func=_cmd_calibrate)
    from qsim.sim.validate_cli import add_validate_parser; add_validate_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except QsimError as exc:
        print(f"qsim: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
