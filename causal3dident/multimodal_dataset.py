"""``Multimodal3DIdent``: image/text pairs as a torchvision-style dataset, from our HDF5 or the release layout.

``root``: a dataset file; a folder with ``<split>.h5``; a release folder ``<root>/<split>/`` (Zenodo's
``m3di/``) or a split folder itself. Items are ``(image, text, target)``: the image (PIL, or a uint8
``[3, H, W]`` tensor), the sentence (a string, or what ``text_transform`` makes of it: token ids or one-hot
through ``causal3dident.multimodal_vocab``) and the target(s) ``target_type`` names (``TARGET_TYPES``). Tables
and text are read at construction; images on access, through an h5py handle opened lazily in each process, so
multi-worker DataLoaders are safe. Readers never write (no ``vocab.json``, unlike the original loader).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torchvision.datasets import VisionDataset

from . import store
from .errors import ConfigError, DatasetFileError
from . import multimodal_text as mt
from .multimodal import IMAGE_COLUMNS, raw_latents
from .multimodal_layout import ReleaseSplit, is_release_folder, read_pair_folders
from .multimodal_store import pair_text_names, read_pair_text, read_tables

TEXT_FACTORS: tuple[str, ...] = ("object_shape", "object_xpos", "object_ypos", "object_zpos", "object_color_index",
                                 "text_phrasing")
"""The columns of ``z_text`` (the original datasets.py's text factors; names as strings are in ``color_name``)."""
TARGET_TYPES: dict[str, str] = {
    "z_image": f"image latents in the release's units, float64 [11]: {', '.join(IMAGE_COLUMNS)}",
    "z_text": f"text latents, int64 [6]: {', '.join(TEXT_FACTORS)}",
    "latents": "our raw latents, float32 [10] in [-1, 1] (causal3dident.latents.LATENT_NAMES)",
    "class": "object shape 0..6 (int)",
    "color_name": "the colour name of the sentence (str)",
    "index": "position of the sample in this dataset (int)",
}
IMAGE_FORMATS = ("pil", "tensor")


class Multimodal3DIdent(VisionDataset):
    """Multimodal3DIdent image/text pairs with their latents.

    Args:
        root: a dataset file, a folder with ``<split>.h5``, or a release folder (``<root>/<split>/`` or the split).
        split: ``train``, ``val``, ``test``, ... (the file's or folder's name).
        transform: applied to the image.
        text_transform: applied to the sentence, e.g. ``multimodal_vocab.TokenIds()`` or ``OneHot()``.
        target_type: one of ``TARGET_TYPES`` or a sequence of them (then the target is a tuple).
        image_format: ``"pil"`` or ``"tensor"`` (uint8 [3, H, W]).
        text_pair: ``"phrasing"`` or ``"palette"``: items are ``(image, text, text2, target)`` with ``text2`` the
            text-only counterfactual (``multimodal_text.counterfactual_text``, drawn from the file's seed), read
            from the file where ``c3di latents/render --pairs phrasing`` stored it (the same sentences), or from a
            release folder's ``pairs/<change>/`` (``c3di export``); a release without one draws them from seed 0.
    """

    def __init__(self, root: str | os.PathLike[str], split: str = "train", transform: Callable | None = None,
                 text_transform: Callable | None = None,
                 target_type: str | Sequence[str] = ("z_image", "z_text"), image_format: str = "pil",
                 text_pair: str | None = None) -> None:
        super().__init__(str(root), transform=transform)
        self.split, self.text_transform, self.image_format = split, text_transform, image_format
        self.target_type = [target_type] if isinstance(target_type, str) else list(target_type)
        unknown = [t for t in self.target_type if t not in TARGET_TYPES]
        if unknown or not self.target_type:
            raise ConfigError(f"target_type {unknown or self.target_type}: choose from {', '.join(TARGET_TYPES)}")
        if image_format not in IMAGE_FORMATS:
            raise ConfigError(f"image_format must be one of {', '.join(IMAGE_FORMATS)}, got {image_format!r}")
        self._path, self._release = self._locate(Path(root), split)
        stored_pair: list[str] | None = None
        if self._path is not None:
            with store.open_dataset(self._path) as f:
                image, text, self.sentences = read_tables(f)
                if text_pair in mt.PAIR_CHANGES and text_pair in pair_text_names(f):  # c3di latents --pairs
                    stored_pair = read_pair_text(f, text_pair)[1]
                self.latents = f["latents"][...]
                self._seed, self._indices = int(f.attrs["seed"]), f["index"][...]
                if "images" not in f:
                    raise DatasetFileError(f"{self._path} has no images; render it first (c3di render)")
        else:
            assert self._release is not None
            image, text, self.sentences = self._release.image, self._release.text, self._release.sentences
            self.latents = raw_latents(image)[0]
            self._seed, self._indices = 0, np.arange(len(self.sentences))
            if text_pair in mt.PAIR_CHANGES:  # c3di export wrote pairs/<change>/ beside the split
                exported = read_pair_folders(self._release.folder, len(self.sentences)).get(text_pair)
                stored_pair = exported[1] if exported is not None else None
        self.z_image = np.column_stack([np.asarray(image[c], dtype=np.float64) for c in IMAGE_COLUMNS])
        self.z_text = np.column_stack([np.asarray(text[c]).astype(np.int64) for c in TEXT_FACTORS])
        self.color_names = [str(c) for c in text["object_color_name"]]
        self.text_pair, self.pair_sentences = text_pair, None
        if text_pair is not None:
            if text_pair not in mt.PAIR_CHANGES:
                raise ConfigError(f"text_pair {text_pair!r}: choose {' or '.join(mt.PAIR_CHANGES)}")
            self.pair_sentences = stored_pair if stored_pair is not None else \
                mt.sentences(mt.counterfactual_text(image, text, self._seed, self._indices, text_pair))
        self._h5: h5py.File | None = None
        self._pid: int | None = None

    @staticmethod
    def _locate(root: Path, split: str) -> tuple[Path | None, ReleaseSplit | None]:
        if root.is_file():
            return root, None
        if (root / f"{split}.h5").is_file():
            return root / f"{split}.h5", None
        for folder in (root / split, root):
            if folder.is_dir() and is_release_folder(folder):
                return None, ReleaseSplit.open(folder)
        raise DatasetFileError(f"{root}: no {split}.h5 and no Multimodal3DIdent release split ({root / split} with "
                               f"images/, text/text_raw.txt, latents_image.csv, latents_text.csv); pass a dataset "
                               f"file or the release folder")

    def __len__(self) -> int:
        return len(self.sentences)

    def _pixels(self, index: int) -> np.ndarray:
        if self._release is not None:
            return self._release.read([index])[0]
        if self._h5 is None or self._pid != os.getpid():  # one handle per process (forked workers open their own)
            self._h5, self._pid = store.open_dataset(self._path, check_structure=False), os.getpid()
        return self._h5["images"][index]

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        index = int(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index %= len(self)
        pixels = self._pixels(index)
        if self.image_format == "tensor":
            image: Any = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))
        else:
            from PIL import Image

            image = Image.fromarray(pixels)
        if self.transform is not None:
            image = self.transform(image)
        text: Any = self.sentences[index]
        if self.text_transform is not None:
            text = self.text_transform(text)
        targets = [self._target(t, index) for t in self.target_type]
        target = targets[0] if len(targets) == 1 else tuple(targets)
        if self.pair_sentences is None:
            return image, text, target
        text2: Any = self.pair_sentences[index]
        if self.text_transform is not None:
            text2 = self.text_transform(text2)
        return image, text, text2, target

    def _target(self, kind: str, index: int) -> Any:
        if kind == "z_image":
            return self.z_image[index]
        if kind == "z_text":
            return self.z_text[index]
        if kind == "latents":
            return self.latents[index]
        if kind == "class":
            return int(self.z_image[index, 0])
        if kind == "color_name":
            return self.color_names[index]
        return index

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_h5"], state["_pid"] = None, None  # h5py handles do not pickle (spawn workers open their own)
        return state

    def extra_repr(self) -> str:
        source = str(self._path) if self._path is not None else f"release folder {self._release.folder}"
        return f"Split: {self.split}\nSource: {source}\nTarget type: {self.target_type}"
