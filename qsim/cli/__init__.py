"""The ``qsim`` command: thin subcommands over the library API, one module each.

Errors: a user error (a ``QsimError``: bad file, flag or model) prints one line to stderr and exits
with status 2; any other exception is a bug in qsim and prints one "internal error, please report"
line and exits with status 1. ``--debug`` (before or after the subcommand) adds the traceback.
"""
from __future__ import annotations

import argparse
import sys
import traceback

from qsim.cli import calibrate, import_model, profiles, run, search, sensitivity, sweep, validate
from qsim.errors import QsimError

SUBCOMMANDS = (run, profiles, sweep, import_model, calibrate, validate, sensitivity, search)  # in the order --help lists them
DEBUG_HELP = "show the traceback of an error"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qsim", description="Simulate quantized neural-network inference "
                                     "on hardware that may not exist yet.")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    for subparser in sub.choices.values():  # `qsim run ... --debug` works as well as `qsim --debug run ...`
        subparser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except QsimError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"qsim: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `qsim run ... | head`
        return 0
    except KeyboardInterrupt:
        print("qsim: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001  (anything else is a bug in qsim: say so in one line)
        if args.debug:
            traceback.print_exc()
        if isinstance(exc, OSError) and exc.filename is not None:  # a file the system refused (disk full,
            # permission) on a path no writer wrapped: the user's environment, not a bug
            print(f"qsim: error: {_one_line(exc.filename)}: {exc.strerror or _one_line(exc)}", file=sys.stderr)
            return 2
        hint = "" if args.debug else " (run with --debug for the traceback)"
        print(f"qsim: internal error, please report: {type(exc).__name__}: {_one_line(exc)}{hint}", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."
