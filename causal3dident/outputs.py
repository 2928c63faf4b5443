"""Checks every writing command makes before its work, and the guarded write at its end.

The rule for every ``c3di`` output: an existing one is refused without ``--overwrite``, and an output
nobody can write (a file in the way of its folder, a read-only or vanished folder) is one line and
exit code 2 *before* rendering or training starts. The checks write nothing (not even a probe file): they
ask the nearest existing folder's permissions; folders are made when writing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputExistsError, UnwritableOutputError


def check_output_file(path: str | os.PathLike[str], overwrite: bool, option: str = "--out") -> Path:
    """Refuse an existing ``path`` without ``overwrite``, a folder at ``path``, and a ``path`` that
    cannot be created; nothing is written."""
    path = Path(path)
    if path.is_dir():
        raise OutputExistsError(f"{option} {path} is a folder; give a file name such as {path / 'out.png'}")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; pass --overwrite to replace it or choose another {option}")
    check_writable_folder(path.parent, option, for_path=path)
    return path


def check_output_files(folder: str | os.PathLike[str], names: Iterable[str], overwrite: bool,
                       option: str = "--out", for_path: str | os.PathLike[str] | None = None) -> Path:
    """As ``check_output_file`` for the files ``names`` a command writes into ``folder`` (``for_path``: the
    value of ``option`` to name in errors, if not ``folder``)."""
    folder = Path(folder)
    taken = [n for n in names if (folder / n).exists()]
    if taken and not overwrite:
        raise OutputExistsError(f"{folder} already holds {', '.join(taken)}; pass --overwrite to replace "
                                f"{'it' if len(taken) == 1 else 'them'} or choose another {option}")
    check_writable_folder(folder, option, for_path=for_path)
    return folder


def check_writable_folder(folder: str | os.PathLike[str], option: str = "--out",
                          for_path: str | os.PathLike[str] | None = None) -> Path:
    """Check that ``folder`` exists and is writable, or can be created; creates nothing."""
    folder = Path(folder) if str(folder) else Path(".")
    shown = Path(for_path) if for_path is not None else folder
    existing = folder
    while not existing.exists() and not existing.is_symlink():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        what = "a file" if existing.exists() else "a broken link"
        raise UnwritableOutputError(f"{option} {shown}: {existing} is {what}, not a folder; "
                                    f"choose another {option} or move {existing} away")
    if not os.access(existing, os.W_OK | os.X_OK):  # also False on a read-only file system
        raise UnwritableOutputError(f"{option} {shown}: cannot write in {existing} (permission denied or a "
                                    f"read-only file system); choose a writable {option}")
    return folder


def make_parent(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """Create ``path``'s folder just before writing it; one line if that fails (e.g. the folder vanished
    and a file took its place)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UnwritableOutputError(f"{option} {path}: cannot create its folder {path.parent} ({exc.strerror}); "
                                    f"choose a writable {option}") from None
    return path


def write_failed(path: str | os.PathLike[str], exc: Exception, option: str = "--out") -> UnwritableOutputError:
    """The one-line error for a write that failed after the checks (folder removed, disk full, ...)."""
    reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
    return UnwritableOutputError(f"cannot write {path} ({reason}); check that its folder still exists and has "
                                 f"space, or choose another {option}, and run the command again")


@contextmanager
def writing(path: str | os.PathLike[str], option: str = "--out") -> Iterator[None]:
    """Turn an ``OSError`` while writing ``path`` into ``write_failed``'s one-line error."""
    try:
        yield
    except UnwritableOutputError:
        raise
    except OSError as exc:
        raise write_failed(path, exc, option) from None
