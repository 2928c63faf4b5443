"""Free disk space: checked before a large write, and a failed write explained in one line.

Writers estimate how many bytes their output needs; ``check_free_space`` refuses to start when the
output's folder has less free space. When a write still runs out of space (the estimate was low,
or another process filled the disk), ``disk_full`` turns the error into one line saying how much
space is needed and where.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from .errors import DiskFullError

NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_NO_SPACE_TEXT = ("no space left on device", "disk quota exceeded", "errno = 28", "errno = 122")


def human(size: float) -> str:
    """A byte count as KiB, MiB or GiB (one decimal)."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size / 2**10:.1f} KiB"


def free_bytes(path: str | os.PathLike[str]) -> int:
    """Free bytes (for this user) on the filesystem of ``path`` or of its nearest existing folder."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def check_free_space(path: str | os.PathLike[str], needed: int) -> None:
    """Raise ``DiskFullError`` unless the filesystem of ``path`` has ``needed`` bytes free."""
    free = free_bytes(Path(path).parent)
    if free < needed:
        raise DiskFullError(f"{path} needs about {human(needed)} but {Path(path).parent} has {human(free)} free; "
                            f"free some space there or choose another --out (nothing was written)")


CODEC_GROWTH = {"gzip": 1.0, "lz4": 2.0}
"""Bytes of an HDF5 image dataset per byte of the same images as PNG or gzip chunks, by target codec (about:
LZ4 trades size for decoding speed). Used for the free-space pre-check, never to size anything."""


def estimate_copy(sources: Iterable[str | os.PathLike[str]], compression: str, *, root: Path | None = None) -> int:
    """About how many bytes a writer needs to hold ``sources`` (PNG or HDF5 files) re-encoded as ``compression``."""
    total = sum(os.path.getsize(root / p if root else p) for p in sources)
    return int(total * CODEC_GROWTH.get(compression, 1.0)) + 2**20


def is_no_space(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or an exception it was raised from or during) is a full disk or an exceeded quota.

    h5py reports failed writes as OSError with errno 28, or, from inside HDF5's close, as RuntimeError
    whose text carries the errno.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
            return True
        if any(text in str(exc).lower() for text in _NO_SPACE_TEXT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full(path: str | os.PathLike[str], written: int, needed: int | None) -> DiskFullError:
    """The one-line error for a write to ``path`` that ran out of space after ``written`` bytes."""
    folder = Path(path).parent
    size = f"about {human(needed)}" if needed is not None and needed > written else \
        f"more than the {human(written)} written when the disk filled"
    return DiskFullError(f"no space left on device writing {path}: it needs {size}, {folder} has "
                         f"{human(free_bytes(folder))} free; free some space there or choose another --out "
                         f"(nothing was changed, no temporary file is left)")
