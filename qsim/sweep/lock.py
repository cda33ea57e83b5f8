"""One writer per sweep store: a lock file ``OUT/.qsim-sweep.lock`` holding the writer's pid and host.

The lock itself is ``flock`` on that file, which the kernel releases when the process ends however
it ends (a killed run leaves no live lock). The file's text (``pid host started``) is for people
and for the refusal message. A second run on a folder in use refuses at once with one line; it
does not wait. A lock file left by a run that was killed (its pid is not alive on this host) is
taken over with a note on stderr. The file is never deleted (deleting it would let two runs lock
two different files of the same name): a released lock is an empty file.

A process may take the same folder's lock again while it holds it (the CLI holds it across the
sweep and the report; ``run_sweep`` takes it inside).
"""
from __future__ import annotations

import errno
import os
import socket
import sys
import time
from pathlib import Path

from qsim.errors import SweepError

LOCK_NAME = ".qsim-sweep.lock"
_held: dict[str, list] = {}  # resolved folder -> [fd, depth]: re-entrant within one process


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _holder(fd: int) -> tuple[int | None, str, str]:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 512).decode("utf-8", "replace").split()
    pid = int(text[0]) if text and text[0].isdigit() else None
    return pid, text[1] if len(text) > 1 else "?", " ".join(text[2:])


class StoreLock:
    """``with StoreLock(out_dir):`` holds the folder's writer lock; SweepError if another run holds it."""

    def __init__(self, out_dir: str | Path):
        self.dir = Path(out_dir)
        self.key = str(self.dir.resolve())

    def __enter__(self) -> "StoreLock":
        if self.key in _held:
            _held[self.key][1] += 1
            return self
        import fcntl

        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            pid, host, since = _holder(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise SweepError(f"{path}: cannot lock the output folder ({exc.strerror})") from None
            raise SweepError(f"{self.dir}: another qsim sweep is writing this folder (pid {pid} on {host}, since "
                             f"{since or '?'}); wait for it to finish or use another --out") from None
        pid, host, _ = _holder(fd)
        if pid is not None and pid != os.getpid():  # left by a run that ended without releasing it
            alive = host == socket.gethostname() and _pid_alive(pid)
            print(f"qsim: taking over the lock of {'a run' if alive else 'a stopped run'} (pid {pid} on {host}) "
                  f"in {self.dir}", file=sys.stderr)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()} {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode(), 0)
        _held[self.key] = [fd, 1]
        return self

    def __exit__(self, *exc) -> None:
        entry = _held[self.key]
        entry[1] -= 1
        if entry[1]:
            return
        del _held[self.key]
        try:
            os.ftruncate(entry[0], 0)  # released: an empty lock file names no holder
        finally:
            os.close(entry[0])  # closing drops the flock


def holds(out_dir: str | Path) -> bool:
    """Whether this process holds the folder's lock."""
    return str(Path(out_dir).resolve()) in _held
