"""The latent -> scene mapping, measured on rendered pixels (real bpy, 64 px, one worker process).

Scene: a pure red object (hue_obj 0) over a chartreuse ground lit by a chartreuse spotlight
(hue_bg = hue_spot = 0.8 -> hue 0.2): the object separates by colour, the pool by brightness.
The camera sits at +x looking at the origin: image right is +y, image down is +x.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
import pytest

from causal3dident.latents import hue_fraction, latent_index
from causal3dident.render.config import render_config
from causal3dident.render.devices import CPU
from causal3dident.render.preview import render_latents

pytestmark = pytest.mark.render

RES = 64
BASE = np.array([0, 0, 0, 0, 0, 0, 0, 0.0, 0.8, 0.8])
BG_HUES = (-0.8, -0.3, 0.3, 0.8)


def _with(**changes: float) -> np.ndarray:
    z = BASE.copy()
    for name, value in changes.items():
        z[latent_index(name)] = value
    return z


CASES: dict[str, tuple[np.ndarray, int]] = {
    "base": (BASE, 0),
    **{f"x{v:+}": (_with(pos_x=v), 0) for v in (-0.5, 0.5)},
    **{f"y{v:+}": (_with(pos_y=v), 0) for v in (-0.5, 0.5)},
    **{f"spot{v:+}": (_with(spot_pos=v), 0) for v in (-1.0, 0.0, 1.0)},
    **{f"bg{v:+}": (_with(hue_bg=v), 0) for v in BG_HUES},
    **{f"class{c}": (BASE, c) for c in range(1, 7)},
}


@pytest.fixture(scope="module")
def images(assets_dir: Path) -> dict[str, np.ndarray]:
    latents = np.stack([z for z, _ in CASES.values()]).astype(np.float32)
    classes = np.array([c for _, c in CASES.values()])
    out = render_latents(latents, classes, render_config("preview", RES, samples=8), [CPU], assets=assets_dir,
                         per_task=len(latents))
    return dict(zip(CASES, out))


def linear(img: np.ndarray) -> np.ndarray:
    """sRGB uint8 -> linear float RGB (the view transform is Standard)."""
    v = img.astype(np.float64) / 255
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def object_mask(img: np.ndarray) -> np.ndarray:
    """Pixels of the pure red object: red, with almost no green or blue."""
    lin = linear(img)
    return (lin[..., 0] > 0.02) & (lin[..., 0] > 4 * lin[..., 1:].max(axis=-1))


def lit_by_spot(img: np.ndarray, *others: np.ndarray) -> np.ndarray:
    """Pixels clearly brighter in ``img`` than in every other image: the pool that only ``img``'s spot lights."""
    lum = linear(img).mean(axis=-1)
    margin = 0.4 * np.median(lum)
    return np.all([lum > linear(o).mean(axis=-1) + margin for o in others], axis=0)


def centroid(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    assert len(rows) > 10, "mask is (nearly) empty"
    return np.array([rows.mean(), cols.mean()])


def test_background_hue_matches_latent(images: dict[str, np.ndarray]) -> None:
    for raw in BG_HUES:
        patch = linear(images[f"bg{raw:+}"][2:12, 50:62]).reshape(-1, 3).mean(axis=0)
        hue, sat, _ = colorsys.rgb_to_hsv(*(patch / patch.max()))
        expected = float(hue_fraction(raw))
        assert abs((hue - expected + 0.5) % 1.0 - 0.5) < 0.02, (raw, hue, expected)
        assert abs(sat - 0.6) < 0.08, (raw, sat)


def test_position_moves_object_centroid(images: dict[str, np.ndarray]) -> None:
    d_x = centroid(object_mask(images["x+0.5"])) - centroid(object_mask(images["x-0.5"]))
    d_y = centroid(object_mask(images["y+0.5"])) - centroid(object_mask(images["y-0.5"]))
    assert d_x[0] > 4 and abs(d_x[1]) < 2, d_x  # +x: towards the camera, i.e. down in the image
    assert d_y[1] > 6 and abs(d_y[0]) < 3, d_y  # +y: to the right


def test_class_changes_silhouette(images: dict[str, np.ndarray]) -> None:
    masks = [object_mask(images["base"])] + [object_mask(images[f"class{c}"]) for c in range(1, 7)]
    assert all(m.sum() > 30 for m in masks)
    for i in range(7):
        for j in range(i + 1, 7):
            iou = (masks[i] & masks[j]).sum() / (masks[i] | masks[j]).sum()
            assert iou < 0.75, (i, j, iou)


def test_spotlight_angle_moves_pool(images: dict[str, np.ndarray]) -> None:
    far, side, near = (images[f"spot{v:+}"] for v in (-1.0, 0.0, 1.0))
    far_pool, near_pool = centroid(lit_by_spot(far, near)), centroid(lit_by_spot(near, far))
    side_pool = centroid(lit_by_spot(side, far, near))
    assert far_pool[0] > near_pool[0] + 8, (far_pool, near_pool)  # spot at -x (far): pool low in the image
    assert side_pool[1] < RES / 2 - 6, side_pool  # spot at +y (right): pool on the left
