"""The accuracy side of a sweep spec: its ``evaluation:`` block (or each workload file's own) and
its ``constraints:``, checked while the spec loads, before any point is evaluated.

The spec's block applies to every workload; a workload without it in the spec uses the block in
its own file, if any. Each evaluated workload is built at the evaluation's batch and checked
against the data (input names, shapes, weights present), so that a sweep never starts work that
its accuracy step would refuse.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from qsim.errors import Problem, QsimError
from qsim.workload import load_workload
from qsim.yamlio import line_of


def _problems(exc: QsimError) -> list[Problem]:
    return list(exc.problems) or [Problem(exc.message, line=exc.line, key=exc.key)]


def load_evaluations(data: Mapping, chk, source: str, base: Path) -> dict[str, Any]:
    """Workload label -> Evaluation; problems go to ``chk`` (spec.py's _Checker)."""
    from qsim.evaluation.data import load_evaluation

    shared = None
    if "evaluation" in data:
        try:
            shared = load_evaluation(data["evaluation"], source, base)
        except QsimError as exc:
            chk.errors.extend(Problem(p.message, line=p.line, key=p.key) for p in _problems(exc))
            return {}
    out: dict[str, Any] = {}
    for label, path in chk.paths.items():
        line, key = chk.where[label]
        ev, block = shared, chk.workload_data[label].get("evaluation")
        if ev is None and block is None:
            continue
        own = ev is None
        try:
            if own:
                ev = load_evaluation(block, str(path), path.parent)
            ev.check(load_workload(path, batch=ev.build_batch).graph)
        except QsimError as exc:
            if not own:  # the spec's own block: report at its line, naming the workload
                chk.errors.extend(Problem(f"workload {label!r}: {p.message}", line=p.line, key=p.key)
                                  for p in _problems(exc))
            else:
                chk.error(line, key, f"workload {label!r}: {exc}")
            continue
        out[label] = ev
    return out


def check_constraints(data: Mapping, evaluations: Mapping, chk) -> dict[str, Any]:
    constraints = dict(data.get("constraints") or {})
    if "max_accuracy_drop" in constraints and not evaluations:
        where = data["constraints"]
        chk.error(line_of(where, "max_accuracy_drop", line_of(data, "constraints")), "constraints.max_accuracy_drop",
                  "needs an evaluation: block (in the spec, or in a workload file) to measure accuracy")
    return constraints
