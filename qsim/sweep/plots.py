"""The report's figures (matplotlib, Agg backend: files only, no display needed).

Each function takes the result table (or one point's per-layer table), writes one PNG and
returns its path. Logarithmic axes throughout: design points span orders of magnitude.
"""
from __future__ import annotations

import math
from pathlib import Path

from qsim.errors import SweepError

try:
    import matplotlib
except ModuleNotFoundError:  # an optional dependency: the sweep extra
    raise SweepError("sweep reports draw their figures with matplotlib: pip install 'qsim[sweep]' "
                     "(or pip install matplotlib pyarrow)") from None

matplotlib.use("Agg")  # no display on servers and CI; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from qsim.files import atomic_write  # noqa: E402

MARKERS = "osD^vP*Xh<>"
# tab10 and tab20 without their greys: grey is kept for the legend of markers (profiles, workloads)
PALETTE = [c for i, c in enumerate(plt.cm.tab10.colors) if i != 7] + [
    c for i, c in enumerate(plt.cm.tab20.colors) if i % 2 and i not in (15,)]
MAX_PANELS = 6


def _grid(n: int, width: float = 5.2, height: float = 4.0, max_cols: int = 3):
    cols = min(n, max_cols)
    rows = math.ceil(n / cols)
    # constrained layout: room for the legend placed outside the panels
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols + 1.6, height * rows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    return _write(fig, path)


def _write(fig, path: Path) -> Path:
    """Through the one atomic writer (a full disk is one line), then free the figure."""
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    finally:
        plt.close(fig)
    return path


def style_axes(df: pd.DataFrame) -> tuple[str, str]:
    """The axes shown by colour and by marker: precision and profile, unless one of them is fixed
    and another axis varies (an array-size sweep is read by its override values)."""
    overrides = [c for c in df.columns if "." in c]
    params = df.attrs.get("param_axes") or []  # workload parameters (seq, context) as named in the spec
    # the stack (the one undotted override) is an axis of its own only where one profile runs several
    stack = ["stack"] if "stack" in df.columns and df.groupby("profile")["stack"].nunique().max() > 1 else []
    varying = [c for c in ["precision", "profile", *stack, *overrides, *params, "batch"]
               if c in df.columns and df[c].nunique() > 1]
    color = varying[0] if varying else "precision"
    rest = [c for c in varying if c != color]
    return color, (rest[0] if rest else "profile")


def latency_energy(df: pd.DataFrame, path: Path) -> Path | None:
    """Latency vs energy, one panel per workload, colour and marker per axis (precision and
    profile by default); the Pareto points (latency, energy, memory, accuracy when present) ringed."""
    ok = df[df["status"] == "ok"]
    if ok.empty:
        return None
    by_color, by_marker = style_axes(df)
    workloads = list(dict.fromkeys(ok["workload"]))[:MAX_PANELS]
    color_values = list(dict.fromkeys(df[by_color]))
    marker_values = list(dict.fromkeys(df[by_marker]))
    colors = {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(color_values)}
    markers = {v: MARKERS[i % len(MARKERS)] for i, v in enumerate(marker_values)}
    fig, axes = _grid(len(workloads))
    for ax, workload in zip(axes, workloads):
        sub = ok[ok["workload"] == workload]
        for (cv, mv), g in sub.groupby([by_color, by_marker], sort=False, dropna=False):
            ax.scatter(g["latency_s"], g["energy_j"], color=colors[cv], marker=markers[mv], s=28, alpha=0.8)
        front = sub[sub["pareto"].fillna(False).astype(bool)]
        ax.scatter(front["latency_s"], front["energy_j"], facecolors="none", edgecolors="black", s=110,
                   linewidths=1.4)
        ax.set(xscale="log", yscale="log", xlabel="latency (s)", ylabel="energy (J)", title=workload)
        ax.grid(True, which="major", alpha=0.3)
    named = by_color not in ("precision", "profile")
    handles = [plt.Line2D([], [], color=colors[v], marker="o", ls="", label=f"{by_color} = {v}" if named else v)
               for v in color_values]
    named = by_marker not in ("precision", "profile")
    handles += [plt.Line2D([], [], color="black", mfc="none", marker=markers[v], ls="",
                           label=f"{by_marker} = {v}" if named else v) for v in marker_values]
    handles.append(plt.Line2D([], [], marker="o", ls="", mfc="none", mec="black", ms=10, label="Pareto front"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    return _write(fig, path)


def accuracy_cost(df: pd.DataFrame, path: Path, constraints=None) -> Path | None:
    """Accuracy against latency (left) and against energy (right), one row of panels per workload
    (up to MAX_PANELS); Pareto points ringed; the budget ``fp32 accuracy - max_accuracy_drop`` dashed."""
    ok = df[(df["status"] == "ok") & df["accuracy"].notna()] if "accuracy" in df.columns else df.iloc[:0]
    if ok.empty:
        return None
    by_color, by_marker = style_axes(df)
    workloads = list(dict.fromkeys(ok["workload"]))[:MAX_PANELS]
    colors = {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(dict.fromkeys(df[by_color]))}
    markers = {v: MARKERS[i % len(MARKERS)] for i, v in enumerate(dict.fromkeys(df[by_marker]))}
    fig, axes = plt.subplots(len(workloads), 2, figsize=(11.5, 3.8 * len(workloads)), squeeze=False,
                             layout="constrained")
    for row, workload in zip(axes, workloads):
        sub = ok[ok["workload"] == workload]
        for ax, column, label in ((row[0], "latency_s", "latency (s)"), (row[1], "energy_j", "energy (J)")):
            for (cv, mv), g in sub.groupby([by_color, by_marker], sort=False, dropna=False):
                ax.scatter(g[column], g["accuracy"], color=colors[cv], marker=markers[mv], s=30, alpha=0.8,
                           label=f"{cv} / {mv}")
            front = sub[sub["pareto"].fillna(False).astype(bool)]
            ax.scatter(front[column], front["accuracy"], facecolors="none", edgecolors="black", s=110, linewidths=1.4)
            budget = (constraints or {}).get("max_accuracy_drop")
            fp32 = (sub["accuracy"] + sub["accuracy_drop"]).dropna()
            if budget is not None and len(fp32):
                line = float(fp32.iloc[0]) - budget
                ax.axhline(line, color="tab:red", ls="--", lw=1)
                low, high = ax.get_ylim()
                ax.set_ylim(min(low, line - 0.05 * (high - line)), high)
            metric = next(iter(sub["accuracy_metric"].dropna()), "accuracy")
            ax.set(xscale="log", xlabel=label, ylabel=f"accuracy ({metric})", title=workload)
            ax.grid(True, which="major", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=7, frameon=False, title=f"{by_color} / {by_marker}")
    return _write(fig, path)


def layer_breakdown(layers: pd.DataFrame, title: str, path: Path, top: int = 20) -> Path:
    """The ``top`` layers by latency (the rest summed in one bar): latency and energy side by side."""
    view = layers.sort_values("latency_s", ascending=False)
    head, rest = view.head(top), view.iloc[top:]
    labels = [f"{n} ({o})" for n, o in zip(head["name"], head["op"])]
    latency, energy = list(head["latency_s"]), list(head["energy_j"])
    if len(rest):  # in the title, not as a bar: a bar summing 80 layers would flatten the others
        lat_share = head["latency_s"].sum() / view["latency_s"].sum()
        energy_share = head["energy_j"].sum() / view["energy_j"].sum()
        title += (f"\nshown: top {top} of {len(view)} layers by latency ({lat_share:.0%} of latency, "
                  f"{energy_share:.0%} of energy)")
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 0.28 * len(labels) + 1.6), sharey=True)
    y = range(len(labels))
    a.barh(y, [v * 1e3 for v in latency], color="tab:blue")
    b.barh(y, [v * 1e3 for v in energy], color="tab:orange")
    a.set_yticks(list(y), labels, fontsize=7)
    a.invert_yaxis()
    a.set_xlabel("latency (ms)")
    b.set_xlabel("energy (mJ)")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def memory_need(df: pd.DataFrame, path: Path) -> Path | None:
    """Per profile: each memory's need per precision (one marker per workload) against its
    capacity (dashed; one line per capacity value the sweep tried)."""
    ok = df[df["status"] == "ok"]
    if ok.empty:
        return None
    profiles = [p for p in dict.fromkeys(df["profile"]) if p in set(ok["profile"])][:MAX_PANELS]
    workloads = list(dict.fromkeys(ok["workload"]))
    fig, axes = _grid(len(profiles), width=6.0, max_cols=2)
    for ax, profile in zip(axes, profiles):
        sub = ok[ok["profile"] == profile]
        precisions = list(dict.fromkeys(sub["precision"]))
        xpos = {p: i for i, p in enumerate(precisions)}
        memories = [c[5:-6] for c in sub.columns if c.startswith("need_") and sub[c].notna().any()]
        for j, mem in enumerate(memories):
            color = plt.cm.Set1(j % 9)
            for k, workload in enumerate(workloads):
                g = sub[sub["workload"] == workload]
                need = g[f"need_{mem}_bytes"].astype("float64") / 2**20
                if need.gt(0).any():
                    x = [xpos[p] + (j - (len(memories) - 1) / 2) * 0.15 for p in g["precision"]]
                    ax.scatter(x, need, color=color, marker=MARKERS[k % len(MARKERS)], s=26, alpha=0.8)
            for cap in sorted(set(sub[f"capacity_{mem}_bytes"].dropna())):
                ax.axhline(cap / 2**20, color=color, ls="--", lw=1)
            ax.plot([], [], color=color, ls="--", label=f"{mem} (dashed: capacity)")
        ax.set_xticks(range(len(precisions)), precisions, rotation=30, ha="right", fontsize=8)
        ax.set(yscale="log", ylabel="memory need (MiB)", title=profile)
        ax.legend(fontsize=7, loc="best")
        ax.grid(True, axis="y", alpha=0.3)
    handles = [plt.Line2D([], [], color="black", mfc="none", marker=MARKERS[k % len(MARKERS)], ls="", label=w)
               for k, w in enumerate(workloads)]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    return _write(fig, path)
