"""Multimodal3DIdent's two latent tables (the release's CSV columns) and how they map to our raw latents.

The ``multimodal3dident`` preset samples our ten raw latents in [-1, 1] and the class; the release writes
``latents_image.csv`` in its own units: grid positions {0, 1, 2} (= raw + 1), z in scene units, and the
rotations, spotlight position and the three hues in [0, 1] (= (raw + 1) / 2). Both maps are exact in float64
for float32 raw values, so our files export to the release's tables and convert back bit for bit.
``latents_text.csv`` comes from ``causal3dident.multimodal_text``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import DatasetFileError
from .latents import LATENT_NAMES, NUM_CLASSES, POSITION_SCALE, to_scene_units

IMAGE_COLUMNS: tuple[str, ...] = (
    "object_shape", "object_xpos", "object_ypos", "object_zpos", "object_alpharot", "object_betarot",
    "object_gammarot", "object_color", "spotlight_pos", "spotlight_color", "background_color")
"""``latents_image.csv``'s columns, in the release's order."""
TEXT_COLUMNS: tuple[str, ...] = (
    "object_shape", "object_xpos", "object_ypos", "object_zpos", "object_color_name", "object_color_index",
    "text_phrasing")
"""``latents_text.csv``'s columns, in the release's order."""
INTEGER_COLUMNS = frozenset({"object_shape", "object_xpos", "object_ypos", "object_color_index", "text_phrasing"})
"""Columns the release writes as integers (the rest of the numbers as floats)."""

UNIT_INTERVAL: dict[str, str] = {
    "object_alpharot": "rot_alpha", "object_betarot": "rot_beta", "object_gammarot": "rot_gamma",
    "object_color": "hue_obj", "spotlight_pos": "spot_pos", "spotlight_color": "hue_spot",
    "background_color": "hue_bg"}
"""Release columns in [0, 1] and the raw latent each is ``(raw + 1) / 2`` of."""
GRID: dict[str, str] = {"object_xpos": "pos_x", "object_ypos": "pos_y"}
"""Grid columns {0, 1, 2} and the raw latent each is ``raw + 1`` of (x 3 in the scene: {-3, 0, 3})."""


def image_latents(latents: np.ndarray, classes: np.ndarray) -> dict[str, np.ndarray]:
    """The release's image-latents table of raw latents [N, 10] and classes [N]."""
    raw = np.asarray(latents, dtype=np.float64)
    col = {name: raw[:, k] for k, name in enumerate(LATENT_NAMES)}
    grid = {c: np.rint(col[r] + 1).astype(np.int64) for c, r in GRID.items()}
    if any(not np.array_equal(grid[c], col[r] + 1) or ((grid[c] < 0) | (grid[c] > 2)).any() for c, r in GRID.items()):
        raise DatasetFileError("these latents are not on Multimodal3DIdent's 3 x 3 grid (pos_x and pos_y in "
                               "{-1, 0, 1}); keep both discrete on it (intervene with e.g. pos_x=0, not a range)")
    return {"object_shape": np.asarray(classes, dtype=np.int64), **grid,
            "object_zpos": col["pos_z"] * POSITION_SCALE,
            **{c: (col[r] + 1.0) / 2.0 for c, r in UNIT_INTERVAL.items()}}


def raw_latents(table: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Raw latents float32 [N, 10] and classes int64 [N] of an image-latents table (inverse of ``image_latents``;
    exact for values it wrote, rounded to float32 otherwise)."""
    missing = [c for c in IMAGE_COLUMNS if c not in table]
    if missing:
        raise DatasetFileError(f"the image latents lack {', '.join(missing)}; expected the columns of "
                               f"latents_image.csv: {', '.join(IMAGE_COLUMNS)}")
    n = len(np.asarray(table["object_shape"]))
    out = np.empty((n, len(LATENT_NAMES)), dtype=np.float64)
    for c, r in GRID.items():
        out[:, LATENT_NAMES.index(r)] = np.asarray(table[c], dtype=np.float64) - 1
    out[:, LATENT_NAMES.index("pos_z")] = np.asarray(table["object_zpos"], dtype=np.float64) / POSITION_SCALE
    for c, r in UNIT_INTERVAL.items():
        out[:, LATENT_NAMES.index(r)] = np.asarray(table[c], dtype=np.float64) * 2.0 - 1.0
    classes = np.asarray(table["object_shape"], dtype=np.int64)
    if ((classes < 0) | (classes >= NUM_CLASSES)).any():
        raise DatasetFileError(f"object_shape outside 0..{NUM_CLASSES - 1}")
    return out.astype(np.float32), classes


def multimodal_scene_units(latents: np.ndarray) -> np.ndarray:
    """Raw latents [..., 10] -> the renderer's scene units in Multimodal3DIdent's scene.

    As generate_images.py: the object at Blender (ypos * 3 - 3, xpos * 3 - 3): columns 0 and 1 (Blender x and y)
    are ``pos_y`` and ``pos_x`` x 3, so x is left/right and y top/bottom in the image, as the text says; the object
    hue is ``object_color`` = (raw + 1) / 2 (HSV(h, 1, 1); 1 wraps to 0, the same red). Rotations, spotlight angle
    and the spotlight and background hues (``(u - 0.5) / 2`` = raw / 4) map as in Causal3DIdent's scene."""
    raw = np.asarray(latents, dtype=np.float64)
    out = to_scene_units(raw)
    out[..., 0] = raw[..., LATENT_NAMES.index("pos_y")] * POSITION_SCALE
    out[..., 1] = raw[..., LATENT_NAMES.index("pos_x")] * POSITION_SCALE
    out[..., 7] = np.mod((raw[..., LATENT_NAMES.index("hue_obj")] + 1.0) / 2.0, 1.0)
    return out


def scene_units(latents: np.ndarray, scene: str = "causal3dident") -> np.ndarray:
    """Raw latents -> scene units for the scene ``scene`` (``causal3dident`` or ``multimodal3dident``)."""
    return multimodal_scene_units(latents) if scene == "multimodal3dident" else to_scene_units(latents)
