"""``qsim sweep SPEC``: the subcommand lives with the sweep package (``qsim.sweep.cli``)."""
from __future__ import annotations


def add_parser(sub) -> None:
    from qsim.sweep.cli import add_sweep_parser

    add_sweep_parser(sub)
