"""``qsim validate MODEL``: the subcommand lives with the simulator (``qsim.sim.validate_cli``)."""
from __future__ import annotations


def add_parser(sub) -> None:
    from qsim.sim.validate_cli import add_validate_parser

    add_validate_parser(sub)
