"""``qsim sensitivity MODEL --data ... --candidates int8,int4,fp8 [--hw PROFILE]``: lower one layer at
a time from the base plan; per layer and format the measured accuracy drop, output SQNR, overflow
and saturation counts, and with a profile the latency, energy and memory saved on that chip."""
from __future__ import annotations

import sys
from pathlib import Path

from qsim.cli.search_args import (BAND_DETAIL, add_model_flags, band_lines, cache_dir, check_early, ort_cpu_text,
                                  progress)
from qsim.errors import QsimError

TABLE_SUFFIXES = (".csv", ".parquet", ".html")


def add_parser(sub) -> None:
    p = sub.add_parser("sensitivity", help="per-layer accuracy and cost of lowering one layer at a time")
    add_model_flags(p, "int8,w4a8,int4,fp8")
    p.add_argument("--hw", help="hardware profile: adds the latency, energy and memory each lowering saves")
    p.add_argument("--out", help="write the table: x.csv, x.parquet or x.html")
    p.add_argument("--plot", help="write a chart of the accuracy drop per layer and format (x.png)")
    p.set_defaults(func=_cmd_sensitivity)


def _cmd_sensitivity(args) -> int:
    from qsim.files import check_output_file
    from qsim.search.inputs import load_inputs
    from qsim.search.sensitivity import sensitivity

    if args.out:
        if Path(args.out).suffix not in TABLE_SUFFIXES:
            raise QsimError(f"--out {args.out}: expected a .csv, .parquet or .html file")
        check_output_file(args.out, "--out")
    if args.plot:
        if Path(args.plot).suffix != ".png":
            raise QsimError(f"--plot {args.plot}: expected a .png file")
        check_output_file(args.plot, "--plot")
    check_early(args)
    inp = load_inputs(args.model, args.data, args.samples, args.calibration, args.metric, args.batch, args.base)
    df = sensitivity(inp.graph, inp.base, inp.evaluation, args.candidates, args.hw, policy=args.policy,
                     cache_dir=cache_dir(args), progress=progress("sensitivity"), cost_graph=inp.cost_graph,
                     ort_cpu=args.ort_cpu)
    a = df.attrs
    print(f"{inp.model.name}: base plan {a['base_plan']}, {a['metric']} {a['base_accuracy']:.4f} (float "
          f"{a['reference_accuracy']:.4f}) on {a['samples']} samples; {a['simulations']} simulations run"
          + (f"; savings on {a['profile']}" if a["profile"] else "") + ort_cpu_text(args.policy, a["ort_cpu"]))
    if a.get("error_band"):
        print("\n".join(band_lines(a["error_band"])))
    print(df.drop(columns=["executed_by", *BAND_DETAIL], errors="ignore").to_string(index=False))
    if args.out:
        write_table(df, Path(args.out))
        print(f"wrote {args.out}", file=sys.stderr)
    if args.plot:
        plot_sensitivity(df, Path(args.plot))
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def write_table(df, path: Path) -> None:
    """By extension; the HTML page says the cost estimates' error band (``attrs["error_band"]``) above
    the table as ``qsim run``'s report does (the CSV and Parquet rows carry it as columns)."""
    from qsim.files import atomic_write
    from qsim.report import band_html

    if path.suffix == ".csv":
        atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))
    elif path.suffix == ".parquet":
        atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
    else:
        band = df.attrs.get("error_band")
        head = f"<ul>{band_html(band)}</ul>" if band else ""
        atomic_write(path, lambda tmp: tmp.write_text(head + df.to_html(index=False)))


def plot_sensitivity(df, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from qsim.files import atomic_write

    table = df.pivot(index="layer", columns="candidate", values="drop_vs_base").reindex(df["layer"].unique())
    fig, ax = plt.subplots(figsize=(max(5.0, 0.5 * len(table) + 2), 3.5))
    table.plot.bar(ax=ax)
    ax.set_ylabel("accuracy drop vs base plan")
    ax.set_title(f"per-layer sensitivity (base {df.attrs.get('base_plan')})")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
