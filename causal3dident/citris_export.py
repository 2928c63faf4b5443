"""A rendered sequence file as CITRIS's ``<split>.npz`` (Temporal Causal3DIdent, github.com/phlippe/CITRIS).

Their ``experiments/datasets.py`` (``Causal3DDataset``) reads ``imgs`` (uint8 [N, H, W, 3]), ``interventions``
([N - 1, 12]: row t marks the variables intervened in the step t -> t + 1, columns in ``VAR_INFO``'s order
pos-x ... hue-back, obj-shape, obj-material), ``raw_latents`` (float32 [N, 10], positions in [-2, 2],
angles in radians) and ``shape_latents`` ([N, 2]: the shape in their class order, then the material).
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from .checksums import read_checked, stored
from .errors import ConfigError, DatasetFileError, OutputExistsError
from .latents import CLASS_NAMES, LATENT_NAMES
from .outputs import check_writable_folder
from .splits import check_split, recorded_split
from .store import open_dataset, read_config
from .temporal_store import is_sequence_file, read_sequence

CITRIS_CLASSES: tuple[str, ...] = ("teapot", "armadillo", "hare", "cow", "dragon", "head", "horse")
"""CITRIS's shape indices (their 'bunny' is our hare)."""
CITRIS_TARGETS: tuple[str, ...] = (*LATENT_NAMES, "class", "material")
"""Our target columns in the order of CITRIS's ``Causal3DDataset.VAR_INFO``."""
BLOCK = 256


def citris_classes(classes: np.ndarray) -> np.ndarray:
    """This package's class labels -> CITRIS's shape indices."""
    lookup = np.array([CITRIS_CLASSES.index(name) for name in CLASS_NAMES], dtype=np.uint8)
    return lookup[np.asarray(classes, dtype=np.int64)]


def citris_arrays(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The four arrays of a rendered sequence (or triplet) file, as CITRIS stores them (images checked against their
    sums)."""
    with open_dataset(path) as f:
        if is_triplet_file(f):
            return _triplet_arrays(f)
        if not is_sequence_file(f):
            raise DatasetFileError(f"{path} holds no sequence; sample one with c3di latents --preset "
                                   f"temporal_causal3dident, render it, then export it")
        if "images" not in f:
            raise DatasetFileError(f"{path} has no images; CITRIS's .npz holds them: render the file first")
        sequence = read_sequence(f)
        if tuple(sequence["target_names"]) != CITRIS_TARGETS:
            raise ConfigError(f"{path}: the target columns are {', '.join(sequence['target_names'])}; CITRIS's are "
                              f"{', '.join(CITRIS_TARGETS)} (give the preset extra_columns: [material])")
        imgs = _images(f, "images")
        n = imgs.shape[0]
        shape_latents = np.zeros((n, 2), dtype=np.uint8)
        shape_latents[:, 0] = citris_classes(f["classes"][...])
        return {"imgs": imgs, "interventions": sequence["targets"][1:].astype(np.int64),
                "raw_latents": sequence["latents"].astype(np.float32), "shape_latents": shape_latents}


def is_triplet_file(f: h5py.File) -> bool:
    """Whether a dataset file holds CITRIS's triplets of a sequence (``c3di render --triplets``)."""
    return "triplets" in read_config(f)


def _triplet_arrays(f: h5py.File) -> dict[str, np.ndarray]:
    """CITRIS's ``<split>_triplets.npz``: imgs [N, 3, H, W, 3] (first, second, mixed frame), interventions [N, 12]
    (the masks: 1 where the mixed frame takes the second frame's value), raw_latents [N, 3, 10], shape_latents
    [N, 3, 2]."""
    names = tuple(read_config(f)["triplets"]["mask_columns"])
    if names != CITRIS_TARGETS:
        raise ConfigError(f"{f.filename}: the mask columns are {', '.join(names)}; CITRIS's are "
                          f"{', '.join(CITRIS_TARGETS)} (give the preset extra_columns: [material])")
    if "images" not in f:
        raise DatasetFileError(f"{f.filename} has no images; CITRIS's .npz holds them: render the triplets first")
    imgs = np.stack([_images(f, name) for name in ("triplets/first/images", "triplets/second/images", "images")],
                    axis=1)
    classes = f["triplets/classes"][...]
    shape_latents = np.zeros((*classes.shape, 2), dtype=np.uint8)
    shape_latents[..., 0] = citris_classes(classes)
    return {"imgs": imgs, "interventions": f["triplets/masks"][...].astype(np.int64),
            "raw_latents": f["triplets/latents"][...].astype(np.float32), "shape_latents": shape_latents}


def _images(f: h5py.File, name: str) -> np.ndarray:
    images, sums = f[name], stored(f, name)
    n = images.shape[0]
    return np.concatenate([read_checked(images, lo, min(lo + BLOCK, n), sums) for lo in range(0, n, BLOCK)])


def citris_name(path: str | os.PathLike[str], split: str) -> str:
    """CITRIS's file name of a split: ``<split>.npz``, ``<split>_triplets.npz`` or ``<split>_triplets_coarse.npz``."""
    with open_dataset(path) as f:
        if not is_triplet_file(f):
            return f"{split}.npz"
        coarse = read_config(f)["triplets"]["masks"] == "coarse"
    return f"{split}_triplets{'_coarse' if coarse else ''}.npz"


def export_citris(path: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, split: str | None = None,
                  overwrite: bool = False, notes: list[str] | None = None) -> Path:
    """Write ``out_dir/<split>.npz`` (split: as given, else the one the file records, else its stem); returns it.
    The file appears whole or not at all (written beside it, then renamed)."""
    path, out_dir = Path(path), Path(out_dir)
    if split is None:
        with open_dataset(path) as f:
            split = recorded_split(f)
        if split is None:
            split = path.stem
            if notes is not None:
                notes.append(f"{path.name} records no split: the file is named after it, {split}.npz; pass --split")
    split = check_split(split)
    target = out_dir / citris_name(path, split)
    if target.exists() and not overwrite:
        raise OutputExistsError(f"{target} exists; pass --overwrite to replace it")
    check_writable_folder(out_dir, "DIR")
    arrays = citris_arrays(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{target.name}.partial-{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target

