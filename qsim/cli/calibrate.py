"""``qsim calibrate --out FILE``: micro-benchmark this machine and write a hardware profile."""
from __future__ import annotations

import sys
from pathlib import Path


def add_parser(sub) -> None:
    cal = sub.add_parser("calibrate", help="micro-benchmark this machine and write a hardware profile")
    cal.add_argument("--out", default="hw_profiles/local.yaml", help="where to write the profile")
    cal.add_argument("--quick", action="store_true", help="smaller, faster measurements (less accurate)")
    cal.add_argument("--rounds", type=int, default=1,
                     help="measure N times and keep each number's median (3 or more on a shared machine)")
    cal.set_defaults(func=_cmd_calibrate)


def _cmd_calibrate(args) -> int:
    from qsim.files import check_output_file
    from qsim.hw.calibrate import write_profile

    check_output_file(Path(args.out), "--out")  # before minutes of measurement
    print(write_profile(Path(args.out), quick=args.quick, rounds=args.rounds), end="")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0
