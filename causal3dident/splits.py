"""The split a dataset file records (``train``, ``test``, ...): how it is chosen, checked and read back.

``c3di latents`` / ``c3di render`` record it in the root attribute ``split``: ``--split`` if given, else the
output's name when that names a split (``train.h5``, ``test-lz4.h5``, ``test_shard3.h5``), else ``train``.
``c3di export`` names its folders after it (``trainset/``, ``testset/``: the original release's layout).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import h5py

from .errors import ConfigError

SPLIT_ATTR = "split"
DEFAULT_SPLIT = "train"
NAMED_SPLITS = ("train", "test", "val", "valid", "validation")
"""Names that, as the first word of an output file's name, give its split."""
_VALID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def check_split(name: str) -> str:
    """``name`` if it can name a split (and so a folder ``<name>set``), else a one-line ``ConfigError``."""
    if not isinstance(name, str) or not _VALID.match(name):
        raise ConfigError(f"--split {name!r}: a split is a simple name such as train or test (letters, digits, "
                          f"'-' and '_'); it names the export's folder <split>set/")
    return name


def infer_split(out: str | os.PathLike[str]) -> str:
    """The split an output file's name implies: its first word if that is a split name, else ``train``."""
    first = re.split(r"[-_.]", Path(out).name, maxsplit=1)[0].lower()
    return first if first in NAMED_SPLITS else DEFAULT_SPLIT


def choose_split(split: str | None, out: str | os.PathLike[str]) -> str:
    """``--split`` checked, or the one ``out``'s name implies."""
    return check_split(split) if split is not None else infer_split(out)


def recorded_split(f: h5py.File) -> str | None:
    """The split a file records, or None for a file written before splits were recorded."""
    value = f.attrs.get(SPLIT_ATTR)
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
