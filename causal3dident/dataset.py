"""``Causal3DIdent``: the torchvision dataset over our HDF5 files and the original PNG releases.

Modelled on torchvision's datasets: ``VisionDataset``'s constructor conventions and ``transform`` /
``transforms`` rules, CelebA's ``target_type``. Everything that can be wrong with the data is
checked at construction; h5py handles are opened lazily in each process, so the dataset is safe
with multi-worker (fork or spawn, persistent) DataLoaders. ``__getitems__`` reads whole batches.
"""

from __future__ import annotations

import mmap
import operator
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torchvision.datasets import VisionDataset

from . import store
from . import stats as _stats
from .checksums import stored as stored_checksums
from .chunks import MISMATCH, RawChunks, crc32, damaged, describe_failure, inflater  # noqa: F401 (re-exported)
from .errors import ConfigError, DatasetFileError
from .collate import batch_buffer
from .latents import CLASS_NAMES, NUM_LATENTS, to_scene_units
from .neighbours import NeighbourIndex, cached_index, load_index
from .original_layout import EXPECTED, OriginalSplit, find_split
from .pairs import DAPair, NearestPairs, PairSpec, parse_pairs, recorded_transformation

TARGET_TYPES: dict[str, str] = {
    "latents": "raw latents of the (first) image, float32 [10] in [-1, 1]",
    "class": "class label 0..6 (int)",
    "scene": "latents in scene units (causal3dident.latents.to_scene_units), float32 [10]",
    "index": "position of the sample in this dataset (int)",
    "latents2": "raw latents of the second view's image (pairs only)",
    "scene2": "scene-unit latents of the second view's image (pairs only)",
    "index2": "position of the second view's image: the anchor's, or the neighbour's for 'nearest' (pairs only)",
    "z_tilde": "the transformed latents z~ asked for: stored (exact) or sampled (nearest) (LT pairs only)",
}
PAIR_TARGETS = ("latents2", "scene2", "index2", "z_tilde")
FLOAT_TARGETS = ("latents", "scene", "latents2", "scene2", "z_tilde")
IMAGE_FORMATS = ("pil", "tensor")
H5_SUFFIXES = (".h5", ".hdf5")
DOWNLOAD_HINT = ("pass download=True to fetch the published release into it (or run 'c3di download causal3dident "
                 "--root {root}')")


class Causal3DIdent(VisionDataset):
    """Causal3DIdent images with latent targets, optionally as positive pairs.

    Args:
        root: an HDF5 dataset file; a folder with ``<split>.h5``; or an original-layout folder
            (``<split>set/images_{c}/*.png`` + ``raw_latents_{c}.npy``, or 3DIdent's ``images/`` + ``raw_latents.npy``).
        split: ``"train"`` or ``"test"`` (any name whose file or folder exists); ignored when ``root`` is a file.
        transform: applied to each image (to each view of a pair, independently).
        target_transform: applied to the target.
        transforms: joint transform of ``(image, target)``; for pairs it gets ``((view1, view2), target)``,
            so random parameters are shared by both views. Exclusive with ``transform``/``target_transform``.
        target_type: one of ``TARGET_TYPES`` or a list of them (target = tuple); ``[]`` for no target.
        pairs: positive pairs, returned as ``(view1, view2, target)``: a DA setting (``"colour"``,
            ``"rotation_crop_small_colour"``, ...), ``"exact:<lt>"`` or ``"<lt>"`` (rendered z~ from the file),
            or ``"nearest:<lt>"`` (the paper's nearest same-class image); see ``causal3dident.pairs``.
        image_format: ``"pil"`` (PIL images, as torchvision) or ``"tensor"`` (uint8 [3, H, W] ``tv_tensors.Image``).
        in_memory: read all images into memory at construction (fast for files that fit in RAM).
        verify_checksums: check each decoded image against the CRC-32 its writer recorded (HDF5 files that have
            them), so a damaged file raises ``DamagedFileError`` naming the file and sample instead of returning
            wrong pixels; costs about 1 us of CPU per image at 64 px, 10-30 us at 224 px (docs/integrity.md).
        seed: seed of the nearest-pair z~ draws; default: the file's seed (a benchmark run's pairs: its seed).
        num_samples: use only the first ``num_samples`` samples (items and nearest-pair pool), as the benchmark
            trains on a file's first rows; ``stats`` still describe the whole file.
        download: fetch the published release into ``root`` if the loader finds no data for ``split`` there
            (``True``: Causal3DIdent, Zenodo 4784282; ``"3dident"``: 3DIdent), resumable and checked against
            Zenodo's MD5s, as ``c3di download`` does (``causal3dident.download``); data already there is used.
    """

    classes: list[str] = list(CLASS_NAMES)

    def __init__(self, root: str | os.PathLike[str], split: str = "train", transform: Callable | None = None,
                 target_transform: Callable | None = None, transforms: Callable | None = None,
                 target_type: str | Sequence[str] = "latents", pairs: str | None = None, *,
                 image_format: str = "pil", in_memory: bool = False, seed: int | None = None,
                 num_samples: int | None = None, verify_checksums: bool = True,
                 download: bool | str = False) -> None:
        super().__init__(root, transforms=transforms, transform=transform, target_transform=target_transform)
        self._joint = transforms is not None
        self.split = split
        self.target_type = [target_type] if isinstance(target_type, str) else list(target_type)
        self.pair_spec: PairSpec | None = parse_pairs(pairs)
        self.image_format = image_format
        self._check_arguments()
        if download:
            from .download import fetch_split  # network code only when asked for

            fetch_split(Path(os.path.expanduser(root)), split, "causal3dident" if download is True else download)
        self.source = open_source(Path(os.path.expanduser(root)), split, in_memory, verify_checksums)
        self.latents: np.ndarray = self.source.latents
        self.targets: np.ndarray = self.source.classes
        if num_samples is not None:
            if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) \
                    or not 0 < num_samples <= len(self.latents):
                raise ConfigError(f"num_samples must be an integer in 1..{len(self.latents)} (the samples of "
                                  f"{self.source.path}), got {num_samples!r}")
            self.latents, self.targets = self.latents[:num_samples], self.targets[:num_samples]
        self.seed = self.source.seed if seed is None else int(seed)
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._scene = to_scene_units(self.latents).astype(np.float32) if {"scene", "scene2"} & set(self.target_type) \
            else None
        self._da = DAPair(self.pair_spec.name) if self.pair_spec and self.pair_spec.mode == "da" else None
        self._neighbours: NeighbourIndex | None = None
        self._neighbours_path: Path | None = None
        self._stats: _stats.DatasetStats | None = None
        try:
            self._prepare_reading()
        finally:
            self.source.close()  # workers open their own handles

    def _prepare_reading(self) -> None:
        """Locate the image chunks, check the pairs asked for, build the neighbour index: all before any worker."""
        self.source.prepare("images")
        if self.pair_spec and self.pair_spec.mode == "exact":
            self.source.require_pairs(self.pair_spec.name)
            self.source.prepare(f"pairs/{self.pair_spec.name}/images")
        if self.pair_spec and self.pair_spec.mode == "nearest":
            self._check_pairable()
            lt = recorded_transformation(self.source.config, self.pair_spec.name)  # the file's sigma, as the benchmark
            self.pair_spec = replace(self.pair_spec, lt=lt)
            self._neighbours, self._neighbours_path = cached_index(self.source.cache_anchor, self.latents,
                                                                   self.targets)

    def _check_arguments(self) -> None:
        unknown = [t for t in self.target_type if t not in TARGET_TYPES]
        if unknown:
            raise ConfigError(f"unknown target_type {unknown[0]!r}; choose from {', '.join(TARGET_TYPES)}")
        if not self.target_type and self.target_transform is not None:
            raise ConfigError("target_transform is given but target_type is empty: there is no target to transform")
        needs_pairs = [t for t in self.target_type if t in PAIR_TARGETS]
        if needs_pairs and self.pair_spec is None:
            raise ConfigError(f"target_type {needs_pairs[0]!r} describes the second view: pass pairs=...")
        if "z_tilde" in self.target_type and self.pair_spec is not None and self.pair_spec.mode == "da":
            raise ConfigError("target_type 'z_tilde' needs an LT pair mode ('exact:<lt>' or 'nearest:<lt>'), "
                              f"not the DA setting {self.pair_spec.name!r}")
        if self.image_format not in IMAGE_FORMATS:
            raise ConfigError(f"image_format must be one of {', '.join(IMAGE_FORMATS)}, got {self.image_format!r}")

    def _check_pairable(self) -> None:
        counts = np.bincount(self.targets, minlength=len(CLASS_NAMES))
        lonely = [CLASS_NAMES[c] for c in np.flatnonzero(counts == 1)]
        if lonely:
            raise DatasetFileError(f"{self.source.path}: class {lonely[0]} has a single sample, which has no "
                                   f"neighbour but itself; nearest pairs need two or more of every class present")

    # -- epochs (nearest pairs) --------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Set the epoch of the nearest-pair z~ draws; shared with DataLoader workers (also persistent ones)."""
        self._epoch.fill_(int(epoch))

    @property
    def epoch(self) -> int:
        return int(self._epoch.item())

    def z_tilde(self, indices: Sequence[int] | np.ndarray, epoch: int | None = None) -> np.ndarray:
        """The transformed latents z~ of ``indices`` in an epoch (default: the current one): stored or sampled."""
        spec = self._lt_spec()
        indices = np.asarray(indices, dtype=np.int64)
        if spec.mode == "exact":
            return self.source.pair_latents[spec.name][indices]
        return self._nearest_pairs(self._neighbours).z_tilde(self.epoch if epoch is None else epoch, indices)

    def _nearest_pairs(self, index: NeighbourIndex | None) -> NearestPairs:
        """The shared nearest-pair maker over this dataset's pool (what the benchmark's ``lt_pairs: nearest`` uses)."""
        spec = self._lt_spec()
        assert spec.lt is not None
        return NearestPairs(spec.lt, self.latents, self.targets, self.seed, index=index)

    def _lt_spec(self) -> PairSpec:
        if self.pair_spec is None or self.pair_spec.mode == "da":
            raise ConfigError("z~ exists for LT pairs only ('exact:<lt>' or 'nearest:<lt>')")
        return self.pair_spec

    # -- statistics --------------------------------------------------------------------------------
    @property
    def stats(self) -> _stats.DatasetStats:
        """Per-channel mean/std (images in [0, 1]) and class counts; computed once, then read from storage."""
        if self._stats is None:
            self._stats = self.source.stats()
        return self._stats

    # -- items -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.latents)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        try:
            position = operator.index(index)  # ints, numpy integers, 0-d integer tensors; not 1.7 or '3'
        except TypeError:
            raise TypeError(f"dataset indices must be integers, not {type(index).__name__} {index!r}") from None
        return self.__getitems__([position])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[Any, ...]]:
        """Samples at ``indices``, reading the images of the whole batch at once (DataLoader calls this)."""
        idx = self._positions(indices)
        memory = self._batch_memory(len(idx))
        first = self._images(self._read(idx, "images", memory.get("view1")))
        second_idx, z_tilde = idx, None
        if self.pair_spec is None:
            views: list[tuple[Any, ...]] = [(img,) for img in first]
        elif self.pair_spec.mode == "da":
            assert self._da is not None
            views = [self._da(img) for img in first]
        else:
            if self.pair_spec.mode == "exact":
                second = self._read(idx, f"pairs/{self.pair_spec.name}/images", memory.get("view2"))
                z_tilde = self.source.pair_latents[self.pair_spec.name][idx]
            else:
                z_tilde, second_idx = self._nearest_pairs(self._neighbour_index()).pairs(self.epoch, idx)
                second = self._read(second_idx, "images", memory.get("view2"))
            views = list(zip(first, self._images(second)))
        targets = self._targets(idx, second_idx, z_tilde, memory)
        return [self._finish(v, t) for v, t in zip(views, targets)]

    def _positions(self, indices: Sequence[int]) -> np.ndarray:
        given = np.asarray(indices)
        if given.size and given.dtype.kind not in "iu":
            raise TypeError(f"dataset indices must be integers, not {given.dtype} values such as "
                            f"{given.reshape(-1)[0]!r}")
        idx = given.astype(np.int64).reshape(-1)
        n = len(self)
        if ((idx < -n) | (idx >= n)).any():
            raise IndexError(f"index out of range for a dataset of {n} samples: {indices}")
        return np.where(idx < 0, idx + n, idx)

    def _batch_memory(self, size: int) -> dict[str, torch.Tensor]:
        """Tensors for this batch's tensor images and float targets, all in one ``batch_buffer``.

        ``channels_last_collate`` batches what reaches it untransformed without a copy, and inside a DataLoader
        worker (where the buffer is then shared memory) the worker sends the batch as one file, not one per tensor.
        """
        fields: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
        if self.image_format == "tensor" and self._da is None:
            views = ("view1",) if self.pair_spec is None else ("view1", "view2")
            fields.update({view: ((size, *self.source.image_shape), torch.uint8) for view in views})
        fields.update({f"target{k}": ((size, NUM_LATENTS), torch.float32)
                       for k, name in enumerate(self.target_type) if name in FLOAT_TARGETS})
        return dict(zip(fields, batch_buffer(list(fields.values()))))

    def _read(self, idx: np.ndarray, dataset: str, out: torch.Tensor | None) -> torch.Tensor:
        """uint8 [B, H, W, 3] pixels of the images at ``idx``, decoded into ``out`` (or a new tensor)."""
        if out is None:
            out = torch.empty((len(idx), *self.source.image_shape), dtype=torch.uint8)
        self.source.read(idx, dataset, out=out.numpy())
        return out

    def _images(self, pixels: torch.Tensor) -> list[Any]:
        """Images [B, H, W, 3] as uint8 [3, H, W] ``tv_tensors.Image`` or as PIL images.

        The tensors are views of ``pixels`` with channels-last strides (no transposing copy here): for images
        that reach it untransformed, ``channels_last_collate`` returns ``pixels`` itself as the batch; the
        default collate makes one transposing copy.
        """
        if self.image_format == "tensor":
            from torchvision import tv_tensors

            return [image.as_subclass(tv_tensors.Image) for image in pixels.permute(0, 3, 1, 2).unbind(0)]
        from PIL import Image

        return [Image.fromarray(image) for image in pixels.numpy()]

    def _targets(self, idx: np.ndarray, idx2: np.ndarray, z_tilde: np.ndarray | None,
                 memory: dict[str, torch.Tensor]) -> list[Any]:
        """The target of each sample: one value per ``target_type``, a tuple if several, None if none.

        Float targets are rows of the batch's tensors in ``memory``."""
        columns: list[list[Any]] = []
        for k, name in enumerate(self.target_type):
            if name in ("class", "index", "index2"):
                values = self.targets[idx] if name == "class" else (idx if name == "index" else idx2)
                columns.append(values.tolist())
                continue
            rows = {"latents": lambda: self.latents[idx], "scene": lambda: self._scene[idx],
                    "latents2": lambda: self.latents[idx2], "scene2": lambda: self._scene[idx2],
                    "z_tilde": lambda: np.asarray(z_tilde, dtype=np.float32)}[name]()
            column = memory[f"target{k}"]
            column.numpy()[...] = rows
            columns.append(list(column.unbind(0)))
        if not columns:
            return [None] * len(idx)
        return [row if len(row) > 1 else row[0] for row in map(tuple, zip(*columns))]

    def _finish(self, views: tuple[Any, ...], target: Any) -> tuple[Any, ...]:
        if self._joint:
            assert self.transforms is not None
            if len(views) == 1:
                return self.transforms(views[0], target)
            both, target = self.transforms(views, target)
            return (*both, target)
        if self.transform is not None:
            views = tuple(self.transform(v) for v in views)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return (*views, target)

    def _neighbour_index(self) -> NeighbourIndex:
        if self._neighbours is None:  # a worker that received the dataset without the index
            try:
                self._neighbours = load_index(self._neighbours_path) if self._neighbours_path else None
            except (OSError, ValueError, KeyError):
                self._neighbours = None
            if self._neighbours is None:
                self._neighbours = NeighbourIndex.build(self.latents, self.targets)
        return self._neighbours

    # -- pickling (spawn workers) and repr ---------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self._neighbours_path is not None:
            state["_neighbours"] = None  # workers load it from the cache file
        return state

    def extra_repr(self) -> str:
        lines = [f"Split: {self.split}", f"Source: {self.source.description}", f"Target type: {self.target_type}",
                 f"Image format: {self.image_format}"]
        if self.pair_spec is not None:
            extra = f" (seed {self.seed}, epoch {self.epoch})" if self.pair_spec.mode == "nearest" else ""
            lines.append(f"Pairs: {self.pair_spec}{extra}")
            if self._da is not None:
                lines.append(f"Pair augmentation: {self._da!r}")
        return "\n".join(lines)


# -- sources ---------------------------------------------------------------------------------------
def open_source(root: Path, split: str, in_memory: bool, verify_checksums: bool = True) -> H5Source | PNGSource:
    """The data behind ``root`` for ``split``: an HDF5 file or an original-layout folder, detected."""
    if not isinstance(split, str) or not split:
        raise ConfigError(f"split must be a name such as 'train' or 'test', got {split!r}")
    if root.is_file():
        return H5Source(root, in_memory, verify_checksums)
    if not root.exists():
        raise DatasetFileError(f"{root}: no such file or folder; pass an HDF5 dataset file, a folder with "
                               f"{split}.h5, or an original-layout folder, or {DOWNLOAD_HINT.format(root=root)}")
    for suffix in H5_SUFFIXES:
        if (root / f"{split}{suffix}").is_file():
            return H5Source(root / f"{split}{suffix}", in_memory, verify_checksums)
    folder = find_split(root, split)
    if folder is not None:
        return PNGSource(OriginalSplit.open(folder), in_memory)
    others = sorted({p.stem for s in H5_SUFFIXES for p in root.glob(f"*{s}")} |
                    {p.name.removesuffix("set") for p in root.iterdir() if p.is_dir() and find_split(root, p.name)})
    if others:
        raise DatasetFileError(f"{root} has no split {split!r} (found: {', '.join(others)}); pass split= one of those")
    raise DatasetFileError(f"{root} holds no Causal3DIdent data; expected an HDF5 file, a folder with {split}.h5, "
                           f"or {EXPECTED.format(split=split)}; or {DOWNLOAD_HINT.format(root=root)}")


class H5Source:
    """Images and latents of one HDF5 dataset file; the file handle is opened lazily in each process."""

    kind = "hdf5"

    def __init__(self, path: Path, in_memory: bool, verify_checksums: bool = True) -> None:
        self.path = path
        self._file: h5py.File | None = None
        self._bytes: memoryview | None = None
        self._pid = -1
        self._chunks: dict[str, RawChunks | None] = {}
        with store.open_dataset(path) as f:  # checks the header and the structure: one line if anything is off
            n = int(f.attrs["num_samples"])
            if "images" not in f:
                raise DatasetFileError(f"{path} has latents but no images; render them first ('c3di render'), "
                                       f"or read latents alone with causal3dident.store.read_latents")
            rendered = int(f.attrs.get("num_rendered", f["images"].shape[0]))
            if rendered < n:
                raise DatasetFileError(f"{path}: only {rendered} of {n} images are rendered; resume the render job")
            self.latents = f["latents"][...]
            self.classes = f["classes"][...]
            self.image_shape = tuple(f["images"].shape[1:])
            self.seed = int(f.attrs["seed"])
            self.config = store.read_config(f) if "config" in f.attrs else {}
            self.pair_latents = {name: f["pairs"][name]["latents"][...] for name in store.pair_names(f)}
            self.rendered_pairs = [name for name in store.pair_names(f) if "images" in f["pairs"][name]]
            datasets = ["images", *(f"pairs/{name}/images" for name in self.rendered_pairs)]
            self._checksums = {name: stored_checksums(f, name) if verify_checksums else None for name in datasets}
            self._stored_stats = f.attrs.get(_stats.STATS_ATTR)
            self._memory = {name: self._load(f[name], name) for name in datasets} if in_memory else None
        self.description = f"HDF5 file {path}" + (" (in memory)" if in_memory else "")
        self.cache_anchor = path

    def _load(self, ds: h5py.Dataset, name: str) -> np.ndarray:
        """Every image of ``ds`` (``in_memory``), each decoded and checked as a read from disk is."""
        out = np.empty(ds.shape, dtype=ds.dtype)
        chunks = RawChunks.locate(ds, self.path, self._checksums[name])
        if chunks is None:
            self._read_h5(ds, np.arange(len(out)), out)
            return out
        with open(self.path, "rb") as fh:  # the mapping outlives the descriptor; freed with its last view
            chunks.read(memoryview(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)), np.arange(len(out)), out)
        return out

    def require_pairs(self, name: str) -> None:
        """Fail now, not in a worker, if the file lacks rendered pair images for LT ``name``."""
        if name in self.rendered_pairs:
            return
        if name in self.pair_latents:
            raise DatasetFileError(f"{self.path} has the z~ latents of '{name}' pairs but not their images; "
                                   f"render them, or use pairs='nearest:{name}' (the paper's method)")
        have = ", ".join(self.rendered_pairs) or "none"
        raise DatasetFileError(f"{self.path} has no rendered '{name}' pairs (rendered pairs: {have}); use "
                               f"pairs='nearest:{name}' (the paper's method) or make a file with --pairs {name}")

    def prepare(self, dataset: str) -> RawChunks | None:
        """Locate the chunks of ``dataset`` once (in the main process, so workers inherit the table)."""
        if self._memory is None and dataset not in self._chunks:
            self._chunks[dataset] = RawChunks.locate(self._h5()[dataset], self.path, self._checksums.get(dataset))
        return self._chunks.get(dataset)

    def read(self, indices: np.ndarray, dataset: str = "images", out: np.ndarray | None = None) -> np.ndarray:
        """uint8 [B, H, W, 3] images at ``indices`` (any order, repeats allowed), written into ``out`` if given."""
        if out is None:
            out = np.empty((len(indices), *self.image_shape), dtype=np.uint8)
        if self._memory is not None:
            return np.take(self._memory[dataset], indices, axis=0, out=out, mode="clip")  # checked; unbuffered
        chunks = self.prepare(dataset)
        if chunks is not None:
            self._h5()
            assert self._bytes is not None
            chunks.read(self._bytes, indices, out)
            return out
        self._read_h5(self._h5()[dataset], indices, out)
        return out

    def _read_h5(self, ds: h5py.Dataset, indices: np.ndarray, out: np.ndarray) -> None:
        """Images of another chunk layout, through h5py; a read failure names the file, dataset and sample."""
        name = ds.name.lstrip("/")
        sums = self._checksums.get(name)
        for k, i in enumerate(np.asarray(indices).tolist()):  # one read per image: fancy indexing is far slower
            try:
                ds.read_direct(out, np.s_[i], np.s_[k])
            except (OSError, ValueError) as exc:
                raise damaged(self.path, name, i, describe_failure(exc)) from None
            if sums is not None and crc32(out[k]) != sums[i]:
                raise damaged(self.path, name, i, MISMATCH)

    def read_range(self, lo: int, hi: int) -> np.ndarray:
        return self.read(np.arange(lo, hi))

    def _h5(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            try:
                self._file = h5py.File(self.path, "r")  # checked at construction; reopened in each worker
            except OSError as exc:  # busy (another process writes it), or gone since construction
                raise DatasetFileError(store.describe_open_error(self.path, exc)) from None
            with open(self.path, "rb") as fh:  # the mapping outlives the descriptor
                self._bytes = memoryview(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ))
            self._pid = os.getpid()
        return self._file

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
            if self._bytes is not None:
                mapping = self._bytes.obj
                self._bytes.release()
                mapping.close()  # type: ignore[union-attr]
        self._file, self._bytes = None, None

    def stats(self) -> _stats.DatasetStats:
        """Stats stored in the file by its writer; for older files, from the user cache, else computed and cached
        there (never written into the file or its folder)."""
        key = _stats.stats_key(self.latents, self.classes, self.image_shape)
        found = _stats.from_attribute(self._stored_stats, key) or _stats.read_cache(self.path, key)
        if found is not None:
            return found
        result = _stats.compute(self.read_range, len(self.latents), self.classes)
        _stats.write_cache(self.path, result, key)
        return result

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_file": None, "_bytes": None, "_pid": -1}


class PNGSource:
    """Images and latents of an original-layout split folder, one PNG decoded per image."""

    kind = "png"

    def __init__(self, split: OriginalSplit, in_memory: bool) -> None:
        self.split = split
        self.path = split.folder
        self.latents = split.latents
        self.classes = split.classes
        self.image_shape = (*split.image_size(), 3)
        self.seed = 0
        self.config: dict[str, Any] = {}
        self.pair_latents: dict[str, np.ndarray] = {}
        self.rendered_pairs: list[str] = []
        self.description = f"original {split.layout} layout {split.folder}"
        self.cache_anchor = split.folder / "raw_latents"
        self._memory = split.read(range(len(self.latents))) if in_memory else None

    def prepare(self, dataset: str) -> None:
        """Nothing to locate: every image is its own file."""

    def close(self) -> None:
        """No handles are kept open."""

    def require_pairs(self, name: str) -> None:
        raise DatasetFileError(f"{self.path}: the original layout has no rendered pairs; use pairs='nearest:{name}' "
                               f"(the paper's method)")

    def read(self, indices: np.ndarray, dataset: str = "images", out: np.ndarray | None = None) -> np.ndarray:
        """uint8 [B, H, W, 3] images at ``indices``, written into ``out`` if given."""
        images = self._memory[indices] if self._memory is not None else self.split.read(indices)
        if out is None:
            return images
        out[...] = images
        return out

    def read_range(self, lo: int, hi: int) -> np.ndarray:
        return self.read(np.arange(lo, hi))

    def stats(self) -> _stats.DatasetStats:
        """Stats from the user cache; else computed and cached there (never written into the data's folder)."""
        key = _stats.stats_key(self.latents, self.classes, self.image_shape)
        found = _stats.read_cache(self.cache_anchor, key)
        if found is not None:
            return found
        result = _stats.compute(self.read_range, len(self.latents), self.classes)
        _stats.write_cache(self.cache_anchor, result, key)
        return result
