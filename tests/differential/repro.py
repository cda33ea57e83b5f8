"""Rerun one saved differential case and print where qsim and the runtime differ:

    python -m tests.differential.repro MODEL FEEDS.npz RUNTIME

RUNTIME: ort-all, ort-none, litert-reference, litert-optimized, litert-xnnpack. ``save_failure``
writes a failing case as a standalone model file, its feeds and the one-line command above, plus a
self-contained script that needs only onnxruntime / LiteRT and qsim."""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

from qsim.errors import QsimError

from .runners import run_qsim, run_reference

SCRIPT = '''"""Differential repro: {summary}"""
import numpy as np
import qsim

MODEL, FEEDS, RUNTIME = {model!r}, {feeds!r}, {runtime!r}
feeds = dict(np.load(FEEDS))
{run_runtime}
got = qsim.simulate(MODEL, feeds, policy={policy!r})
for name, want in ref.items():
    have = got.get(name)
    if have is None:
        print(name, "missing from qsim's outputs", sorted(got))
        continue
    print(name, "runtime", want.dtype, want.shape, "qsim", np.asarray(have).dtype, np.shape(have))
    if np.shape(have) == want.shape:
        bad = np.argwhere(np.asarray(have) != want)
        print("  differing elements:", len(bad), "of", want.size)
        for idx in bad[:5]:
            print("   ", tuple(idx), "runtime", want[tuple(idx)], "qsim", np.asarray(have)[tuple(idx)])
'''
ORT_RUN = '''import onnxruntime as ort
so = ort.SessionOptions()
so.intra_op_num_threads = 1
so.graph_optimization_level = ort.GraphOptimizationLevel.{level}
sess = ort.InferenceSession(MODEL, so, providers=["CPUExecutionProvider"])
ref = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))'''
LITERT_RUN = '''from ai_edge_litert.interpreter import Interpreter, OpResolverType
it = Interpreter(model_path=MODEL, num_threads=1, experimental_op_resolver_type=OpResolverType.{resolver})
it.allocate_tensors()
for d in it.get_input_details():
    it.set_tensor(d["index"], feeds[d["name"]])
it.invoke()
ref = {{d["name"]: it.get_tensor(d["index"]) for d in it.get_output_details()}}'''


def save_failure(model_path: Path, feeds: dict, runtime: str, summary: str, out_dir) -> str:
    """Copy the model, save its feeds and a standalone script under ``out_dir``; returns the
    one-line repro command."""
    from .runners import LITERT_KERNELS, ORT_LEVELS, policy_of

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = out / f"{model_path.stem}.{runtime}{model_path.suffix}"
    shutil.copyfile(model_path, model)
    feeds_path = model.with_suffix(".npz")
    np.savez(feeds_path, **feeds)
    family, variant = runtime.split("-", 1)
    run_runtime = ORT_RUN.format(level=ORT_LEVELS[variant]) if family == "ort" else \
        LITERT_RUN.format(resolver=LITERT_KERNELS[variant][0])
    model.with_suffix(".py").write_text(SCRIPT.format(summary=summary.replace('"""', "'"), model=str(model),
                                                      feeds=str(feeds_path), runtime=runtime,
                                                      run_runtime=run_runtime, policy=policy_of(runtime)))
    return f"python -m tests.differential.repro {model} {feeds_path} {runtime}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("feeds")
    ap.add_argument("runtime")
    args = ap.parse_args(argv)
    feeds = dict(np.load(args.feeds))
    ref = run_reference(args.model, feeds, args.runtime)
    try:
        got = run_qsim(args.model, feeds, args.runtime)
    except QsimError as exc:
        print(f"qsim refused: {type(exc).__name__}: {exc}")
        return 1
    bad_total = 0
    for name, want in ref.items():
        have = np.asarray(got[name]) if name in got else None
        if have is None or have.shape != want.shape or have.dtype != want.dtype:
            print(f"{name}: runtime {want.dtype}{want.shape}, qsim "
                  f"{'missing' if have is None else f'{have.dtype}{have.shape}'}")
            bad_total += 1
            if have is None or have.shape != want.shape:
                continue
        bad = np.argwhere(have != want)
        bad_total += len(bad)
        print(f"{name}: {len(bad)} of {want.size} elements differ")
        for idx in bad[:8]:
            print("   ", tuple(int(i) for i in idx), "runtime", want[tuple(idx)], "qsim", have[tuple(idx)])
    return 1 if bad_total else 0


if __name__ == "__main__":
    sys.exit(main())
