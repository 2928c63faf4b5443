"""Per-image pixel checksums and image statistics, sealed into a dataset file by the command that writes it.

Every writer (render assembly, ``c3di merge``, ``convert``, ``repack``, the synthetic test files) calls
:func:`seal` once its images are written and before the file is marked complete. ``seal`` decodes every
image as stored and records:

- ``/checksums/<dataset>``: uint32 [N], the CRC-32 of each image's decoded pixels (``/checksums/images``,
  ``/checksums/pairs/<lt>/images``). They are of the pixels, not of the compressed chunks, so they survive
  ``repack`` and ``merge`` unchanged; checksums copied from a source (merge, repack) are checked against the
  new file's pixels instead of recomputed, so damage in a source stops the command rather than being sealed in;
- the root attribute ``stats``: per-channel mean/std of ``/images`` and class counts (``causal3dident.stats``),
  so that no reader ever has to write them.

:func:`check_pixels` is ``c3di verify``'s pass over every byte of every image.
"""

from __future__ import annotations

from collections.abc import Callable

import h5py
import numpy as np

from . import stats as _stats
from .chunks import MISMATCH, crc32, damaged, describe_failure, image_reader
from .errors import DamagedFileError

GROUP = "checksums"
ALGORITHM = "crc32"
BLOCK = 256


def image_datasets(f: h5py.File) -> list[str]:
    """Paths of the image datasets in ``f``: ``images``, ``pairs/<lt>/images`` and ``triplets/<frame>/images``, those
    present."""
    names = ["images"] if isinstance(f.get("images"), h5py.Dataset) else []
    pairs = f.get("pairs")
    if isinstance(pairs, h5py.Group):
        names += [f"pairs/{lt}/images" for lt in sorted(pairs)
                  if isinstance(pairs[lt], h5py.Group) and isinstance(pairs[lt].get("images"), h5py.Dataset)]
    triplets = f.get("triplets")  # a triplet file's source frames (causal3dident.triplets)
    if isinstance(triplets, h5py.Group):
        names += [f"triplets/{v}/images" for v in sorted(triplets)
                  if isinstance(triplets[v], h5py.Group) and isinstance(triplets[v].get("images"), h5py.Dataset)]
    return names


def checksum_path(dataset: str) -> str:
    """Where the checksums of image dataset ``dataset`` are stored: ``checksums/<dataset>``."""
    return f"{GROUP}/{dataset}"


def stored(f: h5py.File, dataset: str) -> np.ndarray | None:
    """The recorded checksums of ``dataset`` (uint32 [N]), or None if the file predates them."""
    ds = f.get(checksum_path(dataset))
    return ds[...] if isinstance(ds, h5py.Dataset) else None


def scan(ds: h5py.Dataset, recorded: np.ndarray | None,
         on_block: Callable[[np.ndarray, int], object] | None = None) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Decode every image of ``ds``: its checksums (uint32 [N]) and its damaged samples as (row, reason).

    ``recorded`` checksums, if given, are compared with each decoded image. ``on_block(images, count)`` gets
    each block's sound images and the number of samples the block covered (progress, statistics).
    """
    n = ds.shape[0]
    read = image_reader(ds)
    sums = np.zeros(n, dtype=np.uint32)
    bad: list[tuple[int, str]] = []
    buffer = np.empty((min(n, BLOCK), *ds.shape[1:]), dtype=ds.dtype)
    for lo in range(0, n, BLOCK):
        count = min(n, lo + BLOCK) - lo
        sound = np.ones(count, dtype=bool)
        for k in range(count):
            try:
                read(lo + k, buffer[k])
            except Exception as exc:  # any decoder or HDF5 failure: the stored bytes are damaged
                bad.append((lo + k, describe_failure(exc)))
                sound[k] = False
                continue
            sums[lo + k] = crc32(buffer[k])
            if recorded is not None and sums[lo + k] != recorded[lo + k]:
                bad.append((lo + k, MISMATCH))
                sound[k] = False
        if on_block is not None:
            on_block(buffer[:count][sound], count)
    return sums, bad


def read_checked(ds: h5py.Dataset, lo: int, hi: int, recorded: np.ndarray | None = None) -> np.ndarray:
    """Images ``lo..hi-1`` of ``ds`` decoded as the loader decodes them, each compared with its ``recorded``
    checksum if given; ``DamagedFileError`` names the file, dataset and sample of the first damaged one."""
    read = image_reader(ds)
    out = np.empty((hi - lo, *ds.shape[1:]), dtype=ds.dtype)
    for k in range(hi - lo):
        try:
            read(lo + k, out[k])
        except Exception as exc:  # any decoder or HDF5 failure: the stored bytes are damaged
            raise damaged(ds.file.filename, ds.name.lstrip("/"), lo + k, describe_failure(exc)) from None
        if recorded is not None and crc32(out[k]) != recorded[lo + k]:
            raise damaged(ds.file.filename, ds.name.lstrip("/"), lo + k, MISMATCH)
    return out


def seal(f: h5py.File, source: str = "the input") -> None:
    """Record the checksums of every image dataset of ``f`` and the statistics of ``/images``.

    Checksums already in ``f`` (copied from ``source``) are checked instead; a damaged image raises
    ``DamagedFileError`` and the writer's ``atomic_h5`` leaves no output.
    """
    for name in image_datasets(f):
        ds = f[name]
        recorded = stored(f, name)
        acc = _stats.StatsAccumulator() if name == "images" else None
        sums, bad = scan(ds, recorded, None if acc is None else lambda images, _: acc.update(images))
        if bad:
            row, reason = bad[0]
            raise DamagedFileError(f"writing from {source}: sample {row} of /{name} {reason} ({len(bad)} of "
                                   f"{len(sums)} damaged), so nothing was written; run 'c3di verify' on {source}, "
                                   f"then copy or re-create the damaged file")
        if recorded is None:
            write(f, name, sums)
        if acc is not None and acc.images:
            classes = f["classes"][...]
            key = _stats.stats_key(f["latents"][...], classes, ds.shape[1:])
            f.attrs[_stats.STATS_ATTR] = acc.result(classes).to_json(key)


def write(f: h5py.File, dataset: str, sums: np.ndarray) -> h5py.Dataset:
    """Store the checksums of ``dataset`` at ``/checksums/<dataset>``."""
    group = f.require_group(GROUP)
    group.attrs["algorithm"] = ALGORITHM
    group.attrs["of"] = "the decoded pixels of each image (C order, uint8 [H, W, 3])"
    out = f.create_dataset(checksum_path(dataset), data=np.asarray(sums, dtype=np.uint32),
                           chunks=(min(len(sums), 65536),) if len(sums) else None)
    return out


def check_pixels(f: h5py.File, progress: bool = False) -> tuple[list[str], list[str]]:
    """``c3di verify``'s pass over the images: decode every one, compare its checksum; (problems, notes).

    Each damaged dataset gives one problem naming its first damaged sample and how many there are. A dataset
    without checksums (written before they existed) is still decoded in full, and gives a note.
    """
    from causal3dident.progress import ProgressBar

    problems: list[str] = []
    notes: list[str] = []
    names = image_datasets(f)
    index = f["index"][...] if "index" in f else None
    total = sum(f[name].shape[0] for name in names)
    with ProgressBar(total=total, unit="img", desc="verifying pixels", disable=not progress or not total,
                     dynamic_ncols=True) as bar:
        for name in names:
            recorded = stored(f, name)
            if recorded is None:
                notes.append(f"/{name} has no pixel checksums (written before causal3dident recorded them): every "
                             f"image was decoded, but pixels that decode wrongly cannot be detected; 'c3di repack' "
                             f"writes a copy with checksums")
            elif recorded.shape != (f[name].shape[0],):
                problems.append(f"/{checksum_path(name)} holds {recorded.shape} checksums for {f[name].shape[0]} "
                                f"images")
                recorded = None
            _, bad = scan(f[name], recorded, lambda _, count: bar.update(count))
            if bad:
                row, reason = bad[0]
                sample = f"sample {row}" + (f" (index {int(index[row])})" if index is not None and
                                            len(index) > row else "")
                problems.append(f"/{name}: {sample} {reason}; {len(bad)} of {f[name].shape[0]} images damaged: "
                                f"copy the file again or re-create it")
    return problems, notes

