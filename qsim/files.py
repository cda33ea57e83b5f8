"""The file-system boundary: one atomic writer for every output, and path checks that never leak OSError.

Every file qsim writes (reports, imported workloads, calibrated profiles, sweep tables) goes through
``atomic_write``: the content is written to a temporary file beside the target, then renamed over
it, so a failure or an interruption never leaves a partial file under the real name. The target
must be a regular file or not exist yet: a directory, a symbolic link, a device node (``/dev/null``,
``/dev/full``), a FIFO or a socket is refused, because renaming over it would silently replace a link
or a device with a regular file. A full disk, a file-size limit, a missing permission or a name
too long for the file system is one ``OutputError`` line naming the file, never a traceback.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Callable

from qsim.errors import QsimError

# Most file systems allow 255 bytes per name; the temporary name adds a prefix and a suffix.
MAX_NAME_BYTES = 200
_TMP_FORMAT = ".{name}.{pid}.tmp"


class OutputError(QsimError):
    """An output path that cannot or must not be written (a directory, a link, a device, a full disk)."""


def path_exists(path: str | Path) -> bool:
    """``Path.exists`` that answers False for a name the system cannot even look up (too long, a NUL
    byte, a parent that is a file) instead of raising."""
    try:
        os.stat(path)
    except (OSError, ValueError):
        return False
    return True


def _kind(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    for test, word in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return word
    return None


def check_output_file(path: str | Path, flag: str = "") -> Path:
    """Refuse a target that is not a regular file (or absent), before any work is done. ``flag``
    (``--out``) prefixes the message when the path came from a command-line option."""
    path = Path(path)
    where = f"{flag} {path}" if flag else str(path)
    if len(path.name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise OutputError(f"the file name is too long ({len(path.name)} characters; at most {MAX_NAME_BYTES} bytes)",
                          file=short_path(where))
    st = _stat(path, where, os.lstat)
    if st is None:
        return path
    if stat.S_ISLNK(st.st_mode):
        raise OutputError("is a symbolic link; qsim does not write through links (give the link's target or "
                          "another name)", file=short_path(where))
    kind = _kind(st.st_mode)
    if kind is not None:
        raise OutputError(f"is {kind}, not a file; give a file name", file=short_path(where))
    return path


def check_output_dir(path: str | Path, flag: str = "") -> Path:
    """Refuse an output folder that exists as something other than a directory (a file, a device,
    a link to one)."""
    path = Path(path)
    where = f"{flag} {path}" if flag else str(path)
    if any(len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES for part in path.parts):
        raise OutputError(f"a folder name is too long (at most {MAX_NAME_BYTES} bytes)", file=short_path(where))
    st = _stat(path, where, os.stat)
    if st is None:
        return path
    if not stat.S_ISDIR(st.st_mode):
        raise OutputError(f"is {_kind(st.st_mode) or 'a file'}, not a folder", file=short_path(where))
    return path


def _stat(path: Path, where: str, how) -> os.stat_result | None:
    """``how(path)`` (os.stat or os.lstat); None where nothing exists yet; any other failure (a
    parent that is a file, no permission to look) is one OutputError line."""
    try:
        return how(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot write here: {_reason(exc)}", file=short_path(where)) from None


def atomic_write(path: str | Path, write: Callable[[Path], object], durable: bool = False) -> None:
    """Call ``write(tmp_path)``, then rename the result over ``path``. Refuses targets that are not
    regular files (``check_output_file``); any OSError while writing is one OutputError line.
    ``durable``: the data reaches the disk (fsync) before the name does (a store that resumes)."""
    path = check_output_file(path)
    tmp = path.with_name(_TMP_FORMAT.format(name=path.name, pid=os.getpid()))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        if durable:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        check_output_file(path)  # it may have become a link or a device while we wrote
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write: {_reason(exc)}", file=short_path(str(path))) from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def _reason(exc: BaseException) -> str:
    """An OSError's reason in words (``No space left on device``), with the path it names when that
    is not the target itself (a parent that is a file)."""
    if isinstance(exc, OSError):
        text = (exc.strerror or os.strerror(exc.errno)) if exc.errno else str(exc)
        if exc.errno == errno.EFBIG:
            text += " (a file-size limit: ulimit -f)"
        return " ".join(str(text).split())
    return " ".join(str(exc).split())


def short_path(text: str | Path, limit: int = 120) -> str:
    """A path for a one-line message: very long ones are cut in the middle."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-limit // 2:]}"
