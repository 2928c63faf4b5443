"""The benchmark's data: HDF5 files read once into memory as uint8 tensors, split train / held-out.

``--data`` is a folder with ``train.h5`` and ``test.h5``, or one file whose last ``eval.samples``
rows are held out. Images are resized once to the tier's resolution. LT views come from
``/pairs/<lt>/images`` (``exact``) or, per epoch, from the nearest same-class anchor to a fresh z~
(``nearest``, the original code's way), made by ``causal3dident.pairs.NearestPairs`` as
``Causal3DIdent(train_file, pairs='nearest:<lt>', seed=seed, num_samples=len(train))`` makes them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from causal3dident.errors import ConfigError, DatasetFileError
from causal3dident.pairs import NearestPairs, recorded_transformation
from causal3dident.store import open_dataset, read_config

from .settings import Setting
from .tiers import Tier


@dataclass
class Split:
    """Images uint8 [N, 3, R, R], latents float32 [N, 10], classes int64 [N]."""

    images: torch.Tensor
    latents: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return len(self.classes)


@dataclass
class BenchData:
    """Training anchors (and their exact LT views), nearest-pair partners, and the held-out split."""

    train: Split
    held_out: Split
    pair_images: torch.Tensor | None = None
    nearest: NearestPairs | None = None
    info: dict[str, Any] = field(default_factory=dict)


def resolve_files(data: str | os.PathLike[str]) -> tuple[Path, Path | None]:
    """(train file, test file or None for a single file to split)."""
    path = Path(data)
    if path.is_dir():
        train, test = path / "train.h5", path / "test.h5"
        missing = [p.name for p in (train, test) if not p.is_file()]
        if missing:
            raise DatasetFileError(f"--data {path}: folder lacks {', '.join(missing)}; put train.h5 and test.h5 "
                                   f"there or pass a single .h5 file (its last samples are held out)")
        return train, test
    return path, None


def load_data(data: str | os.PathLike[str], setting: Setting, tier: Tier, seed: int, *,
              train: bool = True) -> BenchData:
    """Read what ``setting`` needs for ``tier`` into memory (images at the tier's resolution);
    ``train=False`` reads the held-out split only (to evaluate an already-trained encoder)."""
    train_path, test_path = resolve_files(data)
    n_eval = tier.eval.samples
    pair_images, nearest = None, None
    with open_dataset(train_path) as f:
        n = int(f.attrs["num_samples"])
        _check_images(f, train_path, "images", n)
        resolution = int(f["images"].shape[1])
        stop = n if test_path else max(0, n - n_eval)
        if tier.train.max_samples:
            stop = min(stop, tier.train.max_samples)
        if train and stop < tier.train.batch_size:
            raise ConfigError(f"{train_path}: {stop} training samples"
                              + ("" if test_path else f" after holding out {n_eval}")
                              + f" are too few for batch {tier.train.batch_size}; use a larger file, a folder "
                              f"with test.h5, or --set train.batch_size=... / eval.samples=...")
        anchors = _read_split(f, 0, stop if train else 0, tier.resolution)
        if train and setting.lt and setting.lt_pairs == "exact":
            where = f"pairs/{setting.lt}/images"
            if where not in f:
                raise DatasetFileError(f"{train_path} has no /{where} for setting {setting.id}; render the "
                                       f"'{setting.lt}' pairs into it or use a setting with lt_pairs: nearest")
            _check_images(f, train_path, where, n)
            pair_images = resize_images(_read_images(f[where], 0, stop), tier.resolution)
        if train and setting.lt and setting.lt_pairs == "nearest":
            lt = recorded_transformation(read_config(f), setting.lt)
            nearest = NearestPairs(lt, anchors.latents, anchors.classes, seed)
        if test_path is None:
            held_out = _read_split(f, max(0, n - n_eval), n, tier.resolution)
            source = f"{train_path} rows {max(0, n - n_eval)}..{n - 1}"
    if test_path is not None:
        with open_dataset(test_path) as f:
            m = int(f.attrs["num_samples"])
            _check_images(f, test_path, "images", m)
            held_out = _read_split(f, 0, min(m, n_eval), tier.resolution)
            source = f"{test_path} rows 0..{min(m, n_eval) - 1}"
    info = {"train_file": str(train_path), "test_file": str(test_path) if test_path else None,
            "train_samples": len(anchors), "held_out_samples": len(held_out), "held_out_source": source,
            "source_resolution": resolution, "resolution": tier.resolution,
            "sha256": dataset_hash(anchors, held_out, pair_images),
            "pairs": pair_record(setting, len(anchors), seed, nearest) if train else None}
    return BenchData(anchors, held_out, pair_images, nearest, info)


def _check_images(f: h5py.File, path: Path, where: str, n: int) -> None:
    if where not in f:
        raise DatasetFileError(f"{path} has no /{where}: render it first (c3di render), or make a synthetic "
                               f"file with causal3dident.testing.make_synthetic_dataset")
    rendered = int(f.attrs.get("num_rendered", n))
    if rendered < n:
        raise DatasetFileError(f"{path}: only {rendered} of {n} images are rendered; finish the render job first")


def _read_images(ds: h5py.Dataset, start: int, stop: int) -> torch.Tensor:
    return torch.from_numpy(ds[start:stop]).permute(0, 3, 1, 2).contiguous()


def _read_split(f: h5py.File, start: int, stop: int, resolution: int) -> Split:
    images = resize_images(_read_images(f["images"], start, stop), resolution)
    return Split(images, f["latents"][start:stop].astype(np.float32), f["classes"][start:stop].astype(np.int64))


def resize_images(images: torch.Tensor, resolution: int, chunk: int = 1024) -> torch.Tensor:
    """uint8 [N, 3, H, W] -> uint8 [N, 3, R, R] (antialiased bilinear), in chunks to bound memory."""
    if images.shape[-2:] == (resolution, resolution):
        return images
    out = torch.empty((len(images), 3, resolution, resolution), dtype=torch.uint8)
    for i in range(0, len(images), chunk):
        x = images[i:i + chunk].float()
        y = F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
        out[i:i + chunk] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out


def pair_record(setting: Setting, pool: int, seed: int, nearest: NearestPairs | None) -> dict[str, Any]:
    """How a run's second views are made, and the dataset call that gives the same LT pairs and batches."""
    order = f"causal3dident.EpochSampler({pool}, seed={seed})"
    if setting.lt is None:
        return {"mode": "da", "order": order}
    if nearest is None:
        return {"mode": "exact", "source": f"/pairs/{setting.lt}/images", "order": order,
                "dataset": f"Causal3DIdent(train_file, pairs='exact:{setting.lt}', num_samples={pool})"}
    return {"mode": "nearest", **nearest.describe(), "order": order,
            "dataset": f"Causal3DIdent(train_file, pairs='nearest:{setting.lt}', seed={seed}, num_samples={pool})"}


def arrays_sha256(arrays: list[np.ndarray]) -> str:
    """SHA-256 of arrays in order, each with its shape: what a run's ``data_sha256`` records."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def dataset_hash(train: Split, held_out: Split, pair_images: torch.Tensor | None) -> str:
    """SHA-256 of exactly the arrays a run uses (images after resizing, latents, classes)."""
    arrays = [train.images.numpy(), train.latents, train.classes, held_out.images.numpy(), held_out.latents,
              held_out.classes]
    if pair_images is not None:
        arrays.append(pair_images.numpy())
    return arrays_sha256(arrays)
