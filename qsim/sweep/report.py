"""The sweep report: ``OUT/report.html`` with PNG figures beside it, plus results.csv / .parquet.

The HTML is one self-contained page of tables (the Pareto points, the best point per workload,
refusals) referencing the PNGs by relative name, so the folder can be moved or zipped as is.
"""
from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from qsim.report import mib, si
from qsim.files import atomic_write
from qsim.sweep import plots
from qsim.sweep.constraints import describe
from qsim.sweep.evaluate import point_layers
from qsim.sweep.pareto import GROUP_BY, pareto_front
from qsim.sweep.run import write_results
from qsim.sweep.spec import SweepSpec, load_spec

STYLE = """body{font-family:system-ui,sans-serif;margin:24px;max-width:1400px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:12px;margin:8px 0}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:right}th{background:#f3f3f3}
td.t,th.t{text-align:left}img{max-width:100%;border:1px solid #eee;margin:6px 0}
.note{color:#666;font-size:12px}"""
SHOWN = ["workload", "precision", "profile", "batch"]
METRICS = ["latency_s", "energy_j", "memory_bytes", "weight_bytes", "peak_activation_bytes", "tokens_per_s",
           "emulated_nodes", "fits", "accuracy", "accuracy_drop", "sqnr_db", "accuracy_metric", "meets_constraints"]
BAND = ["stack", "error_median_pct", "error_worst_pct", "error_band_covers"]  # each point's stack and error band
MAX_ROWS = 200


def _fmt(column: str, value) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "–"
    if column == "latency_s":
        return si(value, "s")
    if column == "energy_j":
        return si(value, "J")
    if column.endswith("_bytes"):
        return f"{value / 2**30:.2f} GiB" if value >= 2**30 else mib(int(value))
    if column == "tokens_per_s":
        return f"{value:,.1f}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(df: pd.DataFrame, columns: list[str]) -> str:
    columns = [c for c in columns if c in df.columns and (c in SHOWN or df[c].notna().any())]
    text = {c: " class='t'" if not pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])
            else "" for c in columns}  # words left-aligned, numbers right-aligned
    head = "".join(f"<th{text[c]}>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td{text[c]}>{html.escape(_fmt(c, row[c]))}</td>" for c in columns)
                   + "</tr>" for _, row in df.head(MAX_ROWS).iterrows())
    more = f"<p class='note'>{len(df) - MAX_ROWS} more rows in results.csv</p>" if len(df) > MAX_ROWS else ""
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def best_points(df: pd.DataFrame) -> pd.DataFrame:
    """Per workload, the Pareto point with the smallest energy-delay product (one common pick).
    With constraints (a ``meets_constraints`` column), only the points that meet them compete,
    on their own front; a workload none of whose points meets them has no best point."""
    if "meets_constraints" in df.columns:
        allowed = df[df["meets_constraints"].fillna(False).astype(bool)]
        by = [c for c in GROUP_BY if c in df.columns]
        front = allowed[pareto_front(allowed, by=by)].copy() if len(allowed) else allowed.copy()
    else:
        front = df[df["pareto"].fillna(False).astype(bool)].copy()
    if front.empty:
        return front
    front["_edp"] = front["latency_s"] * front["energy_j"]
    picks = front.sort_values("_edp", kind="stable").groupby("workload", sort=False).head(1)
    return picks.drop(columns="_edp")


def _metric(df: pd.DataFrame) -> str:
    names = df["accuracy_metric"].dropna().unique() if "accuracy_metric" in df.columns else []
    return ", ".join(map(str, names)) or "accuracy"


def _constraints_note(df: pd.DataFrame, best: pd.DataFrame) -> str:
    """Which constraints the best point obeys, and the workloads where no point meets them."""
    constraints = df.attrs.get("constraints") or {}
    if "meets_constraints" not in df.columns:
        return "<p class='note'>No constraints: the smallest energy x delay on the Pareto front.</p>"
    text = (f"<p class='note'>Constraints: {html.escape(describe(constraints))}; "
            f"{int(df['meets_constraints'].fillna(False).sum())} of {len(df)} points meet them. The best point is "
            "the smallest energy x delay among them.</p>")
    missing = [w for w in dict.fromkeys(df["workload"]) if w not in set(best["workload"])]
    if missing:
        text += (f"<p><b>No point meets the constraints</b> for {html.escape(', '.join(map(str, missing)))}: "
                 "no best point is named; relax the constraints or add precisions or profiles.</p>")
    return text


def _figure(path: Path | None, caption: str) -> str:
    if path is None:
        return ""
    return f"<figure><img src='{html.escape(path.name)}' alt='{html.escape(caption)}'><figcaption " \
           f"class='note'>{html.escape(caption)}</figcaption></figure>"


def write_report(df: pd.DataFrame, out_dir: str | Path, spec: SweepSpec | str | Path | None = None) -> Path:
    """Write report.html, its PNGs, results.csv and results.parquet under ``out_dir``; return the HTML path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = load_spec(spec) if spec is not None else None
    if spec is not None and "constraints" not in df.attrs:
        df.attrs["constraints"] = dict(spec.constraints)
    write_results(df, out)
    # the override axes (dotted profile keys) and the workload-parameter axes (seq, context, ...)
    params = list(spec.params) if spec is not None else df.attrs.get("param_axes") or []
    axes = [c for c in df.columns if "." in c] + [c for c in params if c in df.columns]
    varying_stack = ["stack"] if "stack" in df.columns and df.groupby("profile")["stack"].nunique().max() > 1 \
        else []  # an axis where one profile runs several stacks (shown with the band)
    by_color, by_marker = plots.style_axes(df)
    objectives = "latency, energy, memory" + (", accuracy" if df["accuracy"].notna().any() else "")
    figures = [_figure(plots.latency_energy(df, out / "latency_energy.png"),
                       f"Latency vs energy per workload; colour: {by_color}, marker: {by_marker}; ringed: on the Pareto "
                       f"front of its workload and batch ({objectives})."),
               _figure(plots.accuracy_cost(df, out / "accuracy_cost.png", df.attrs.get("constraints") or {}),
                       f"Accuracy ({_metric(df)}) against latency and against energy; colour: {by_color}, marker: "
                       f"{by_marker}; ringed: Pareto front; dashed: the accuracy budget (fp32 minus "
                       "max_accuracy_drop)."),
               _figure(plots.memory_need(df, out / "memory_need.png"),
                       "Memory need (weights + peak activations + KV cache, per memory) against capacity.")]
    best = best_points(df)
    if spec is not None:
        for i, (_, row) in enumerate(best.head(3).iterrows()):
            title = f"{row['workload']} at {row['precision']} on {row['profile']}: per-layer latency and energy"
            png = plots.layer_breakdown(point_layers(spec, row), title, out / f"layers_{i}.png")
            rule = "among the points that meet the constraints" if "meets_constraints" in df.columns else "on the front"
            figures.append(_figure(png, f"Best point (smallest energy x delay {rule}): {title}."))
    ok, refused = df[df["status"] == "ok"], df[df["status"] == "refused"]
    refusals = refused.groupby(["precision", "profile"], sort=False).agg(
        points=("point_id", "size"), reason=("reason", "first")).reset_index() if len(refused) else refused
    accuracy = ("not measured (add an evaluation: block to the spec or the workload)" if df["accuracy"].isna().all()
                else f"{_metric(df)}, measured by the bit-accurate simulator once per distinct plan, policy and "
                     f"accumulator ({df.attrs.get('evaluations', 0)} measurement(s) in this run)")
    if spec is not None and spec.evaluations:
        accuracy += "; " + "; ".join(f"{w}: {len(ev)} samples, {ev.calibration_note}"
                                     for w, ev in spec.evaluations.items())
    title = html.escape(df.attrs.get("sweep") or (spec.name if spec else out.name))
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>qsim sweep {title}</title>"
        f"<style>{STYLE}</style></head><body><h1>Sweep {title}</h1>",
        f"<p>{html.escape(spec.description)}</p>" if spec and spec.description else "",
        f"<p>{len(df)} points: {len(ok)} evaluated, {len(refused)} refused (the profile cannot run that "
        f"precision). Axes: {html.escape(', '.join(SHOWN + axes + varying_stack))}. Error band: each estimate's "
        "held-out error on its profile and stack (error_median_pct, error_worst_pct; none where not validated). "
        f"Accuracy: {accuracy}. Spec: "
        f"{html.escape(spec.source if spec else df.attrs.get('source', '?'))}. Data: "
        "<a href='results.csv'>results.csv</a>, <a href='results.parquet'>results.parquet</a>.</p>",
        "<h2>Best point per workload</h2>", _constraints_note(df, best), _table(best, SHOWN + axes + BAND + METRICS),
        "<h2>Figures</h2>", *figures,
        "<h2>Pareto front</h2><p class='note'>Per workload and batch; a point is on it when no other "
        "point is at least as good on every objective and better on one.</p>",
        _table(df[df["pareto"].fillna(False).astype(bool)], SHOWN + axes + BAND + METRICS),
        "<h2>Refused points</h2>", _table(refusals, ["precision", "profile", "points", "reason"])
        if len(refused) else "<p>None.</p>",
        f"<h2>All points</h2>", _table(df, SHOWN + axes + BAND + ["status"] + METRICS + ["pareto"]),
        "</body></html>",
    ]
    path = out / "report.html"
    atomic_write(path, lambda tmp: tmp.write_text("\n".join(parts), encoding="utf-8"))
    return path
