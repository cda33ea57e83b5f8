"""Argument types shared by several subcommands."""
from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def assignments(items: list[str] | None, flag: str) -> dict:
    """``["context=4096", "seq=1"]`` -> ``{"context": 4096, "seq": 1}``: each value is read as YAML
    (a number, a boolean, a string), with the same strict, bounded reader as the files, so that
    ``--set seq=1`` and ``seq: 1`` in a file mean the same and pass the same checks."""
    from qsim.errors import QsimError
    from qsim.yamlio import load_yaml

    out: dict = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise QsimError(f"{flag} {item!r}: expected KEY=VALUE (e.g. {flag} "
                            f"{'memories.sram.capacity_kib=1024' if flag == '--hw-set' else 'seq=128'})")
        if key in out:
            raise QsimError(f"{flag} {key}: given twice")
        value = load_yaml(f"{flag} {key}", text=text)
        if value is None or isinstance(value, (list, dict)):
            raise QsimError(f"{flag} {key}={text}: expected a number, string or boolean")
        out[key] = value
    return out
