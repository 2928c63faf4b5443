"""Temporary files of atomic writes: claimed while written, removed by a later run once their writer is gone.

A writer builds ``.NAME.tmp-PID`` next to its output and renames it into place when complete. It
holds an exclusive ``flock`` on the temporary while writing, so when a run is killed (even with
kill -9) the lock goes with it. A later write of the same output removes every temporary whose
lock is free and whose process is gone; the temporary of a live writer (on this machine, or on
another one sharing the filesystem) is never touched.
"""

from __future__ import annotations

import fcntl
import glob
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_MARK = ".tmp-"


def temporary_name(path: Path) -> Path:
    """``.NAME.tmp-PID`` next to ``path``: where this process builds ``path``."""
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")


@contextmanager
def claimed(tmp: Path) -> Iterator[int]:
    """Create ``tmp`` afresh and hold an exclusive lock on it until the block ends."""
    tmp.unlink(missing_ok=True)  # a file with our pid in its name is no live writer's
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass  # a filesystem without locks: our live pid still keeps other runs off the temporary
        yield fd
    finally:
        os.close(fd)


def remove_stale(path: Path) -> list[Path]:
    """Remove the temporaries of ``path`` that killed runs left; returns what was removed."""
    removed = []
    for name in glob.glob(glob.escape(str(path.parent / f".{path.name}{TMP_MARK}")) + "*"):
        candidate = Path(name)
        pid = candidate.name.rpartition(TMP_MARK)[2]
        if not pid.isdigit() or int(pid) == os.getpid() or process_alive(int(pid)):
            continue
        if _remove_if_unlocked(candidate):
            removed.append(candidate)
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_if_unlocked(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a writer still holds it
        except OSError:
            pass  # a filesystem without locks: its writer's pid is gone, which decides
        path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)
