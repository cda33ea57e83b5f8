"""``qsim validate MODEL``: the command's arguments and its printed table; the work is
``qsim.sim.validate.validate``."""
from __future__ import annotations

import json
import sys
from pathlib import Path

# Light imports only: the simulator's kernels are imported by the command itself (``qsim --help``
# and the other subcommands build this parser and should not pay for them).
from qsim.sim.against import AGAINST
from qsim.sim.pipeline import EXECUTORS

# int_runtime's ("host",) + ORT_CPUS, spelled out: that module is not imported for ``qsim --help``.
ORT_CPU_CHOICES = ("host", "avx2", "vnni", "arm64")


def add_ort_cpu_flag(p, when: str = "", default: str = "QSIM_ORT_CPU, else host", then: str = "") -> None:
    """``--ort-cpu`` (every command that simulates onnxruntime takes it): ``when`` starts its help,
    ``default`` names what it defaults to, ``then`` ends it."""
    p.add_argument("--ort-cpu", choices=ORT_CPU_CHOICES, type=str.lower,
                   help=f"{when}the CPU whose onnxruntime to simulate (its integer sums depend on it): avx2 (x86 "
                   "without VNNI: uint8 x int8 summed in saturating int16 pairs), vnni (exact), arm64, or host "
                   f"(this machine); default {default}{then}")


TABLE_COLUMNS = ["node", "op", "format", "sqnr_db", "cosine", "max_abs_error", "mode", "overflow_events",
                 "saturated_low", "saturated_high"]


def _text(result: dict) -> str:
    table, s = result["nodes"], result["summary"]
    cols = [c for c in TABLE_COLUMNS if c in table.columns]
    lines = [table[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"), "",
             f"{s['graph']}: {s['executed_by']}; plan {s['plan'] or '(file)'}; inputs {s['inputs']}"]
    for t, m in s["outputs"].items():
        lines.append(f"  output {t}: " + ", ".join(f"{k} {v:.4g}" for k, v in m.items()))
    if "overflow_events" in s:
        lines.append(f"  accumulator overflow events {s['overflow_events']}, saturated outputs {s['saturated']}")
    for row in s.get("against", {}).get("outputs", []):
        lsb = row["max_diff_lsb"]  # codes differ by whole LSB; values by a fraction of the output's scale
        diff = (f"max diff {lsb} LSB" if row["compared"] == "codes" and lsb is not None else
                f"max abs diff {row['max_abs_diff']:.4g}" + (f", {lsb:.4g} LSB" if lsb is not None else ""))
        lines.append(f"  vs {s['against']['runtime']} {row['output']} ({row['dtype']} {row['compared']}): "
                     f"{row['mismatches']} of {row['elements']} elements differ ({diff})")
    lines += [f"  note: {n}" for n in s["notes"]]
    return "\n".join(lines)




def _cmd_validate(args) -> int:
    from qsim.files import check_output_file
    from qsim.sim.validate import _json_default, validate, write_validate_report

    out = Path(args.out) if args.out else Path("reports") / f"validate_{Path(args.model).stem}"
    for path in (out.with_suffix(".json"), out.with_suffix(".csv")):
        check_output_file(path, "--out")  # before the simulation, not after it
    result = validate(args.model, args.hw, args.policy, args.plan, args.calib, args.data, args.against,
                      args.executor, args.observer, args.seed, args.ort_cpu)
    if args.format == "json":
        report = {**result["summary"], "nodes": json.loads(result["nodes"].to_json(orient="records"))}
        print(json.dumps(report, indent=1, default=_json_default))
    else:
        print(_text(result))
    paths = write_validate_report(result, out)
    print("wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


def add_validate_parser(subparsers) -> None:
    p = subparsers.add_parser("validate", help="simulate a model: per-node accuracy and overflow, optionally "
                              "checked against onnxruntime or LiteRT")
    p.add_argument("model", help=".onnx or .tflite model (float, or already quantized)")
    p.add_argument("--hw", help="hardware profile: its requant_policy and accumulator width")
    p.add_argument("--policy", help="requantization policy of the integer executor (onnxruntime, "
                   "tflite-reference, xnnpack, ...); default from --hw or the file type")
    p.add_argument("--plan", help="precision plan for a float model (int8, w4a8, fp8, w8a16, ...) or a YAML file "
                   "{default: ..., overrides: [{name|op: ..., precision: ...}]}")
    p.add_argument("--calib", help=".npz calibration inputs, as --data (any number of samples)")
    p.add_argument("--data", help=".npz evaluation inputs: one array per model input, keyed by the model's own "
                   "input name, in its own shape (NHWC for a .tflite image) and dtype, as onnxruntime's / "
                   "LiteRT's input details report them (real values for an integer input are quantized); "
                   "optional 'labels'")
    p.add_argument("--against", choices=tuple(AGAINST), help="also run this runtime and count mismatches")
    p.add_argument("--executor", choices=EXECUTORS, default="auto",
                   help="integer executor, fake quantization, or auto (integer where supported)")
    p.add_argument("--observer", choices=("minmax", "percentile", "mse"), default="minmax",
                   help="activation calibration for --plan")
    add_ort_cpu_flag(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs without --data")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--out", help="report path without extension (default reports/validate_MODEL)")
    p.set_defaults(func=_cmd_validate)


__all__ = ["add_validate_parser"]

