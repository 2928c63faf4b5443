"""The ten Causal3DIdent latents, the class, and their mapping to scene units.

Column order, names and class order follow the original release (von Kügelgen et al., 2021):
raw latents live in [-1, 1]; ``to_scene_units`` is the one place that turns them into the
positions, angles and hue fractions the renderer uses.
"""

from __future__ import annotations

import math

import numpy as np

LATENT_NAMES: tuple[str, ...] = (
    "pos_x",
    "pos_y",
    "pos_z",
    "rot_alpha",
    "rot_beta",
    "rot_gamma",
    "spot_pos",
    "hue_obj",
    "hue_spot",
    "hue_bg",
)
"""Raw latent columns, in the original release's order."""

CLASS_NAMES: tuple[str, ...] = ("teapot", "hare", "dragon", "cow", "armadillo", "horse", "head")
"""Object classes: index = class label."""

NUM_LATENTS = len(LATENT_NAMES)
NUM_CLASSES = len(CLASS_NAMES)
LATENT_RANGE = (-1.0, 1.0)

LATENT_GROUPS: dict[str, tuple[str, ...]] = {
    "positions": ("pos_x", "pos_y", "pos_z", "spot_pos"),
    "rotations": ("rot_alpha", "rot_beta", "rot_gamma"),
    "hues": ("hue_obj", "hue_spot", "hue_bg"),
}
"""Named latent subsets used by the paper's latent transformations (LT)."""

# Raw -> scene units (spec: positions x 3, rotations x pi/2, spotlight angle x pi/2, hue / 4).
POSITION_SCALE = 3.0
ROTATION_SCALE = math.pi / 2
SPOT_ANGLE_SCALE = math.pi / 2
HUE_SCALE = 0.25

SCENE_UNITS: dict[str, str] = {
    "pos_x": "scene units (raw x 3)",
    "pos_y": "scene units (raw x 3)",
    "pos_z": "scene units (raw x 3)",
    "rot_alpha": "radians (raw x pi/2), XYZ Euler",
    "rot_beta": "radians (raw x pi/2), XYZ Euler",
    "rot_gamma": "radians (raw x pi/2), XYZ Euler",
    "spot_pos": "radians on the spotlight's half circle (raw x pi/2)",
    "hue_obj": "hue fraction of the colour circle in [0, 1) (raw / 4, wrapped)",
    "hue_spot": "hue fraction of the colour circle in [0, 1) (raw / 4, wrapped)",
    "hue_bg": "hue fraction of the colour circle in [0, 1) (raw / 4, wrapped)",
}


def latent_index(name: str) -> int:
    """Column index of a latent, with an error that lists the valid names."""
    try:
        return LATENT_NAMES.index(name)
    except ValueError:
        raise KeyError(f"unknown latent {name!r}; expected one of {', '.join(LATENT_NAMES)}") from None


def hue_fraction(raw: np.ndarray | float) -> np.ndarray:
    """Raw hue in [-1, 1] -> hue fraction in [0, 1).

    The original passed raw/4 (possibly negative) to colorsys, which returns out-of-range RGB
    for negative hues; the hue circle is periodic, so we wrap instead.
    """
    return np.mod(np.asarray(raw, dtype=np.float64) * HUE_SCALE, 1.0)


def to_scene_units(latents: np.ndarray) -> np.ndarray:
    """Raw latents [..., 10] -> scene units [..., 10], column meanings as in ``SCENE_UNITS``."""
    raw = np.asarray(latents, dtype=np.float64)
    if raw.shape[-1] != NUM_LATENTS:
        raise ValueError(f"expected latents with {NUM_LATENTS} columns, got shape {raw.shape}")
    out = np.empty_like(raw)
    out[..., 0:3] = raw[..., 0:3] * POSITION_SCALE
    out[..., 3:6] = raw[..., 3:6] * ROTATION_SCALE
    out[..., 6] = raw[..., 6] * SPOT_ANGLE_SCALE
    out[..., 7:10] = hue_fraction(raw[..., 7:10])
    return out


def citris_scene_units(latents: np.ndarray) -> np.ndarray:
    """CITRIS's latents [..., 10] (Temporal Causal3DIdent: positions in scene units, angles and hues in radians)
    -> scene units, as their ``generate_causal3dident_images.py`` reads them: positions and angles as they are
    (gamma too), the spotlight on its full circle at angle ``spot_pos``, hue fractions = hue / 2 pi."""
    values = np.asarray(latents, dtype=np.float64)
    if values.shape[-1] != NUM_LATENTS:
        raise ValueError(f"expected latents with {NUM_LATENTS} columns, got shape {values.shape}")
    out = values.copy()
    out[..., 7:10] = np.mod(values[..., 7:10] / (2 * math.pi), 1.0)
    return out


SCENE_MAPPINGS = {"causal3dident": to_scene_units, "citris": citris_scene_units}
"""How the renderer reads a row of latents: ``causal3dident``, raw latents in [-1, 1] (``to_scene_units``);
``citris``, CITRIS's units (``citris_scene_units``). A temporal preset names its own (``scene``)."""
