"""Multimodal3DIdent in our HDF5 file: the sentences and both latent tables, under ``/multimodal``.

``/multimodal/text`` (UTF-8 strings [N]), ``/multimodal/latents_image/<column>`` and
``/multimodal/latents_text/<column>`` (one dataset per release column, row-aligned with ``/latents``; colour
names as UTF-8 strings), and ``/multimodal/latents_text/palette`` (0 tableau, 1 css4, 2 xkcd; -1 unknown, for
converted releases, which do not record it). The group's ``provenance`` attribute (JSON) says where the tables
come from: drawn from the file's seed (noise stream, palettes file) or converted from a release folder.

``/multimodal/pairs/<name>/`` holds the sentences (``text``) and text table (``latents_text/<column>``) of a
pair's partner: a text-only pair (``phrasing``, ``palette``: the same image said another way, drawn from the
stream ``multimodal/pairs/<name>``) or an image pair's view (``/pairs/<name>``, stored where its transformation
can change what the sentence says: shape, position or colour). Attributes ``kind`` (``text`` or ``image``) and
``provenance`` (JSON).
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
PAIRS = "pairs"
TEXT_TABLE = (*TEXT_COLUMNS, "palette")
SAID_LATENTS = frozenset({"pos_x", "pos_y", "hue_obj"})
"""Raw latents a sentence reads (besides the class, which no transformation changes)."""


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


def write_drawn(f: h5py.File, config: Mapping[str, Any], latents: np.ndarray, classes: np.ndarray, seed: int,
                indices: np.ndarray) -> None:
    """``/multimodal`` of drawn latents: the tables and sentences, and the text-only pairs ``config`` names."""
    image, text, provenance = drawn_tables(latents, classes, seed, indices)
    write_tables(f, image, text, provenance)
    for change, (pair_text, pair_provenance) in drawn_text_pairs(image, text, seed, indices, config).items():
        write_pair_text(f, change, pair_text, pair_provenance, "text")


def text_pair_names(config: Mapping[str, Any]) -> list[str]:
    """The text-only pairs a config asks for (``text_pairs``: ``phrasing``, ``palette``)."""
    return [str(c) for c in config.get("text_pairs", [])]


def drawn_text_pairs(image: Mapping[str, Any], text: Mapping[str, Any], seed: int, indices: np.ndarray,
                     config: Mapping[str, Any]) -> dict[str, tuple[dict[str, np.ndarray], dict[str, Any]]]:
    """Text table and provenance of each text-only pair partner ``config`` names, as the dataset draws them."""
    out = {}
    for change in text_pair_names(config):
        provenance = {"text": f"text-only counterfactual of the anchor's text ({change} changed, all else kept), "
                              f"drawn by causal3dident.multimodal_text.counterfactual_text from the file's seed, "
                              f"noise stream 'multimodal/pairs/{change}'", "palettes": mt.palette_source()}
        out[change] = (mt.counterfactual_text(image, text, seed, indices, change), provenance)
    return out


def text_tables(config: Mapping[str, Any]) -> int:
    """How many sentence tables a file of ``config`` holds under ``/multimodal`` (0: its text is not drawn): the
    anchors', each text-only pair's and each image pair's whose views' text can differ from the anchors'."""
    if not is_multimodal(config) or "preset" not in config:
        return 0
    return 1 + len(text_pair_names(config)) + sum(says_changed(config, lt) for lt in config.get("pairs", []))


def text_bytes(n: int, tables: int) -> int:
    """Bytes at most of ``/multimodal`` with ``tables`` sentence tables of ``n`` rows (0 when there are none):
    per row, the image table's 11 float64 columns, and per table its 7 eight-byte columns and two UTF-8 strings
    (colour name, sentence) as HDF5 stores them (a 16-byte reference and a 16-byte heap object header each, the
    text padded to 8 bytes), the longest that can occur; plus each table's datasets' headers."""
    if tables == 0:
        return 0
    longest_name = max(len(c.encode()) for c in mt.color_names())
    longest = max(len(p.format(SHAPE="", YPOS="", XPOS="", COLOR="")) for p in mt.PHRASES) + longest_name + \
        max(map(len, mt.SHAPES)) + max(map(len, mt.XPOS)) + max(map(len, mt.YPOS))
    string = lambda size: 32 + -(-size // 8) * 8  # noqa: E731
    row = 7 * 8 + string(longest_name) + string(longest)
    return n * (len(IMAGE_COLUMNS) * 8 + tables * row) + (tables + 1) * 16 * 1024


def says_changed(config: Mapping[str, Any], transformation: Mapping[str, Any]) -> bool:
    """Whether an image pair's transformation can change the sentence (a position or the object hue; with the
    interventional mode, also through the latents it redraws)."""
    changed = set(transformation["latents"])
    if transformation.get("mode") == "interventional":
        from .generate import scm_from_config  # late: generate imports the store

        changed |= set(scm_from_config(config).descendants(tuple(transformation["latents"])))
    return bool(changed & SAID_LATENTS)


def view_text(z_tilde: np.ndarray, classes: np.ndarray, anchor_text: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Text table of an image pair's views ``z_tilde``: shape, position and colour as the view shows them, named
    in the anchor's palette and said in the anchor's phrasing (so only what the image changed differs)."""
    image = image_latents(z_tilde, classes)
    names = mt.nearest_color_names(image["object_color"], anchor_text["palette"])
    return {"object_shape": image["object_shape"], "object_xpos": image["object_xpos"],
            "object_ypos": image["object_ypos"], "object_zpos": image["object_zpos"], "object_color_name": names,
            "object_color_index": mt.color_index(names),
            "text_phrasing": np.asarray(anchor_text["text_phrasing"], dtype=np.int64),
            "palette": np.asarray(anchor_text["palette"], dtype=np.int64)}


def write_view_text(f: h5py.File, name: str, z_tilde: np.ndarray, transformation: Mapping[str, Any]) -> None:
    """``/multimodal/pairs/<name>``: the text of image pair ``name``'s views, if it can differ from the anchor's
    (a file whose text was drawn; its ``/classes`` and ``/multimodal`` are written)."""
    config = json.loads(_str(f.attrs["config"]))
    if GROUP not in f or "preset" not in config or not says_changed(config, transformation):
        return
    _, anchor, _ = read_tables(f)
    provenance = {"text": f"the text of the views of /pairs/{name}: shape, position and colour of the view's "
                          f"latents, named in the anchor's palette and said in the anchor's phrasing",
                  "palettes": mt.palette_source()}
    write_pair_text(f, name, view_text(z_tilde, f["classes"][...], anchor), provenance, "image")


def write_pair_text(f: h5py.File, name: str, text: Mapping[str, Any], provenance: Mapping[str, Any],
                    kind: str, sentences: list[str] | None = None) -> None:
    """Write ``/multimodal/pairs/<name>``: a partner's sentences (made from ``text`` unless given, e.g. as an
    export wrote them) and text table."""
    group = f[GROUP].require_group(PAIRS).create_group(name)
    group.attrs["kind"] = kind
    group.attrs["provenance"] = json.dumps(dict(provenance), sort_keys=True)
    sub = group.create_group("latents_text")
    for column in TEXT_TABLE:
        sub.create_dataset(column, data=_column(column, text[column]))
    lines = mt.sentences(text) if sentences is None else list(sentences)
    group.create_dataset("text", data=np.array(lines, dtype=object), dtype=STRING)


def pair_text_names(f: h5py.File) -> list[str]:
    """Names of the pairs whose partner text ``/multimodal/pairs`` holds."""
    pairs = f.get(f"{GROUP}/{PAIRS}")
    return sorted(pairs) if isinstance(pairs, h5py.Group) else []


def read_pair_text(f: h5py.File, name: str,
                   rows: slice | np.ndarray = slice(None)) -> tuple[dict[str, np.ndarray], list[str]]:
    """Text table and sentences of pair ``name``'s partners (``rows`` of them)."""
    if name not in pair_text_names(f):
        raise DatasetFileError(f"{f.filename} holds no partner text of pair {name!r} (it has: "
                               f"{', '.join(pair_text_names(f)) or 'none'}); sample it with --pairs {name}")
    group = f[f"{GROUP}/{PAIRS}/{name}"]
    text = {c: group["latents_text"][c][rows] for c in TEXT_TABLE}
    text["object_color_name"] = np.array([_str(v) for v in text["object_color_name"]], dtype=object)
    return text, [_str(v) for v in group["text"][rows]]


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
    text = {c: group["latents_text"][c][rows] for c in TEXT_TABLE}
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
    pairs = group.get(PAIRS)
    if pairs is not None and not isinstance(pairs, h5py.Group):
        return found + ["/multimodal/pairs is a dataset, not a group of pairs"]
    for name in pair_text_names(f):
        for path in ("text", *(f"latents_text/{c}" for c in TEXT_TABLE)):
            ds = group.get(f"{PAIRS}/{name}/{path}")
            if not isinstance(ds, h5py.Dataset) or ds.shape != (n,):
                found.append(f"/multimodal/pairs/{name}/{path} must be a [{n}] dataset")
    return found


def regenerate_problems(f: h5py.File, expected: Mapping[str, Any], seed: int) -> list[str]:
    """Whether ``/multimodal`` is what the recorded config and seed draw (``expected``: ``latents_for_config``'s)."""
    if GROUP not in f or not is_multimodal(json.loads(_str(f.attrs["config"]))):
        return []
    config = json.loads(_str(f.attrs["config"]))
    image, text, _ = drawn_tables(expected["latents"], expected["classes"], seed, expected["indices"])
    stored_image, stored_text, sentences = read_tables(f)
    same = all(np.array_equal(image[c], stored_image[c]) for c in IMAGE_COLUMNS) and _same_text(text, stored_text,
                                                                                                 sentences)
    found = [] if same else ["/multimodal (text or its latent tables) differs from what the recorded config and seed "
                             "generate"]
    partners = {change: table for change, (table, _) in
                drawn_text_pairs(image, text, seed, expected["indices"], config).items()}
    stored = pair_text_names(f)
    for lt in config.get("pairs", []):  # views' text: checked where stored (files of earlier versions have none)
        if lt["name"] in expected["pairs"] and lt["name"] in stored and says_changed(config, lt):
            partners[lt["name"]] = view_text(expected["pairs"][lt["name"]], expected["classes"], text)
    for name in sorted(set(partners) | set(stored)):
        if name not in partners or name not in stored or \
                not _same_text(partners[name], *read_pair_text(f, name)):
            found.append(f"/multimodal/pairs/{name} (a pair's partner text) differs from what the recorded config "
                         f"and seed generate")
    return found


def _same_text(expected: Mapping[str, Any], stored: Mapping[str, Any], sentences: list[str]) -> bool:
    return all(np.array_equal(expected[c], stored[c]) for c in TEXT_TABLE) and sentences == mt.sentences(expected)
