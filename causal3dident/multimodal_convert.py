"""``c3di convert`` of a Multimodal3DIdent release split and ``c3di export --format multimodal3dident``.

Converting keeps the release's tables verbatim under ``/multimodal`` (float64, the sentences as written),
derives ``/latents`` (raw, float32) from the image table and reads the ``pairs/<name>/`` folders our export
writes beside the layout back into ``/multimodal/pairs/<name>``, so exporting the file again writes the same
tables, text, pixels and pairs (tests/test_multimodal_layout.py and tests/test_multimodal_pairs.py check the
round trip).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from . import diskspace
from . import multimodal_text as mt
from .checksums import seal, stored
from .codecs import write_images
from .errors import DatasetFileError
from .multimodal import TEXT_COLUMNS, raw_latents
from .multimodal_layout import (PAIR_TEXT_FILE, PAIRS_FOLDER, TEXT_CSV, ReleaseSplit, read_pair_folders, write_csv,
                                write_release_split, write_text)
from .multimodal_store import GROUP, pair_text_names, read_pair_text, read_tables, write_pair_text
from .outputs import check_writable_folder
from .staging import staged_folder
from .store import atomic_h5, create_image_dataset, write_core


SOURCE = "Multimodal3DIdent release layout"
"""The ``source`` of a converted release's config."""


def convert_release(folder: Path, out: str | os.PathLike[str], *, split: str | None, overwrite: bool = False,
                    compression: str = "gzip", progress: bool = False, workers: int = 1) -> Path:
    """One Multimodal3DIdent split folder -> one HDF5 file (images, raw latents, both tables, the text)."""
    from .convert import BLOCK, _bar

    data = ReleaseSplit.open(folder)
    n = len(data.sentences)
    if n == 0:
        raise DatasetFileError(f"{folder} holds no samples; re-extract the archive")
    pairs = read_pair_folders(folder, n)
    latents, classes = raw_latents(data.image)
    first = data.read([0])
    height, width = first.shape[1:3]
    config = {"source": SOURCE, "scene": "multimodal3dident",
              "split_folder": folder.name,
              "images": {"source": "PNG files of a Multimodal3DIdent release", "resolution": int(height)}}
    provenance = {"source": f"converted from the release folder {folder.name}/ (latents_image.csv, "
                            f"latents_text.csv, text/text_raw.txt)",
                  "palette": "told by each colour name's prefix (tab: tableau, xkcd: xkcd, else css4)"}
    size = diskspace.estimate_copy(data.files, compression, root=data.folder)
    with atomic_h5(out, overwrite, size_hint=size) as f, _bar(n, f"converting {folder.name}", progress) as bar, \
            ThreadPoolExecutor(max(1, workers)) as pool:
        write_core(f, latents=latents, classes=classes, indices=np.arange(n), config=config, seed=0, split=split,
                   multimodal=(data.image, data.text, provenance, data.sentences))
        for name, (text, sentences) in pairs.items():
            write_pair_text(f, name, text, _pair_provenance(folder, name), _pair_kind(name), sentences)
        images = create_image_dataset(f, "images", n, height, width, compression)
        for lo in range(0, n, BLOCK):
            block = data.read(range(lo, min(n, lo + BLOCK)), pool)
            if block.shape[1:3] != (height, width):
                raise DatasetFileError(f"{folder}: images differ in size ({block.shape[1]}x{block.shape[2]} and "
                                       f"{height}x{width}); every image of a split must share one resolution")
            write_images(images, lo, block)
            bar.update(len(block))
        f.attrs["num_rendered"] = n
        seal(f, source=str(folder))
    return Path(out)


def converted_release_problems(f: h5py.File, config: Mapping[str, Any], notes: list[str] | None = None) -> list[str]:
    """``c3di verify`` of a converted release (nothing for other files): no seed to regenerate its text from, so it
    says so in ``notes`` and checks that /latents and /classes are what the release's image table gives."""
    if config.get("source") != SOURCE or GROUP not in f:
        return []
    if notes is not None:
        pairs = pair_text_names(f)
        drawn = "palettes and phrasings" + (f" and the partner text of {', '.join(pairs)}" if pairs else "")
        notes.append(f"converted from the Multimodal3DIdent release folder {config.get('split_folder')}/: a release "
                     f"records no seed, so its {drawn} cannot be regenerated; verify checked instead that /latents "
                     f"and /classes agree with the release's image table stored beside them, the shapes of "
                     f"/multimodal, and every image with its checksum")
    try:
        latents, classes = raw_latents(read_tables(f)[0])
    except DatasetFileError as exc:
        return [f"/multimodal/latents_image: {exc}"]
    if np.array_equal(latents, f["latents"][...]) and np.array_equal(classes, f["classes"][...]):
        return []
    return ["/latents or /classes differ from /multimodal/latents_image (the release's table they were converted from)"]


def export_release(f: h5py.File, path: Path, target: Path, *, overwrite: bool = False, workers: int = 1,
                   progress: bool = False) -> Path:
    """Write ``f``'s split as a Multimodal3DIdent release folder ``target`` (``DIR/<split>/``)."""
    from .convert import _bar, _blocks, _check_target

    if GROUP not in f:
        raise DatasetFileError(f"{path} holds no Multimodal3DIdent text (/multimodal); sample it with --preset "
                               f"multimodal3dident, or choose another --format")
    if "images" not in f:
        raise DatasetFileError(f"{path} has no images; the Multimodal3DIdent layout needs them: render the file "
                               f"first")
    _check_target(target, overwrite)
    check_writable_folder(target.parent, "DIR")
    image, text, sentences = read_tables(f)
    with _bar(len(sentences), f"exporting {path.name}", progress) as bar, staged_folder(target) as staging:
        blocks = _blocks(f["images"], stored(f, "images"), bar)
        write_release_split(staging, image, text, sentences, blocks, workers)
        write_pair_files(f, staging)
    return target


def _pair_kind(name: str) -> str:
    """``text`` for the text-only pairs (phrasing, palette), ``image`` for the text of an image pair's views."""
    return "text" if name in mt.PAIR_CHANGES else "image"


def _pair_provenance(folder: Path, name: str) -> dict[str, str]:
    return {"source": f"converted from {folder.name}/{PAIRS_FOLDER}/{name}/ ({TEXT_CSV}, {PAIR_TEXT_FILE}), as "
                      f"c3di export writes a file's /multimodal/pairs/{name}",
            "palette": "told by each colour name's prefix (tab: tableau, xkcd: xkcd, else css4)"}


def write_pair_files(f: h5py.File, folder: Path) -> None:
    """``pairs/<name>/text_raw.txt`` and ``latents_text.csv`` (the release's formats) of every stored partner text."""
    for name in pair_text_names(f):
        text, sentences = read_pair_text(f, name)
        write_text(folder / PAIRS_FOLDER / name / PAIR_TEXT_FILE, sentences)
        write_csv(folder / PAIRS_FOLDER / name / TEXT_CSV, text, TEXT_COLUMNS)
