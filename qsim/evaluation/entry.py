"""Python entry points named in YAML: ``package.module:function`` (evaluation data, user metrics).

``resolve_entry`` imports the module and returns the function, or raises a QsimError saying why
(malformed text, module not importable, no such attribute, not callable). A module that is not on
``sys.path`` is also looked for in ``base_dir`` (the folder of the YAML file that names it), so a
spec can sit beside its own ``mydata.py``. Module names are process-wide, as in any Python import:
a module already imported under that name is used as it is, so give data modules distinct names.
"""
from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Callable

from qsim.errors import QsimError

ENTRY = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")


def is_entry(text: str) -> bool:
    """Whether ``text`` is written as an entry point (``package.module:function``)."""
    return isinstance(text, str) and ENTRY.fullmatch(text) is not None


def _import(module: str, base_dir: Path | None):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or module
        top = module.split(".")[0]
        if base_dir is None or missing != top or not (Path(base_dir) / f"{top}.py").exists() and not (
                Path(base_dir) / top).is_dir():
            raise QsimError(f"cannot import module {module!r} ({exc})") from None
    sys.path.insert(0, str(base_dir))  # only for this import: the module then stays in sys.modules
    try:
        return importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - any import-time failure of a user module is reported
        raise QsimError(f"cannot import module {module!r} from {base_dir} ({type(exc).__name__}: {exc})") from None
    finally:
        sys.path.remove(str(base_dir))


def resolve_entry(text: str, base_dir: Path | None = None) -> Callable:
    """The function an entry point names (see the module doc)."""
    if not is_entry(text):
        raise QsimError(f"{text!r} is not an entry point (expected package.module:function)")
    module_name, attr = text.split(":")
    try:
        target = _import(module_name, base_dir)
    except QsimError:
        raise
    except Exception as exc:  # noqa: BLE001 - a user module that fails while importing
        raise QsimError(f"cannot import module {module_name!r} ({type(exc).__name__}: {exc})") from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise QsimError(f"module {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise QsimError(f"{text} is not callable")
    return target
