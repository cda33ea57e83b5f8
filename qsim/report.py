"""Turning an estimate into what people read: a terminal table, JSON, and files."""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

from qsim.errors import QsimError
from qsim.files import atomic_write, check_output_file

TABLE_COLUMNS = ["name", "op", "weight_format", "activation_format", "compute_unit", "macs", "weight_bytes",
                 "output_bytes", "bound", "latency_s", "cycles", "energy_j", "fused_into"]
JSON_LAYER_COLUMNS = ["name", "op", "weight_format", "activation_format", "compute_unit", "emulated", "fused",
                      "fused_into", "kernel_class", "launches", "stack_kernels",
                      "macs", "vector_ops", "params", "weight_bytes", "input_bytes", "output_bytes",
                      "compute_s", "memory_s", "bound", "latency_s", "cycles", "energy_j"]


def si(value: float, unit: str) -> str:
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""), (1e-3, "m"), (1e-6, "u"),
                           (1e-9, "n")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"0 {unit}" if value == 0 else f"{value:.3g} {unit}"


def mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB"


def error_band(profile, compute_units=None) -> dict[str, Any]:
    """How far this profile's estimates may be off: the held-out error of its validation, for the
    software stack it models. A profile without one says so (``validated`` false). Given the compute
    classes an estimate ran at, it also says whether the validated rows cover them (a band measured
    at fp16 says nothing of an int8 estimate)."""
    stack = getattr(profile, "stack", None)
    v = stack.validation if stack is not None else None
    if v is None:
        return {"validated": False, "stack": stack.name if stack else "",
                "text": f"no validation recorded for profile {profile.name!r}"
                        + (f" with stack {stack.name!r}" if stack else "") + ": error unknown"}
    band = {"validated": True, "stack": stack.name, "held_out_median_pct": v.held_out_median_pct,
            "held_out_worst_pct": v.held_out_worst_pct, "fitted_median_pct": v.fitted_median_pct,
            "fitted_worst_pct": v.fitted_worst_pct, "rows_fitted": v.rows_fitted, "rows_held_out": v.rows_held_out,
            "fitted": v.fitted, "held_out": v.held_out, "source": v.source, "precisions": list(v.precisions),
            "text": f"held-out error on this profile: median {v.held_out_median_pct:g} %, "
                    f"worst {v.held_out_worst_pct:g} %"}
    if compute_units is not None and v.precisions:
        outside = [u for u in compute_units if u not in v.precisions]
        band["covers_precision"] = not outside
        if outside:
            band["note"] = (f"the error band was measured at {', '.join(v.precisions)} only; this estimate runs "
                            f"{', '.join(outside)}, which it does not cover")
    return band


def band_columns(profile, compute_units=None) -> dict[str, Any]:
    """The error band as flat sweep-row columns (NaN where the profile has no validation;
    ``error_band_covers`` empty where the validation records no precisions)."""
    band = error_band(profile, compute_units)
    nan = float("nan")
    return {"stack": band["stack"], "error_median_pct": band.get("held_out_median_pct", nan),
            "error_worst_pct": band.get("held_out_worst_pct", nan), "error_band_covers": band.get("covers_precision")}


def totals_lines(workload: str, profile, precision: str, totals: dict[str, Any]) -> list[str]:
    lines = [f"workload {workload} on {profile.name} ({profile.description}) at {precision}",
             f"  MACs {si(totals['macs'], 'MAC')}   parameters {si(totals['params'], '')}   "
             f"weights {mib(totals['weight_bytes'])}   peak activations {mib(totals['peak_activation_bytes'])}"
             + (f"   KV cache {mib(totals['state_bytes'])}" if totals["state_bytes"] else ""),
             f"  latency {si(totals['latency_s'], 's')}, {error_band(profile)['text']}   "
             f"energy {si(totals['energy_j'], 'J')}"]
    note = error_band(profile, totals.get("compute_units")).get("note")
    if note:
        lines.append(f"  note: {note}")
    if getattr(profile, "stack", None) is not None:
        lines.append(f"  stack {profile.stack.name}: {profile.stack.runtime}")
    for name, fits in totals["fits"].items():
        need, cap = totals["memory_need_bytes"][name], profile.memories[name].capacity_bytes
        if need:
            verdict = "fits" if fits else "DOES NOT FIT"
            lines.append(f"  {name}: needs {mib(need)} of {mib(cap)}: {verdict}")
    if totals["emulated_nodes"]:
        lines.append(f"  note: {totals['emulated_nodes']} node(s) use a precision this profile has no unit for; "
                     "costed as emulated on a wider unit (column compute_unit)")
    return lines


def with_cycles(layers: pd.DataFrame, profile) -> pd.DataFrame:
    """The layers with a ``cycles`` column: each layer's latency in cycles of the profile's clock
    (rounded to whole cycles), next to ``latency_s``; unchanged for a profile without a clock."""
    clock_hz = getattr(profile, "clock_hz", None)
    if not clock_hz or "cycles" in layers.columns:
        return layers
    out = layers.copy()
    out.insert(out.columns.get_loc("latency_s") + 1, "cycles", (out["latency_s"] * clock_hz).round().astype("int64"))
    return out


def table_text(layers: pd.DataFrame) -> str:
    view = layers[[c for c in TABLE_COLUMNS if c in layers.columns]].copy()
    view["macs"] = view["macs"].map(lambda v: si(v, "") if v else "-")
    view["weight_bytes"] = view["weight_bytes"].map(lambda v: mib(v) if v else "-")
    view["output_bytes"] = view["output_bytes"].map(mib)
    view["latency_s"] = view["latency_s"].map(lambda v: si(v, "s"))
    view["energy_j"] = view["energy_j"].map(lambda v: si(v, "J"))
    view.loc[layers["emulated"], "compute_unit"] += "*"
    return view.to_string(index=False)


def report_dict(workload: str, profile_name: str, precision: str, layers: pd.DataFrame,
                totals: dict[str, Any], profile=None) -> dict[str, Any]:
    keys = ("macs", "params", "weight_bytes", "peak_activation_bytes", "state_bytes", "latency_s", "energy_j", "fits")
    # its text too (what `qsim run` prints), and whether it covers the precisions the estimate ran at
    band = error_band(profile, totals.get("compute_units")) if profile is not None else None
    return {
        "workload": workload, "profile": profile_name, "precision": precision,
        "totals": {k: totals[k] for k in keys}, "error_band": band,
        "layers": json.loads(layers[[c for c in JSON_LAYER_COLUMNS if c in layers.columns]].to_json(orient="records")),
    }


def band_html(band: dict[str, Any]) -> str:
    """An ``error_band`` as HTML list items: its text, and its note where it has one."""
    return f"<li>error band: {html.escape(band['text'])}</li>" + (
        f"<li>note: {html.escape(band['note'])}</li>" if band.get("note") else "")


REPORT_SUFFIXES = (".csv", ".parquet", ".json", ".html")


def check_report_path(path: Path) -> None:
    """Before any work: a known extension, and a target that is a file (not a folder, link or device)."""
    if path.suffix.lower() not in REPORT_SUFFIXES:
        raise QsimError(f"--out {path}: unknown extension {path.suffix!r}; use {', '.join(REPORT_SUFFIXES)}")
    check_output_file(path, "--out")


def write_report(path: Path, layers: pd.DataFrame, report: dict[str, Any]) -> None:
    """Write by extension: .csv, .parquet, .json, .html. Written to a temporary name, then moved,
    so a failure never leaves a partial file."""
    check_report_path(path)
    suffix = path.suffix.lower()

    def write(tmp: Path) -> None:
        if suffix == ".csv":
            layers.to_csv(tmp, index=False)
        elif suffix == ".parquet":
            try:
                layers.to_parquet(tmp, index=False)
            except ImportError:
                raise QsimError("writing Parquet needs pyarrow: pip install pyarrow") from None
        elif suffix == ".json":
            tmp.write_text(json.dumps(report, indent=1))
        else:  # .html (check_report_path allows nothing else)
            head = "".join(f"<li>{k}: {v}</li>" for k, v in report["totals"].items())
            if report.get("error_band"):  # beside the latency, as `qsim run` prints it
                head += band_html(report["error_band"])
            tmp.write_text(f"<html><head><meta charset='utf-8'><title>{report['workload']} on "
                           f"{report['profile']}</title></head><body><h1>{report['workload']} on "
                           f"{report['profile']} at {report['precision']}</h1><ul>{head}</ul>"
                           f"{layers.to_html(index=False)}</body></html>")

    atomic_write(path, write)
