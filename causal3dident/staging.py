"""Folders that replace, never mix: write into a fresh sibling folder, then swap it in with one rename.

``c3di export --overwrite`` used to write into the old export, leaving its files beside the new ones (other
zero padding, samples the new file lacks). Now the new export is complete before it appears, the old one
stays intact until then (a killed export leaves it as it was), and leftovers of killed runs are removed by
the next run.
"""

from __future__ import annotations

import ctypes
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputExistsError
from .leftovers import process_alive

TMP_MARK = ".tmp-"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


@contextmanager
def staged_folder(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh, empty folder beside ``target``; when the block succeeds, it takes ``target``'s place
    (the old ``target``, if any, is removed only then); when it fails, it is removed and ``target`` kept."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise OutputExistsError(f"{target} is a file; remove it or choose another output folder")
    created = [p for p in (target.parent, *target.parent.parents) if not p.exists()]  # deepest first
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    staging = target.with_name(f".{target.name}{TMP_MARK}{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in created:  # the folders made for it, if nothing else was put there meanwhile
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def swap_in(new: Path, target: Path) -> None:
    """Put the folder ``new`` at ``target``: one atomic rename (an exchange when ``target`` exists, on Linux),
    then remove the old folder."""
    if not target.exists():
        os.rename(new, target)
        return
    if _exchange(new, target):  # target is now the new folder, new the old one
        shutil.rmtree(new)
        return
    old = target.with_name(f".{target.name}.old{TMP_MARK}{os.getpid()}")  # no exchange: two renames
    os.rename(target, old)
    os.rename(new, target)
    shutil.rmtree(old)


def remove_leftovers(target: Path) -> None:
    """Remove the staging folders of earlier runs for ``target`` whose process is gone (killed runs)."""
    for pattern in (f".{target.name}{TMP_MARK}*", f".{target.name}.old{TMP_MARK}*"):
        for path in target.parent.glob(pattern):
            pid = path.name.rpartition(TMP_MARK)[2]
            if pid.isdigit() and not _alive(int(pid)) and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Whether ``pid`` may still be writing; an earlier run of this very process is not."""
    return pid != os.getpid() and process_alive(pid)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux's renameat2(RENAME_EXCHANGE); False where that is unavailable."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0
