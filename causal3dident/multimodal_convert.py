"""``c3di convert`` of a Multimodal3DIdent release split and ``c3di export --format multimodal3dident``.

Converting keeps the release's tables verbatim under ``/multimodal`` (float64, the sentences as written) and
derives ``/latents`` (raw, float32) from the image table, so exporting the file again writes the same tables,
text and pixels (tests/test_multimodal_layout.py checks the round trip).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np

from . import diskspace
from .checksums import seal, stored
from .codecs import write_images
from .errors import DatasetFileError
from .multimodal import TEXT_COLUMNS, raw_latents
from .multimodal_layout import TEXT_CSV, ReleaseSplit, write_csv, write_release_split, write_text
from .multimodal_store import GROUP, pair_text_names, read_pair_text, read_tables
from .outputs import check_writable_folder
from .staging import staged_folder
from .store import atomic_h5, create_image_dataset, write_core


def convert_release(folder: Path, out: str | os.PathLike[str], *, split: str | None, overwrite: bool = False,
                    compression: str = "gzip", progress: bool = False, workers: int = 1) -> Path:
    """One Multimodal3DIdent split folder -> one HDF5 file (images, raw latents, both tables, the text)."""
    from .convert import BLOCK, _bar

    data = ReleaseSplit.open(folder)
    n = len(data.sentences)
    if n == 0:
        raise DatasetFileError(f"{folder} holds no samples; re-extract the archive")
    latents, classes = raw_latents(data.image)
    first = data.read([0])
    height, width = first.shape[1:3]
    config = {"source": "Multimodal3DIdent release layout", "scene": "multimodal3dident",
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


PAIRS_FOLDER = "pairs"
"""``<split>/pairs/<name>/``: a pair's partner text (ours; the release's loaders read fixed paths, not this)."""


def write_pair_files(f: h5py.File, folder: Path) -> None:
    """``pairs/<name>/text_raw.txt`` and ``latents_text.csv`` (the release's formats) of every stored partner text."""
    for name in pair_text_names(f):
        text, sentences = read_pair_text(f, name)
        write_text(folder / PAIRS_FOLDER / name / "text_raw.txt", sentences)
        write_csv(folder / PAIRS_FOLDER / name / TEXT_CSV, text, TEXT_COLUMNS)
