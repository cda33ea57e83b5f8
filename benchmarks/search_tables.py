"""Mixed-precision search on real models: the README's search tables, the exhaustive comparison and
the search's speed.

1. Digits CNN (trained here; 540 held-out images; calibration: the training split) on ``iot`` and
   ``imx93``, objectives latency and memory, 1 % top-1 budget, native formats only. Each search runs
   on a fresh Measurer (no cache), so its simulation count is what it needs alone. Then every plan
   of the space (the candidates' product over conv1, conv2, fc) is simulated once and costed on
   each chip: the exhaustive front and best plan within the budget, against the search's.
2. all-MiniLM-L6-v2 (a few template sentences; cosine with the float embedding; calibration: 16
   other sentences) on ``mobile`` and ``cloud``, layers grouped per block (the six Gemms of a block
   take one precision), base plans that each chip runs natively (see ``MINILM``). Its measurements
   are cached in ``--work``/cache: a rerun after an interruption resumes (and then counts fewer
   simulations).

Every accuracy is a full bit-exact simulation on the compiled integer executor (fp8 by value
emulation). BLAS is limited to one thread: on a shared two-core machine OpenBLAS's threads made
the float calibration pass 15x slower.

    python benchmarks/search_tables.py [--skip-digits] [--skip-minilm] [--sentences 16] [--skip-exhaustive]
"""
from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import pandas as pd

from qsim.evaluation.data import load_evaluation
from qsim.evaluation.evaluate import markdown
from qsim.precision import PrecisionPlan, parse_precision
from qsim.search import Measurer, search
from qsim.search.models import load_search_model
from qsim.search.search import pareto
from qsim.search.space import Coster, default_layers, parse_candidates, plan_for

DIGITS_CANDIDATES = "int8,int16,w4a8,w3a8,w2a8"  # native on both iot and imx93 (w<8: int8 compute, packed weights)
NORM_OPS = ("LayerNorm", "Add", "Softmax", "GELU")
MINILM = {  # profile: (base plan, candidates, max drop of the cosine)
    "mobile": ({"default": "int8", "overrides": [{"op": op, "precision": "int16"} for op in NORM_OPS]},
               "int8,w4a8", 0.06),
    "cloud": ("fp8", "fp8,int8,w4a8", 0.02),
}


def front_table(result) -> pd.DataFrame:
    """The uniform plans and the search's verified plans on the front, README columns."""
    t = result.table()
    t = t[(t["source"] != "search") | t["on_front"]]
    return pd.DataFrame({
        "plan": [p + (" **best**" if b else "") for p, b in zip(t["plan"], t["best"])],
        "accuracy": t["accuracy"], "drop": t["accuracy_drop"], "latency (us)": t["latency_s"] * 1e6,
        "energy (uJ)": t["energy_j"] * 1e6, "memory (KiB)": t["memory_bytes"] / 1024,
        "overflow": t["overflow_events"], "meets": t["meets"]})


def run_search(graph, cost_graph, evaluation, profile, objective, candidates, max_drop, cache_dir=None, **kw):
    measurer = Measurer(graph, evaluation, acc_bits=Coster(cost_graph, profile).profile.compute.accumulator_bits,
                        cache_dir=cache_dir)
    start = time.perf_counter()
    result = search(graph, profile, measurer, max_drop, objective, candidates, cost_graph=cost_graph, **kw)
    wall = time.perf_counter() - start
    print(f"#### {graph.name} on {profile}, objective {objective}, max drop {max_drop:g}\n")
    for fmt, why in result.excluded.items():
        print(f"- excluded {fmt}: {why}")
    print()
    print(markdown(front_table(result)))
    print(f"\n{result.message}\n\nsearch: {result.simulations} full simulations, {wall:.1f} s wall "
          f"({result.simulations / wall:.2f} simulations/s; simulations alone {measurer.seconds:.1f} s)\n")
    return result, wall


def exhaustive(graph, cost_graph, evaluation, profiles, objectives, candidates, max_drop, searched):
    layers = default_layers(graph)
    options = parse_candidates(candidates)
    measurer = Measurer(graph, evaluation)
    base = PrecisionPlan(parse_precision("int8"))
    start = time.perf_counter()
    plans = [plan_for(graph, base, layers, dict(zip(layers, combo)))
             for combo in itertools.product(options, repeat=len(layers))]
    measured = [measurer.measure(p) for p in plans]
    wall = time.perf_counter() - start
    print(f"#### Exhaustive: {len(plans)} plans ({len(options)} formats ^ {len(layers)} layers), "
          f"{measurer.simulations} full simulations in {wall:.1f} s ({measurer.simulations / wall:.2f}/s)\n")
    rows = []
    for profile in profiles:
        coster = Coster(cost_graph, profile)
        costs = [coster.cost(p) for p in plans]
        for objective in objectives:
            df = pd.DataFrame({"accuracy": [m.accuracy for m in measured],
                               "cost": [c.objective(objective) for c in costs],
                               "ok": [m.accuracy_drop <= max_drop and m.overflow_events == 0 and c.fits
                                      for m, c in zip(measured, costs)]})
            front = df[pareto(df, "cost")]
            best = df[df["ok"]]["cost"].min()
            result = searched[(profile, objective)]
            found = result.best.cost.objective(objective) if result.best else float("nan")
            search_pts = {(round(p.measured.accuracy, 9), round(p.cost.objective(objective), 15))
                          for p in result.points}
            on_front = sum((round(a, 9), round(c, 15)) in search_pts for a, c in zip(front["accuracy"], front["cost"]))
            rows.append({"profile": profile, "objective": objective, "exhaustive best": best, "search best": found,
                         "gap %": 100 * (found - best) / best, "exhaustive front": len(front),
                         "front points found": on_front, "simulations (search)": result.simulations,
                         "simulations (exhaustive)": len(plans)})
    print(markdown(pd.DataFrame(rows), digits=6))
    print()


def digits(skip_exhaustive: bool) -> None:
    model = load_search_model("digits")
    ev = load_evaluation({"data": "digits"}, "benchmark")
    graph, cost_graph = model.build(len(ev)), model.build(1)
    print(f"### Digits CNN ({len(ev)} held-out images, top-1; candidates {DIGITS_CANDIDATES})\n")
    searched = {}
    for profile in ("iot", "imx93"):
        for objective in ("latency", "memory"):
            searched[(profile, objective)] = run_search(graph, cost_graph, ev, profile, objective,
                                                        DIGITS_CANDIDATES, 0.01)[0]
    if not skip_exhaustive:
        exhaustive(graph, cost_graph, ev, ("iot", "imx93"), ("latency", "memory"), DIGITS_CANDIDATES, 0.01,
                   searched)


def minilm_calibration(folder: Path, sentences: int = 16) -> Path:
    """16 sentences the evaluation does not use (the minilm set's own calibration part), as the
    ``embed`` input of the host-lookup graph."""
    from qsim.evaluation import minilm as M
    from qsim.evaluation.sets import MINILM_CALIBRATION, MINILM_SENTENCES

    tok = M.tokenizer()
    ids = M.encode(tok, M.sentences(MINILM_SENTENCES + MINILM_CALIBRATION, seed=0, tok=tok))[MINILM_SENTENCES:]
    path = folder / "minilm_calibration.npz"
    if not path.is_file():  # kept: the measurement cache is keyed by the file (and its time)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(path, embed=M.host_feeds(ids[:sentences], M.load_weights())["embed"])
    return path


def minilm(sentences: int, folder: Path) -> None:
    ev = load_evaluation({"data": "minilm", "samples": sentences, "calibration": str(minilm_calibration(folder))},
                         "benchmark")
    model = load_search_model("minilm", ev)
    graph, cost_graph = model.build(sentences), model.build(1)
    layers = {f"block{i}": [f"l{i}.{p}" for p in ("q", "k", "v", "o", "ffn1", "ffn2")] for i in range(6)}
    print(f"### all-MiniLM-L6-v2 ({sentences} template sentences, mean cosine with float; calibration 16 other "
          "sentences; 6 layer groups: the six Gemms of each encoder block)\n")
    for profile, (base, candidates, max_drop) in MINILM.items():
        print(f"base plan on {profile}: {base}\n")
        run_search(graph, cost_graph, ev, profile, "latency", candidates, max_drop, cache_dir=folder / "cache",
                   base_plan=base, layers=layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=16, help="MiniLM evaluation sentences")
    parser.add_argument("--skip-minilm", action="store_true")
    parser.add_argument("--skip-digits", action="store_true")
    parser.add_argument("--skip-exhaustive", action="store_true")
    parser.add_argument("--work", default="reports/search_bench", help="folder for the MiniLM calibration file")
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        start = time.perf_counter()
        if not args.skip_digits:
            digits(args.skip_exhaustive)
        if not args.skip_minilm:
            minilm(args.sentences, Path(args.work))
        print(f"(total {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
