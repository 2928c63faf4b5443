"""Multimodal3DIdent's release layout (Zenodo 7678231, ``m3di/{train,val,test}/``), written and read.

One split folder holds ``images/<j>.png`` (zero-padded to ceil(log10 n) digits, as generate_images.py names
them and datasets.py finds them), ``text/text_raw.txt`` (one sentence per line, no newline after the last),
``latents_image.csv`` and ``latents_text.csv`` (pandas' ``to_csv(index=False)`` format: a header, integers as
integers, floats as their shortest exact repr, ``\\n`` line ends), all index-aligned. Floats are written and
parsed exactly, so a release converted to HDF5 and exported again gives the same tables.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import multimodal_text as mt
from .errors import DatasetFileError
from .multimodal import IMAGE_COLUMNS, INTEGER_COLUMNS, TEXT_COLUMNS
from .original_layout import png_name, read_png, scan_pngs, write_pngs

TEXT_FILE = "text/text_raw.txt"
IMAGE_CSV = "latents_image.csv"
TEXT_CSV = "latents_text.csv"
PAIRS_FOLDER = "pairs"
"""``<split>/pairs/<name>/``: a pair's partner text (ours; the release's loaders read fixed paths, not this)."""
PAIR_TEXT_FILE = "text_raw.txt"
EXPECTED = "<root>/{split}/images/*.png, text/text_raw.txt, latents_image.csv and latents_text.csv (Multimodal3DIdent)"


def is_release_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a Multimodal3DIdent split (its two tables, text and images)."""
    return (folder / IMAGE_CSV).is_file() and (folder / TEXT_CSV).is_file() and (folder / "images").is_dir()


def _format(column: str, value: Any) -> str:
    if column in INTEGER_COLUMNS:
        return str(int(value))
    if isinstance(value, (str, bytes)) or column == "object_color_name":
        return value.decode() if isinstance(value, bytes) else str(value)
    return repr(float(value))


def write_csv(path: Path, table: Mapping[str, Any], columns: tuple[str, ...]) -> None:
    """A table as pandas' ``to_csv(index=False)`` writes it."""
    path.write_text(csv_text(table, columns), encoding="utf-8")


def read_csv(path: Path, columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named columns of a release CSV (others ignored), ints, exact floats and strings as the release's."""
    if not path.is_file():
        raise DatasetFileError(f"{path} is missing; a Multimodal3DIdent split needs it (re-extract the archive)")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise DatasetFileError(f"{path} is empty; expected a header with {', '.join(columns)}")
    header, body = rows[0], rows[1:]
    missing = [c for c in columns if c not in header]
    if missing:
        raise DatasetFileError(f"{path} lacks the columns {', '.join(missing)}; expected {', '.join(columns)}")
    out: dict[str, np.ndarray] = {}
    for column in columns:
        k = header.index(column)
        try:
            cells = [row[k] for row in body]
            if column == "object_color_name":
                out[column] = np.array(cells, dtype=object)
            elif column in INTEGER_COLUMNS:
                out[column] = np.array([int(float(v)) for v in cells], dtype=np.int64)
            else:
                out[column] = np.array([float(v) for v in cells], dtype=np.float64)
        except (ValueError, IndexError):
            raise DatasetFileError(f"{path}: column {column} has a missing or non-numeric value; "
                                   f"re-extract the archive") from None
    return out


def write_text(path: Path, lines: Iterable[str]) -> None:
    """``text_raw.txt``: one sentence a line, no newline after the last (as generate_text.py writes it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")


def read_text(path: Path) -> list[str]:
    if not path.is_file():
        raise DatasetFileError(f"{path} is missing; a Multimodal3DIdent split needs it (re-extract the archive)")
    text = path.read_text(encoding="utf-8")
    return text.removesuffix("\n").split("\n") if text else []


def write_release_split(folder: Path, image: Mapping[str, Any], text: Mapping[str, Any], sentences: list[str],
                        images: Iterable[np.ndarray], workers: int = 1) -> None:
    """Write one split folder: PNGs, the text file, then the two tables."""
    n = len(sentences)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    write_pngs((folder / "images" / png_name(j, n) for j in range(n)), images, workers)
    write_text(folder / TEXT_FILE, sentences)
    write_csv(folder / IMAGE_CSV, image, IMAGE_COLUMNS)
    write_csv(folder / TEXT_CSV, text, TEXT_COLUMNS)


@dataclass
class ReleaseSplit:
    """One Multimodal3DIdent split folder: both tables, the sentences and the PNG names, checked to agree."""

    folder: Path
    image: dict[str, np.ndarray]
    text: dict[str, np.ndarray]
    sentences: list[str]
    files: list[str]

    @classmethod
    def open(cls, folder: str | os.PathLike[str]) -> ReleaseSplit:
        folder = Path(folder)
        image = read_csv(folder / IMAGE_CSV, IMAGE_COLUMNS)
        text = read_csv(folder / TEXT_CSV, TEXT_COLUMNS)
        sentences = read_text(folder / TEXT_FILE)
        n = len(image["object_shape"])
        counts = {IMAGE_CSV: n, TEXT_CSV: len(text["object_shape"]), TEXT_FILE: len(sentences)}
        if len(set(counts.values())) > 1:
            raise DatasetFileError(f"{folder}: {', '.join(f'{k} has {v}' for k, v in counts.items())} rows; they "
                                   f"must be index-aligned (re-extract the archive)")
        for column in ("object_shape", "object_xpos", "object_ypos"):
            if not np.array_equal(image[column], text[column]):
                raise DatasetFileError(f"{folder}: {column} differs between {IMAGE_CSV} and {TEXT_CSV}; the "
                                       f"modalities share it (re-extract the archive)")
        with_palette(text)
        files = [f"images/{name}" for name in scan_pngs(folder / "images", n, IMAGE_CSV)]
        return cls(folder, image, text, sentences, files)

    def read(self, indices: Iterable[int], pool: ThreadPoolExecutor | None = None) -> np.ndarray:
        """uint8 [B, H, W, 3] images at ``indices`` (decoded on ``pool``'s threads, if given)."""
        paths = [self.folder / self.files[int(i)] for i in indices]
        return np.stack(list(pool.map(read_png, paths)) if pool else [read_png(p) for p in paths])


def with_palette(text: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Add ``palette`` to a text table read from a CSV: told by each colour name's prefix (the CSV lacks it)."""
    text["palette"] = np.array([mt.palette_of(str(c)) for c in text["object_color_name"]], dtype=np.int64)
    return text


def read_pair_folders(folder: Path, n: int) -> dict[str, tuple[dict[str, np.ndarray], list[str]]]:
    """Text table (with ``palette``) and sentences of every ``pairs/<name>/`` beside a split of ``n`` samples, as
    ``c3di export`` writes them (empty when there is no ``pairs/``, as in the Zenodo release)."""
    root = folder / PAIRS_FOLDER
    if not root.exists():
        return {}
    if not root.is_dir():
        raise DatasetFileError(f"{root} is a file, not a folder of pairs (pairs/<name>/); remove or rename it")
    out = {}
    for pair in sorted(p for p in root.iterdir() if p.is_dir()):
        text = with_palette(read_csv(pair / TEXT_CSV, TEXT_COLUMNS))
        sentences = read_text(pair / PAIR_TEXT_FILE)
        counts = {TEXT_CSV: len(text["object_shape"]), PAIR_TEXT_FILE: len(sentences)}
        if set(counts.values()) != {n}:
            raise DatasetFileError(f"{pair}: {', '.join(f'{k} has {v}' for k, v in counts.items())} rows, the split "
                                   f"{n}; a pair's partner text is index-aligned with its split (export it again)")
        out[pair.name] = (text, sentences)
    return out


def csv_text(table: Mapping[str, Any], columns: tuple[str, ...]) -> str:
    """A table in the release's CSV text (for comparisons)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in zip(*(np.asarray(table[c]).reshape(-1) for c in columns)):
        writer.writerow([_format(c, v) for c, v in zip(columns, row)])
    return buffer.getvalue()
