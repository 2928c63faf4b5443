"""Dataset statistics for normalisation: per-channel mean/std of the images and per-class counts.

Computed once, exactly (integer sums over every pixel), and kept where the next reader finds them:
in the HDF5 file's root attribute ``stats`` when the file is writable, else in a JSON file next to
the data, else in the user cache folder ($C3DI_CACHE_DIR or ~/.cache/causal3dident), else in memory.
Each copy carries a key (latents digest, image count and shape), so stale statistics are never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .latents import NUM_CLASSES
from .neighbours import CACHE_ENV

STATS_ATTR = "stats"
BLOCK = 256


@dataclass(frozen=True)
class DatasetStats:
    """Per-channel mean and std of the images scaled to [0, 1] (for ``Normalize``), and class counts."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    class_counts: tuple[int, ...]
    num_images: int

    def to_json(self, key: Mapping[str, Any]) -> str:
        return json.dumps({**asdict(self), "key": dict(key)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, key: Mapping[str, Any]) -> DatasetStats | None:
        """The stats in ``text``, or None if they were computed for other data (another key) or unreadable."""
        try:
            data = json.loads(text)
            if data.pop("key") != dict(key):
                return None
            return cls(tuple(data["mean"]), tuple(data["std"]), tuple(data["class_counts"]), int(data["num_images"]))
        except (ValueError, KeyError, TypeError):
            return None


class StatsAccumulator:
    """Exact running sums over uint8 images [B, H, W, 3], fed block by block (e.g. while converting)."""

    def __init__(self) -> None:
        self.pixels = 0
        self.images = 0
        self.sum = np.zeros(3, dtype=np.uint64)
        self.sum_sq = np.zeros(3, dtype=np.uint64)

    def update(self, images: np.ndarray) -> None:
        flat = np.asarray(images, dtype=np.uint8).reshape(-1, 3)
        self.pixels += len(flat)
        self.images += len(images)
        self.sum += flat.sum(axis=0, dtype=np.uint64)
        wide = flat.astype(np.uint32)
        self.sum_sq += (wide * wide).sum(axis=0, dtype=np.uint64)

    def result(self, classes: np.ndarray) -> DatasetStats:
        if self.pixels == 0:
            raise ValueError("no images to compute statistics from")
        mean = self.sum.astype(np.float64) / self.pixels
        var = np.maximum(self.sum_sq.astype(np.float64) / self.pixels - mean * mean, 0.0)
        counts = np.bincount(np.asarray(classes, dtype=np.int64), minlength=NUM_CLASSES)
        return DatasetStats(tuple(float(m) for m in mean / 255.0), tuple(float(s) for s in np.sqrt(var) / 255.0),
                            tuple(int(c) for c in counts), self.images)


def compute(read: Callable[[int, int], np.ndarray], n: int, classes: np.ndarray) -> DatasetStats:
    """Statistics of images [0, n) read in blocks by ``read(lo, hi)``."""
    acc = StatsAccumulator()
    for lo in range(0, n, BLOCK):
        acc.update(read(lo, min(n, lo + BLOCK)))
    return acc.result(classes)


def read_h5(path: str | os.PathLike[str], key: Mapping[str, Any]) -> DatasetStats | None:
    """Stats stored in an HDF5 file's root attribute, if present and computed for this data."""
    with h5py.File(path, "r") as f:
        text = f.attrs.get(STATS_ATTR)
    if text is None:
        return None
    return DatasetStats.from_json(text.decode() if isinstance(text, bytes) else str(text), key)


def write_h5(path: str | os.PathLike[str], stats: DatasetStats, key: Mapping[str, Any]) -> bool:
    """Store stats in the file's root attribute; False if the file cannot be opened for writing."""
    try:
        with h5py.File(path, "r+") as f:
            f.attrs[STATS_ATTR] = stats.to_json(key)
        return True
    except OSError:
        return False


def sidecar_paths(data_path: str | os.PathLike[str]) -> list[Path]:
    """JSON files that may hold the stats of ``data_path``: next to it, then in the user cache folder."""
    data_path = Path(data_path).resolve()
    name = f".{data_path.name}.stats.json"
    user = Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "causal3dident"))
    return [data_path.parent / name, user / f"{hashlib.sha256(str(data_path.parent).encode()).hexdigest()[:12]}{name}"]


def read_sidecar(data_path: str | os.PathLike[str], key: Mapping[str, Any]) -> DatasetStats | None:
    for path in sidecar_paths(data_path):
        if path.is_file():
            stats = DatasetStats.from_json(path.read_text(), key)
            if stats is not None:
                return stats
    return None


def write_sidecar(data_path: str | os.PathLike[str], stats: DatasetStats, key: Mapping[str, Any]) -> bool:
    """Write the stats JSON next to the data, else to the user cache folder; False if neither is writable."""
    for path, make_folder in zip(sidecar_paths(data_path), (False, True)):  # never create folders next to the data
        try:
            if make_folder:
                path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        except OSError:
            continue
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(stats.to_json(key))
            os.replace(tmp, path)
            return True
        except OSError:
            Path(tmp).unlink(missing_ok=True)
    return False
