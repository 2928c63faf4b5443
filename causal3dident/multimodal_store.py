"""Multimodal3DIdent in our HDF5 file: the sentences and both latent tables, under ``/multimodal``.

``/multimodal/text`` (UTF-8 strings [N]), ``/multimodal/latents_image/<column>`` and
``/multimodal/latents_text/<column>`` (one dataset per release column, row-aligned with ``/latents``; colour
names as UTF-8 strings), and ``/multimodal/latents_text/palette`` (0 tableau, 1 css4, 2 xkcd; -1 unknown, for
converted releases, which do not record it). The group's ``provenance`` attribute (JSON) says where the tables
come from: drawn from the file's seed (noise stream, palettes file) or converted from a release folder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

from . import multimodal_text as mt
from .errors import DatasetFileError
from .multimodal import IMAGE_COLUMNS, INTEGER_COLUMNS, TEXT_COLUMNS, image_latents

GROUP = "multimodal"
STRING = h5py.string_dtype("utf-8")
STRING_COLUMNS = frozenset({"object_color_name"})


def is_multimodal(config: Mapping[str, Any]) -> bool:
    """Whether a dataset config is Multimodal3DIdent's (its preset's scene, or a converted release)."""
    return config.get("preset", {}).get("scene") == "multimodal3dident" or config.get("scene") == "multimodal3dident"


def drawn_tables(latents: np.ndarray, classes: np.ndarray, seed: int,
                 indices: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """Image table, text table and provenance of samples ``indices`` drawn from ``seed``."""
    image = image_latents(latents, classes)
    text = mt.text_latents(image, seed, indices=indices)
    provenance = {"text": f"drawn by causal3dident.multimodal_text from the file's seed, noise stream "
                          f"{mt.TEXT_STREAM!r} (column 0: palette, 1: phrasing)",
                  "palettes": mt.palette_source()}
    return image, text, provenance


def write_tables(f: h5py.File, image: Mapping[str, Any], text: Mapping[str, Any],
                 provenance: Mapping[str, Any], sentences: list[str] | None = None) -> None:
    """Write ``/multimodal`` (sentences made from ``text`` unless given, e.g. as a release wrote them)."""
    group = f.create_group(GROUP)
    group.attrs["image_columns"] = list(IMAGE_COLUMNS)
    group.attrs["text_columns"] = list(TEXT_COLUMNS)
    group.attrs["provenance"] = json.dumps(dict(provenance), sort_keys=True)
    for name, table, columns in (("latents_image", image, IMAGE_COLUMNS),
                                 ("latents_text", text, (*TEXT_COLUMNS, "palette"))):
        sub = group.create_group(name)
        for column in columns:
            sub.create_dataset(column, data=_column(column, table[column]))
    lines = mt.sentences(text) if sentences is None else list(sentences)
    group.create_dataset("text", data=np.array(lines, dtype=object), dtype=STRING)


def _column(name: str, values: Any) -> np.ndarray:
    if name in STRING_COLUMNS:
        return np.array([str(v) for v in np.asarray(values).reshape(-1)], dtype=object).astype(STRING)
    if name in INTEGER_COLUMNS or name == "palette":
        return np.asarray(values, dtype=np.int64)
    return np.asarray(values, dtype=np.float64)


def read_tables(f: h5py.File, rows: slice | np.ndarray = slice(None)) -> tuple[dict[str, np.ndarray],
                                                                                dict[str, np.ndarray], list[str]]:
    """Image table, text table (with ``palette``) and sentences of a file (``rows`` of them)."""
    group = f.get(GROUP)
    if not isinstance(group, h5py.Group):
        raise DatasetFileError(f"{f.filename} holds no Multimodal3DIdent text (/multimodal); sample it with "
                               f"--preset multimodal3dident, or convert a Multimodal3DIdent release")
    image = {c: group["latents_image"][c][rows] for c in IMAGE_COLUMNS}
    text = {c: group["latents_text"][c][rows] for c in (*TEXT_COLUMNS, "palette")}
    text["object_color_name"] = np.array([_str(v) for v in text["object_color_name"]], dtype=object)
    return image, text, [_str(v) for v in group["text"][rows]]


def _str(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def problems(f: h5py.File) -> list[str]:
    """What ``/multimodal`` lacks or holds in the wrong shape (empty when absent or sound)."""
    group = f.get(GROUP)
    if group is None:
        return []
    if not isinstance(group, h5py.Group):
        return ["/multimodal is a dataset, not a group"]
    n = int(f.attrs["num_samples"])
    found = []
    for name, columns in (("latents_image", IMAGE_COLUMNS), ("latents_text", (*TEXT_COLUMNS, "palette"))):
        for column in columns:
            ds = group.get(f"{name}/{column}")
            if not isinstance(ds, h5py.Dataset) or ds.shape != (n,):
                found.append(f"/multimodal/{name}/{column} must be a [{n}] dataset")
    if not isinstance(group.get("text"), h5py.Dataset) or group["text"].shape != (n,):
        found.append(f"/multimodal/text must be [{n}] strings")
    return found


def regenerate_problems(f: h5py.File, expected: Mapping[str, Any], seed: int) -> list[str]:
    """Whether ``/multimodal`` is what the recorded config and seed draw (``expected``: ``latents_for_config``'s)."""
    if GROUP not in f or not is_multimodal(json.loads(_str(f.attrs["config"]))):
        return []
    image, text, _ = drawn_tables(expected["latents"], expected["classes"], seed, expected["indices"])
    stored_image, stored_text, sentences = read_tables(f)
    same = all(np.array_equal(image[c], stored_image[c]) for c in IMAGE_COLUMNS) and \
        all(np.array_equal(text[c], stored_text[c]) for c in (*TEXT_COLUMNS, "palette")) and \
        sentences == mt.sentences(text)
    return [] if same else ["/multimodal (text or its latent tables) differs from what the recorded config and seed "
                            "generate"]
