"""The original releases' folder layouts: Causal3DIdent (Zenodo 4784282) and 3DIdent (cl-ica).

Causal3DIdent: ``{train,test}set/images_{c}/<j>.png`` with ``raw_latents_{c}.npy`` and
``latents_{c}.npy`` for classes c = 0..6; 3DIdent: ``{train,test}set/images/<j>.png`` with
``raw_latents.npy`` and ``latents.npy`` (one class, the teapot). Image j of a folder of n is named ``str(j).zfill(ceil(log10 n))``
(ssl_identifiability's rule); any zero padding is accepted when reading, but two files for one image
(``1.png`` and ``01.png``) are refused, as is an image of another size than the others. The original order is class 0's
images in index order, then class 1's, and so on; ``raw_latents`` are our latents, column for column.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DatasetFileError
from .latents import NUM_CLASSES, NUM_LATENTS

CAUSAL3DIDENT = "causal3dident"
THREEDIDENT = "3dident"
ORIGINAL_LATENT_SCALE = np.array([2.0] * 3 + [math.pi / 2] * 7, dtype=np.float32)
"""``latents_{c}.npy`` = ``raw_latents_{c}.npy`` * this (positions x 2, the rest x pi/2), as in the release."""

THREEDIDENT_LATENT_SCALE = np.array([3.0] * 3 + [math.pi / 2] * 7, dtype=np.float32)
"""3DIdent's ``latents.npy`` = ``raw_latents.npy`` * this (positions x 3, the rest x pi/2), as cl-ica's
``tools/3dident/generate_clevr_dataset_latents.py`` saves them for box latents; its loader reads only the raw."""

EXPECTED = ("the original layout: <root>/{split}set/images_0..6/*.png with raw_latents_0..6.npy "
            "(Causal3DIdent), or <root>/{split}set/images/*.png with raw_latents.npy (3DIdent)")


def detect_layout(folder: Path) -> str | None:
    """'causal3dident' or '3dident' if ``folder`` holds that release's images and latents, else None."""
    if (folder / "images_0").is_dir() and (folder / "raw_latents_0.npy").is_file():
        return CAUSAL3DIDENT
    if (folder / "images").is_dir() and (folder / "raw_latents.npy").is_file():
        return THREEDIDENT
    return None


def find_split(root: Path, split: str) -> Path | None:
    """The folder of ``split`` under ``root`` (``{split}set``, ``{split}``, or ``root`` itself), if any."""
    for folder in (root / f"{split}set", root / split, root):
        if folder.is_dir() and detect_layout(folder):
            return folder
    return None


@dataclass
class OriginalSplit:
    """One split folder of the original layout: latents, classes and PNG paths, in the original order."""

    folder: Path
    layout: str
    latents: np.ndarray
    classes: np.ndarray
    files: list[str]  # PNG paths relative to ``folder``
    _size: tuple[int, int] | None = field(default=None, repr=False)

    @classmethod
    def open(cls, folder: str | os.PathLike[str]) -> OriginalSplit:
        """Read and check a split folder: every latents file readable, every PNG present."""
        folder = Path(folder)
        layout = detect_layout(folder)
        if layout is None:
            raise DatasetFileError(f"{folder} is not an original-layout split folder; expected {EXPECTED}")
        parts = ([("images", "raw_latents.npy")] if layout == THREEDIDENT else
                 [(f"images_{c}", f"raw_latents_{c}.npy") for c in range(NUM_CLASSES)])
        latents, classes, files = [], [], []
        for label, (images, latents_name) in enumerate(parts):
            z = _load_latents(folder / latents_name)
            latents.append(z)
            classes.append(np.full(len(z), label, dtype=np.int64))
            files += [f"{images}/{name}" for name in scan_pngs(folder / images, len(z), latents_name)]
        return cls(folder, layout, np.concatenate(latents), np.concatenate(classes), files)

    def image_size(self) -> tuple[int, int]:
        """(height, width) of the first image, every class checked to agree (headers only, read once)."""
        from PIL import Image

        if self._size is not None:
            return self._size

        sizes = {}
        for label in np.unique(self.classes):
            path = self.folder / self.files[int(np.argmax(self.classes == label))]
            try:
                with Image.open(path) as im:
                    sizes[path] = (im.height, im.width)
            except OSError as exc:
                raise DatasetFileError(f"{path} is not a readable PNG ({exc}); re-extract the archive") from None
        if len(set(sizes.values())) > 1:
            raise DatasetFileError(f"{self.folder}: images differ in size ({sizes}); all must share one resolution")
        self._size = next(iter(sizes.values()))
        return self._size

    def read(self, indices: Iterable[int], pool: ThreadPoolExecutor | None = None,
             size: tuple[int, int] | None = None) -> np.ndarray:
        """uint8 [B, H, W, 3] images at ``indices`` (PIL decode per image, as the original loader); an image
        of another size than ``size`` (default: the first image's) raises a one-line error naming it."""
        size = size or self.image_size()
        paths = [self.folder / self.files[int(i)] for i in indices]
        images = list(pool.map(read_png, paths)) if pool else [read_png(p) for p in paths]
        for path, image in zip(paths, images):
            if image.shape[:2] != size:
                raise DatasetFileError(f"{path} is {image.shape[0]}x{image.shape[1]} px, the other images "
                                       f"{size[0]}x{size[1]}: every image of a split must share one resolution; "
                                       f"re-extract or re-export it")
        return np.stack(images) if images else np.empty((0, *size, 3), dtype=np.uint8)


def read_png(path: Path) -> np.ndarray:
    """One image as uint8 [H, W, 3] RGB."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise DatasetFileError(f"{path} cannot be decoded ({exc}); re-extract or re-export this image") from None


def _load_latents(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DatasetFileError(f"{path} is missing; an original-layout split needs raw latents for every images "
                               f"folder (re-extract the archive)")
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DatasetFileError(f"{path} is not a readable .npy file ({exc}); re-extract the archive") from None
    if z.ndim != 2 or z.shape[1] != NUM_LATENTS:
        raise DatasetFileError(f"{path} has shape {z.shape}, expected [N, {NUM_LATENTS}] raw latents")
    return z.astype(np.float32)


def png_name(j: int, n: int) -> str:
    """The release's name of image j of a folder of n: zero-padded to ceil(log10 n) digits."""
    return f"{str(j).zfill(int(math.ceil(math.log10(n))) if n > 1 else 0)}.png"


def scan_pngs(folder: Path, n: int, latents_name: str) -> list[str]:
    """File names of images 0..n-1 in ``folder`` (any zero padding); a one-line error names missing ones."""
    if not folder.is_dir():
        raise DatasetFileError(f"{folder} is missing but {latents_name} lists {n} images; re-extract the archive")
    found: dict[int, str] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            stem, dot, ext = entry.name.rpartition(".")
            if dot and ext.lower() == "png" and stem.isdigit():
                other = found.setdefault(int(stem), entry.name)
                if other != entry.name and int(stem) < n:
                    first, second = sorted((other, entry.name))
                    raise DatasetFileError(f"{folder} holds both {first} and {second} for image {int(stem)}: it is "
                                           f"ambiguous which one is meant (two exports mixed?); delete the stale "
                                           f"files or export again into an empty folder")
    missing = [j for j in range(n) if j not in found]
    if missing:
        raise DatasetFileError(f"{folder} lacks {len(missing)} of the {n} PNGs that {latents_name} lists "
                               f"(first: {png_name(missing[0], n)}); re-extract the archive or re-export")
    return [found[j] for j in range(n)]


def write_split(folder: Path, latents: np.ndarray, classes: np.ndarray, images: Iterable[np.ndarray],
                workers: int = 1) -> None:
    """Write a Causal3DIdent-layout split: PNGs per class, raw_latents_{c}.npy and latents_{c}.npy.

    ``images`` yields uint8 [B, H, W, 3] blocks in the order of ``latents``; within each class the
    samples keep that order, so converting the folder back gives them class by class.
    """
    classes = np.asarray(classes, dtype=np.int64)
    counts = np.bincount(classes, minlength=NUM_CLASSES)
    rank = np.empty(len(classes), dtype=np.int64)  # position of each sample within its class
    for c in range(NUM_CLASSES):
        members = np.flatnonzero(classes == c)
        rank[members] = np.arange(len(members))
        (folder / f"images_{c}").mkdir(parents=True, exist_ok=True)
        raw = np.asarray(latents[members], dtype=np.float32)
        np.save(folder / f"raw_latents_{c}.npy", raw)
        np.save(folder / f"latents_{c}.npy", raw * ORIGINAL_LATENT_SCALE)
    paths = (folder / f"images_{c}" / png_name(int(r), int(counts[c])) for c, r in zip(classes, rank))
    write_pngs(paths, images, workers)


def write_3dident_split(folder: Path, latents: np.ndarray, images: Iterable[np.ndarray], workers: int = 1) -> None:
    """Write a 3DIdent-layout split: ``images/<j>.png`` (zero-padded to ceil(log10 n) digits), ``raw_latents.npy``
    (float32 [n, 10], C order: faiss in cl-ica's loader takes only that) and ``latents.npy`` (scene units)."""
    raw = np.ascontiguousarray(latents, dtype=np.float32)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    np.save(folder / "raw_latents.npy", raw)
    np.save(folder / "latents.npy", raw * THREEDIDENT_LATENT_SCALE)
    n = len(raw)
    write_pngs((folder / "images" / png_name(j, n) for j in range(n)), images, workers)


def write_pngs(paths: Iterable[Path], images: Iterable[np.ndarray], workers: int = 1) -> None:
    """Save image blocks [B, H, W, 3] to ``paths`` (one path per image, in order), on ``workers`` threads."""
    from PIL import Image

    def save(item: tuple[np.ndarray, Path]) -> None:
        Image.fromarray(item[0]).save(item[1])

    path_iter = iter(paths)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for block in images:
            list(pool.map(save, zip(block, path_iter)))  # block first: zip must not drop a path
