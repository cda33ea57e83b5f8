"""``qsim search MODEL --hw PROFILE --data ... --max-drop 0.01 --objective latency|energy|memory``:
the cheapest per-layer plan on that chip whose measured accuracy drop stays within the budget;
``--out plan.yaml`` writes it as a workload that ``qsim run`` takes unchanged."""
from __future__ import annotations

import sys
from pathlib import Path

from qsim.cli.search_args import (BAND_DETAIL, add_model_flags, band_lines, cache_dir, check_early, ort_cpu_text,
                                  progress)
from qsim.errors import QsimError


def _fraction(text: str) -> float:
    import argparse

    try:
        value = float(text.rstrip("%")) / (100.0 if text.endswith("%") else 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction (0.01) or a percentage (1%), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a drop in [0, 1) (0.01 = 1 %), got {text!r}")
    return value


def add_parser(sub) -> None:
    p = sub.add_parser("search", help="hardware-aware mixed-precision search under an accuracy budget")
    add_model_flags(p, "int8,w4a8,w2a8,int16,int4,fp8")
    p.add_argument("--hw", required=True, help="hardware profile YAML or shipped name")
    p.add_argument("--max-drop", type=_fraction, default=0.01,
                   help="largest accuracy drop against the float model (0.01 or 1%%; default 0.01)")
    p.add_argument("--objective", choices=("latency", "energy", "memory"), default="latency")
    p.add_argument("--allow-emulated", action="store_true",
                   help="also try formats the chip only emulates on a wider unit (default: native formats only)")
    p.add_argument("--max-overflow", type=int, default=0,
                   help="accumulator overflow events allowed over the evaluation (default 0)")
    p.add_argument("--out", help="write the chosen plan as a workload YAML (qsim run takes it unchanged)")
    p.add_argument("--table", help="write every verified plan (the front) as .csv, .parquet or .html")
    p.set_defaults(func=_cmd_search)


def _cmd_search(args) -> int:
    from qsim.cli.sensitivity import TABLE_SUFFIXES, write_table
    from qsim.files import check_output_file
    from qsim.search.export import write_plan
    from qsim.search.inputs import load_inputs
    from qsim.search.search import search

    if args.out:
        if Path(args.out).suffix not in (".yaml", ".yml"):
            raise QsimError(f"--out {args.out}: expected a workload .yaml file")
        check_output_file(args.out, "--out")
    if args.table:
        if Path(args.table).suffix not in TABLE_SUFFIXES:
            raise QsimError(f"--table {args.table}: expected a .csv, .parquet or .html file")
        check_output_file(args.table, "--table")
    if args.max_overflow < 0:
        raise QsimError(f"--max-overflow {args.max_overflow}: expected a count >= 0")
    check_early(args)
    inp = load_inputs(args.model, args.data, args.samples, args.calibration, args.metric, args.batch, args.base)
    result = search(inp.graph, args.hw, inp.evaluation, args.max_drop, args.objective, args.candidates,
                    native_only=not args.allow_emulated, max_overflow=args.max_overflow, base_plan=inp.base,
                    policy=args.policy, cache_dir=cache_dir(args), progress=progress("sensitivity"),
                    cost_graph=inp.cost_graph, ort_cpu=args.ort_cpu)
    table = result.table()
    print(f"{inp.model.name} on {result.profile}: {result.stats['metric']} on {result.stats['samples']} samples, "
          f"objective {result.objective}, max drop {result.max_drop:g}; {result.simulations} simulations run "
          f"in {result.seconds:.1f} s" + ort_cpu_text(args.policy, result.stats["ort_cpu"]))
    print("\n".join(band_lines(result.error_band)))
    for fmt, why in result.excluded.items():
        print(f"  excluded {fmt}: {why}")
    print(table.drop(columns=BAND_DETAIL, errors="ignore").to_string(index=False))
    print(result.message)
    if args.table:
        write_table(table, Path(args.table))
        print(f"wrote {args.table}", file=sys.stderr)
    if args.out and result.best is not None:
        m = result.best.measured
        note = (f"qsim search on {result.profile}, objective {result.objective}: {result.best.label}; measured "
                f"{m.metric} {m.accuracy:.4f} (drop {m.accuracy_drop:.4g}) on {result.stats['samples']} samples")
        write_plan(args.out, inp.model, inp.cost_graph, result.best.plan, note)
        print(f"wrote {args.out}", file=sys.stderr)
    elif args.out:
        print(f"no plan met the budget: {args.out} not written", file=sys.stderr)
    return 0
