"""Long differential run: fresh seeds for every unit of every family, and whole networks in between,
for N minutes. Every failing case is written under OUT as a standalone model file, its feeds, a
self-contained script and a one-line repro command (``repro.txt``); ``report.txt`` has the counts.

    python -m tests.differential.long --minutes 30 --out reports/fuzz [--first-seed 100000] [--networks]
"""
from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from collections import Counter
from pathlib import Path

from .budget import KNOWN, KNOWN_RUNTIME, NETWORK_REFUSALS, accepted_network_refusal, accepted_refusal
from .cases import Outcome, builders, run_case, write_case
from .repro import save_failure
from .tally import record, table


def _classify(o: Outcome, kind: str) -> str:
    """failure | known | ok"""
    family = o.family.removeprefix("net-")
    if kind in ("equal", "runtime-refused") or (kind == "qsim-refused" and accepted_refusal(family, o.op, o.runtime)):
        return "ok"
    if kind == "qsim-refused" and o.family.startswith("net-") and accepted_network_refusal(" ".join(o.result.problems)):
        return "ok"
    if kind == "qsim-refused" and any(key in o.op for key in NETWORK_REFUSALS):
        return "ok"
    return "known" if (family, o.runtime) in KNOWN_RUNTIME or (family, o.op) in KNOWN else "failure"


def _save(o: Outcome, feeds: dict, out: Path, log) -> None:
    cmd = save_failure(o.path, feeds, o.runtime, o.result.summary()[:300], out / "cases")
    log.write(f"{o.family} {o.op} seed {o.seed} {o.runtime}: {o.result.summary()[:300]}\n    {cmd}\n")
    log.flush()


def run(minutes: float, out: Path, first_seed: int, networks: bool, save_known: bool) -> Counter:
    out.mkdir(parents=True, exist_ok=True)
    tally: Counter = Counter()
    deadline = time.monotonic() + 60 * minutes
    units = [(f, op) for f in ("onnx", "qdq", "tflite") for op in builders(f)]
    nets = iter(_network_names()) if networks else iter(())
    with tempfile.TemporaryDirectory() as tmp, open(out / "repro.txt", "w") as log:
        for seed in itertools.count(first_seed):
            for family, op in units:
                try:
                    outcomes = run_case(family, op, seed, tmp)
                except Exception as exc:  # a generator defect: report it, keep fuzzing the rest
                    tally[(family, op, "-", "generator-error")] += 1
                    log.write(f"{family} {op} seed {seed}: generator error {type(exc).__name__}: {exc}\n")
                    continue
                for o in outcomes:
                    verdict = _classify(o, record(o, tally))
                    if verdict == "failure" or (verdict == "known" and save_known):
                        _save(o, write_case(family, op, seed, tmp)[1], out, log)
            name = next(nets, None) if seed % 20 == 0 else None
            if name is not None:
                _network(name, tmp, tally, out, log, save_known)
            if time.monotonic() > deadline:
                break
        (out / "report.txt").write_text(f"seeds {first_seed}..{seed}, {minutes} min\n{table(tally)}\n")
    return tally


def _network_names():
    from .networks import all_networks
    return itertools.cycle(all_networks())


def _network(name: str, tmp, tally: Counter, out: Path, log, save_known: bool) -> None:
    from .networks import run_network

    try:
        path, feeds, results = run_network(name, tmp)
    except Exception as exc:  # a generator (or quantize_static) defect: report it, keep going
        tally[("net", name, "-", "generator-error")] += 1
        log.write(f"network {name}: generator error {type(exc).__name__}: {exc}\n")
        return
    family = "qdq" if ":qdq:" in name else name.split(":")[0]
    for runtime, result in results:
        o = Outcome(f"net-{family}", name, 0, runtime, path, result)
        verdict = _classify(o, record(o, tally))
        if verdict == "failure" or (verdict == "known" and save_known):
            _save(o, feeds, out, log)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--first-seed", type=int, default=100_000, help="CI uses seeds from 0; start elsewhere")
    ap.add_argument("--networks", action="store_true", help="interleave whole networks (224x224 included)")
    ap.add_argument("--save-known", action="store_true", help="also write cases of the known mismatch classes")
    args = ap.parse_args(argv)
    tally = run(args.minutes, args.out, args.first_seed, args.networks, args.save_known)
    print(table(tally))
    failures = (args.out / "repro.txt").read_text().count("\n    python")
    print(f"{failures} failing cases outside the known classes written under {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

