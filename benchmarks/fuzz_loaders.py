"""The long fuzz run: the Hypothesis tests of tests/fuzz with N fresh random cases per test
(default 2,000: about 10,000 cases over profiles, workloads, sweep specs, ONNX and TFLite files),
every unhandled exception recorded instead of stopping at the first, then the counts printed.

    python benchmarks/fuzz_loaders.py --examples 2000

Prints cases per loader and outcome (ok: loaded; error: a clean QsimError), each distinct
unhandled exception (loader, type, where) and the cases where a NaN / inf went into a text file
and the load succeeded. Exit status 1 when anything unhandled was found.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000, help="cases per fuzz test (default 2000)")
    parser.add_argument("--cli", action="store_true", help="also run the command-line sample (slow: a process per case)")
    args = parser.parse_args()
    os.environ["QSIM_FUZZ_EXAMPLES"] = str(args.examples)  # read by tests/fuzz/conftest.py
    os.chdir(ROOT)
    sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "fuzz")]
    import pytest

    import _mutate

    _mutate.COLLECT = {}
    targets = ["tests/fuzz/test_fuzz_text.py", "tests/fuzz/test_fuzz_models.py"]
    if args.cli:
        targets.append("tests/fuzz/test_fuzz_cli.py")
    start = time.monotonic()
    rc = pytest.main(["-q", "-p", "no:cacheprovider", "-k", "damaged", *targets])
    elapsed = time.monotonic() - start
    loaders = sorted({loader for loader, _ in _mutate.COUNTS})
    total = sum(n for (loader, _), n in _mutate.COUNTS.items() if "+" not in loader)
    print(f"\n{total} cases in {elapsed:.0f} s ({args.examples} per test)")
    print(f"{'loader':<20}{'ok':>8}{'error':>8}{'unhandled':>11}")
    for loader in loaders:
        row = [_mutate.COUNTS[(loader, k)] for k in ("ok", "error", "unhandled")]
        print(f"{loader:<20}{row[0]:>8}{row[1]:>8}{row[2]:>11}")
    print(f"distinct unhandled exceptions: {len(_mutate.COLLECT)}")
    for (loader, kind, where), message in sorted(_mutate.COLLECT.items()):
        print(f"  {loader}: {kind} at {where}: {message}")
    print(f"non-finite values accepted by a loader: {dict(_mutate.NONFINITE_ACCEPTED) or 0}")
    return 1 if _mutate.COLLECT or rc not in (0, 5) else 0


if __name__ == "__main__":
    sys.exit(main())
