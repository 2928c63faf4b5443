"""SHA-256 of a file in blocks: the checksum of dataset files, cards and meshes (standard library only, so that
``causal3dident.render.assets`` can check meshes without loading h5py)."""

from __future__ import annotations

import hashlib
import os


def sha256_of(path: str | os.PathLike[str], block: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in blocks so that large files need little memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()
