"""Synthetic stand-in images for tests and the smoke benchmark: no Blender needed.

``draw_images`` paints a deterministic 2-D caricature of a Causal3DIdent scene from the latents
(background hue, a spotlight pool on its half circle, a class-specific shape at the object's
position, rotated and coloured by the latents), so loaders and training can be tested on real
files whose pixels are a known function of the latents.
"""

from __future__ import annotations

import colorsys
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .checksums import seal
from .generate import build_config, transformations_from_config, write_latents_file
from .latents import hue_fraction
from .store import create_image_dataset, open_dataset

_SHAPE_VERTICES = (0, 3, 4, 5, 6, 8, 12)  # per class: 0 = disc, else a regular polygon


def _hsv(h: np.ndarray, s: float) -> np.ndarray:
    return np.array([colorsys.hsv_to_rgb(float(x), s, 1.0) for x in np.ravel(h)]).reshape(*np.shape(h), 3)


def draw_images(latents: np.ndarray, classes: np.ndarray, resolution: int = 32) -> np.ndarray:
    """uint8 [N, resolution, resolution, 3] images, a pure function of (latents, classes)."""
    latents = np.asarray(latents, dtype=np.float64)
    n, r = len(latents), resolution
    yy, xx = np.meshgrid(np.linspace(-1, 1, r), np.linspace(-1, 1, r), indexing="ij")
    bg = _hsv(hue_fraction(latents[:, 9]), 0.6) * 0.55
    spot = _hsv(hue_fraction(latents[:, 8]), 0.8)
    obj = _hsv(hue_fraction(latents[:, 7]), 1.0)
    images = np.empty((n, r, r, 3), dtype=np.float64)
    for i in range(n):
        z = latents[i]
        t = z[6] * np.pi / 2
        pool = ((xx - 0.6 * np.sin(t)) ** 2 + (yy - 0.6 * np.cos(t)) ** 2) < 0.35 ** 2
        img = np.broadcast_to(bg[i], (r, r, 3)).copy()
        img[pool] = 0.5 * bg[i] + 0.5 * spot[i]
        cx, cy, size = 0.6 * z[0], 0.6 * z[1], 0.28 + 0.08 * z[2]
        angle = z[3] * np.pi / 2 + z[4] * np.pi / 4 + z[5] * np.pi / 8
        dx, dy = xx - cx, yy - cy
        rx, ry = np.cos(angle) * dx + np.sin(angle) * dy, -np.sin(angle) * dx + np.cos(angle) * dy
        k = _SHAPE_VERTICES[int(classes[i])]
        if k == 0:
            mask = (rx / 1.0) ** 2 + (ry / 0.6) ** 2 < size ** 2
        else:
            theta = np.arctan2(ry, rx)
            sector = np.pi / k
            radius = size * np.cos(sector) / np.cos((theta % (2 * sector)) - sector)
            mask = np.hypot(rx, ry) < radius
        img[mask] = obj[i] * (0.75 + 0.25 * np.clip(ry[mask] / max(size, 1e-6), -1, 1))[:, None]
        images[i] = img
    return np.clip(np.round(images * 255), 0, 255).astype(np.uint8)


def make_synthetic_dataset(path: str | os.PathLike[str], n: int = 64, resolution: int = 32, *,
                           pairs: Sequence[str] = ("hues",), seed: int = 0, preset: str = "causal3dident",
                           overwrite: bool = False, balanced_classes: bool = False) -> Path:
    """A complete dataset file with ``draw_images`` pixels for anchors and every pair's views."""
    config = build_config(preset, n, pairs=list(pairs), balanced_classes=balanced_classes)
    config["images"] = {"source": "causal3dident.testing.draw_images", "resolution": resolution}
    path = write_latents_file(path, config, seed, overwrite=overwrite)
    with open_dataset(path, "r+") as f:
        z, c = f["latents"][...], f["classes"][...]
        create_image_dataset(f, "images", n, resolution, resolution)[...] = draw_images(z, c, resolution)
        for lt in transformations_from_config(config):
            group = f["pairs"][lt.name]
            create_image_dataset(group, "images", n, resolution, resolution)[...] = \
                draw_images(group["latents"][...], c, resolution)
        f.attrs["num_rendered"] = n
        f.attrs["render_settings"] = '{"engine": "synthetic"}'
        seal(f, source="synthetic images")
    return path
