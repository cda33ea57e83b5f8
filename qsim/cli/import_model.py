"""``qsim import MODEL -o WORKLOAD``: write a workload YAML for an .onnx or .tflite file."""
from __future__ import annotations

from pathlib import Path

from qsim.cli.args import positive_int
from qsim.errors import QsimError


def add_parser(sub) -> None:
    imp = sub.add_parser("import", help="import an .onnx or .tflite model and write a workload YAML")
    imp.add_argument("model", help="the .onnx or .tflite file")
    imp.add_argument("-o", "--output", required=True, help="workload YAML to write, e.g. workloads/NAME.yaml")
    imp.add_argument("--name", help="workload name (default: the file's stem)")
    imp.add_argument("--batch", type=positive_int, help="batch size to record in the workload")
    imp.set_defaults(func=_cmd_import)


def _cmd_import(args) -> int:
    import os

    import yaml

    from qsim.precision import plan_spec
    from qsim.workload import workload_from_model_file
    from qsim.files import atomic_write, check_output_file

    src, out = Path(args.model), Path(args.output)
    if src.suffix not in (".onnx", ".tflite"):
        raise QsimError("qsim import takes an .onnx or .tflite file", file=src)
    check_output_file(out, "--output")  # before the import, which may take a while
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
