"""Long differential run: fresh seeds for every unit of every family, and whole networks in between,
for N minutes. Every failing case is written under OUT as a standalone model file, its feeds, a
self-contained script and a one-line repro command (``repro.txt``); ``report.txt`` has the counts.
The fuzzing runs in a child process: a case that kills it (a runtime aborting inside invoke) is
counted as ``runtime-crashed``, written to ``repro.txt`` as a failure, and the run goes on after it.

    python -m tests.differential.long --minutes 30 --out reports/fuzz [--first-seed 100000] [--networks]
    python -m tests.differential.long --minutes 8 --out reports/nets --only-networks mobilenet_v3,shufflenet

Networks take the loop's seed (their weights, calibration data and inputs differ per seed).
``--only-networks`` runs no units: only the networks whose names contain one of the given words, every
configuration once per seed, the 32x32 ones first.
"""
from __future__ import annotations

import argparse
import itertools
import pickle
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from .budget import KNOWN, KNOWN_RUNTIME, NETWORK_REFUSALS, accepted_network_refusal, accepted_refusal, s8s8_must_equal
from .cases import Outcome, builders, run_case, write_case
from .repro import save_failure
from .tally import record, table


def _classify(o: Outcome, kind: str) -> str:
    """failure | known | ok"""
    family = o.family.removeprefix("net-")
    if kind in ("equal", "runtime-refused") or (kind == "qsim-refused" and accepted_refusal(family, o.op, o.runtime)):
        return "ok"
    if kind == "qsim-refused" and o.family.startswith("net-") and s8s8_must_equal(Path(o.path).name):
        return "failure"  # an S8S8 network qsim reproduces: a refusal fails
    if kind == "qsim-refused" and o.family.startswith("net-") and accepted_network_refusal(" ".join(o.result.problems)):
        return "ok"
    if kind == "qsim-refused" and any(key in o.op for key in NETWORK_REFUSALS):
        return "ok"
    return "known" if (family, o.runtime) in KNOWN_RUNTIME or (family, o.op) in KNOWN else "failure"


def _save(o: Outcome, feeds: dict, out: Path, log) -> None:
    cmd = save_failure(o.path, feeds, o.runtime, o.result.summary()[:300], out / "cases")
    log.write(f"{o.family} {o.op} seed {o.seed} {o.runtime}: {o.result.summary()[:300]}\n    {cmd}\n")
    log.flush()


def _units(only: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    if only:
        from .networks import all_networks
        return [("net", n) for n in all_networks() if any(w in n for w in only)]
    return [(f, op) for f in ("onnx", "qdq", "tflite") for op in builders(f)]


def run(minutes: float, out: Path, first_seed: int, networks: bool, save_known: bool, first_unit: int = 0,
        only: tuple[str, ...] = ()) -> Counter:
    """The fuzzing loop (in the child). Before each case it names it in ``current.txt``; after each it
    saves the counts to ``tally.pkl``, so that a crash loses neither."""
    out.mkdir(parents=True, exist_ok=True)
    tally: Counter = Counter()
    deadline = time.monotonic() + 60 * minutes
    units = _units(only)
    nets = iter(_network_names()) if networks and not only else iter(())
    with tempfile.TemporaryDirectory() as tmp, open(out / "repro.txt", "a") as log:
        for seed in itertools.count(first_seed):
            for i, (family, op) in enumerate(units):
                if family == "net":  # --only-networks: op is the network's name
                    if seed == first_seed and i < first_unit:
                        continue
                    (out / "current.txt").write_text(f"{family} {op} {seed} {i}\n")
                    (out / "tally.pkl").write_bytes(pickle.dumps(tally))
                    _network(op, tmp, tally, out, log, save_known, seed)
                    if time.monotonic() > deadline:
                        break
                    continue
                if seed == first_seed and i < first_unit:
                    continue
                (out / "current.txt").write_text(f"{family} {op} {seed} {i}\n")
                (out / "tally.pkl").write_bytes(pickle.dumps(tally))
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
                _network(name, tmp, tally, out, log, save_known, seed)
            if time.monotonic() > deadline:
                break
    (out / "current.txt").write_text(f"done {seed}\n")
    (out / "tally.pkl").write_bytes(pickle.dumps(tally))
    return tally


def supervise(minutes: float, out: Path, first_seed: int, networks: bool, save_known: bool,
              only: tuple[str, ...] = ()) -> Counter:
    """Run the loop in child processes until the time is up, restarting after a case that kills one."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "repro.txt").write_text("")
    tally: Counter = Counter()
    deadline = time.monotonic() + 60 * minutes
    seed, unit = first_seed, 0
    while True:
        left = (deadline - time.monotonic()) / 60
        cmd = [sys.executable, "-m", "tests.differential.long", "--child", "--minutes", f"{max(left, 0.0):.4f}",
               "--out", str(out), "--first-seed", str(seed), "--first-unit", str(unit)]
        cmd += ["--only-networks", ",".join(only)] if only else []
        rc = subprocess.run(cmd + ["--networks"] * networks + ["--save-known"] * save_known).returncode
        tally.update(pickle.loads((out / "tally.pkl").read_bytes()))
        where = (out / "current.txt").read_text().split()
        if rc == 0 and where[0] == "done":
            last = int(where[1])
            break
        family, op, crashed, i = where[0], where[1], int(where[2]), int(where[3])
        tally[(family, op, "-", "runtime-crashed")] += 1
        call = (f"from tests.differential.networks import run_network; run_network({op!r}, tempfile.mkdtemp(), "
                f"{crashed})" if family == "net" else
                f"from tests.differential.cases import run_case; run_case({family!r}, {op!r}, {crashed}, "
                "tempfile.mkdtemp())")
        with open(out / "repro.txt", "a") as log:
            log.write(f"{family} {op} seed {crashed}: the process died (exit status {rc}) running it\n"
                      f"    python -c \"import tempfile; {call}\"\n")
        seed, unit = (crashed, i + 1) if i + 1 < len(_units(only)) else (crashed + 1, 0)
        if time.monotonic() > deadline:
            last = crashed
            break
    (out / "report.txt").write_text(f"seeds {first_seed}..{last}, {minutes} min\n{table(tally)}\n")
    return tally


def _network_names():
    from .networks import all_networks
    return itertools.cycle(all_networks())


def _network(name: str, tmp, tally: Counter, out: Path, log, save_known: bool, seed: int = 0) -> None:
    from .networks import run_network

    try:
        path, feeds, results = run_network(name, tmp, seed)
    except Exception as exc:  # a generator (or quantize_static) defect: report it, keep going
        tally[("net", name, "-", "generator-error")] += 1
        log.write(f"network {name} seed {seed}: generator error {type(exc).__name__}: {exc}\n")
        return
    family = "qdq" if ":qdq:" in name else name.split(":")[0]
    for runtime, result in results:
        o = Outcome(f"net-{family}", name, seed, runtime, path, result)
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
    ap.add_argument("--only-networks", default="", help="comma-separated words: run only the networks named so")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--first-unit", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    only = tuple(w for w in args.only_networks.split(",") if w)
    if args.child:
        run(args.minutes, args.out, args.first_seed, args.networks, args.save_known, args.first_unit, only)
        return 0
    tally = supervise(args.minutes, args.out, args.first_seed, args.networks, args.save_known, only)
    print(table(tally))
    failures = (args.out / "repro.txt").read_text().count("\n    python")
    print(f"{failures} failing cases outside the known classes written under {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

