"""Counts of differential cases per (family, op, runtime) and outcome, shared by the tests (printed
in pytest's terminal summary) and the long mode (written to its report)."""
from __future__ import annotations

from collections import Counter

from .cases import Outcome

TALLY: Counter = Counter()


def outcome_kind(o: Outcome) -> str:
    """equal | runtime-refused | qsim-refused | qsim-crashed | mismatch"""
    if o.refused:
        return "runtime-refused"
    if o.result.ok:
        return "equal"
    text = " ".join(o.result.problems)
    if text.startswith("qsim refused"):
        return "qsim-refused"
    if text.startswith("qsim crashed"):
        return "qsim-crashed"
    return "mismatch"


def record(o: Outcome, tally: Counter = TALLY) -> str:
    kind = outcome_kind(o)
    tally[(o.family, o.op, o.runtime, kind)] += 1
    return kind


def table(tally: Counter = TALLY) -> str:
    """One line per (family, op): cases per runtime and the non-equal outcomes."""
    rows: dict = {}
    for (family, op, runtime, kind), n in sorted(tally.items()):
        row = rows.setdefault((family, op), Counter())
        row[runtime] += n
        if kind != "equal":
            row[kind] += n
    lines = [f"{'family':7} {'op':26} cases per runtime / outcomes other than equal"]
    for (family, op), row in rows.items():
        parts = ", ".join(f"{k} {v}" for k, v in row.items())
        lines.append(f"{family:7} {op:26} {parts}")
    total = sum(tally.values())
    lines.append(f"total {total} cases, {sum(n for k, n in tally.items() if k[3] == 'mismatch')} mismatching")
    return "\n".join(lines)
