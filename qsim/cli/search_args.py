"""Flags that ``qsim sensitivity`` and ``qsim search`` share: the model, its evaluation data, the
candidates and the measurement cache."""
from __future__ import annotations

import sys
from pathlib import Path

from qsim.cli.args import positive_int
from qsim.sim.validate_cli import add_ort_cpu_flag  # light: no simulator import for ``--help``

CACHE_HELP = ("folder of cached measurements (one JSON file per plan, keyed by its accuracy key): a rerun after "
              "an interruption redoes no finished simulation (default: beside --out, else reports/.qsim-cache)")


def add_model_flags(p, candidates_default: str) -> None:
    p.add_argument("model", help="digits, minilm, an .onnx / .tflite float model, or a workload YAML naming one")
    p.add_argument("--data", help="evaluation data: a shipped set (digits, minilm), a file.npz (one array per model "
                   "input, keyed by its name, in the model's own layout: NHWC for a .tflite image; optional labels), or package.module:function (default: the workload's evaluation: block, or the "
                   "shipped model's own set)")
    p.add_argument("--calibration", help="calibration data, same forms as --data (default: the set's own, or "
                   "the first tenth of --data)")
    p.add_argument("--samples", type=positive_int, help="evaluate on the first N samples")
    p.add_argument("--batch", type=positive_int, help="samples per simulation run (default: all, up to 1024)")
    p.add_argument("--metric", help="top1, topk, cosine, sqnr, mse or package.module:function "
                   "(default: top1 with labels, else cosine)")
    p.add_argument("--candidates", default=candidates_default,
                   help=f"comma-separated precisions to try per layer (default {candidates_default})")
    p.add_argument("--base", help="the plan layers are lowered from (default: the workload's plan, else int8)")
    p.add_argument("--policy", default="onnxruntime", help="requantization policy of the integer executor")
    add_ort_cpu_flag(p, "under the onnxruntime policy, ", then=". It enters the measurement cache's key")
    p.add_argument("--cache", help=CACHE_HELP)


def check_early(args) -> None:
    """The flags that need no model or data, checked before the model is trained or loaded."""
    from qsim.search.space import parse_candidates

    parse_candidates(args.candidates)
    from qsim.sim.int_runtime import ort_cpu_name

    ort_cpu_name(args.ort_cpu)  # a bad QSIM_ORT_CPU, before the model is trained
    if getattr(args, "hw", None):
        from qsim.api import as_profile

        as_profile(args.hw)


def cache_dir(args) -> Path:
    if args.cache:
        return Path(args.cache)
    out = getattr(args, "out", None)
    return Path(out).parent / ".qsim-cache" if out else Path("reports") / ".qsim-cache"


def progress(label: str):
    """A one-line progress report on stderr (only on a terminal)."""
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        print(f"\r{label}: {done}/{total} measured", end="\n" if done == total else "", file=sys.stderr, flush=True)

    return show


def ort_cpu_text(policy: str, kind: str) -> str:
    """The CPU kind the accuracies were simulated for, where the policy depends on it."""
    from qsim.numerics.policies import PolicyName, policy_name

    return f"; onnxruntime as on CPU kind {kind!r}" if policy_name(policy) is PolicyName.ONNXRUNTIME else ""


# the band's figures, printed once above a table (band_lines) rather than on every row of it
BAND_DETAIL = ["stack", "error_median_pct", "error_worst_pct"]


def band_lines(band: dict) -> list[str]:
    """The cost estimates' error band (``qsim.report.error_band``) as ``qsim run`` prints it, with its
    note where some estimate runs at a precision the validated rows do not cover."""
    note = [f"  note: {band['note']}"] if band.get("note") else []
    return [f"  latency and energy estimates: {band['text']}"] + note
