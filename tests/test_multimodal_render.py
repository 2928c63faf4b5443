"""Multimodal3DIdent's scene variant: the release's latent -> scene map, and real renders (bpy, 32 px).

generate_images.py puts the object at Blender (object_ypos * 3 - 3, object_xpos * 3 - 3, object_zpos), turns
each rotation u into u * pi - pi/2 and the spotlight position into the angle u * pi - pi/2, colours the object
HSV(object_color, 1, 1) and the spotlight and ground HSV((u - 0.5) / 2, 0.8 | 0.6, 1). The camera looks at the
origin from +x, so Blender +y is image right and +x image down: x is left/right and y top/bottom, as the text.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from causal3dident.latents import latent_index, to_scene_units
from causal3dident.multimodal import image_latents, multimodal_scene_units, scene_units
from causal3dident.multimodal_store import read_tables
from causal3dident.render.config import RenderConfig, render_config
from causal3dident.render.job import scene_config
from causal3dident.scm import load_preset

C3DI = str(Path(sys.executable).with_name("c3di"))


def test_scene_units_follow_the_release_formulas():
    z, c = load_preset("multimodal3dident").sample(2000, seed=2)
    table = image_latents(z, c)
    u = multimodal_scene_units(z)
    np.testing.assert_allclose(u[:, 0], table["object_ypos"] * 3 - 3)  # Blender x: 'visually, the vertical'
    np.testing.assert_allclose(u[:, 1], table["object_xpos"] * 3 - 3)  # Blender y: 'visually, the horizontal'
    for k, column in enumerate(("object_alpharot", "object_betarot", "object_gammarot")):
        np.testing.assert_allclose(u[:, 3 + k], table[column] * np.pi - 0.5 * np.pi, atol=1e-12)
    np.testing.assert_allclose(u[:, 6], table["spotlight_pos"] * np.pi - 0.5 * np.pi, atol=1e-12)
    np.testing.assert_allclose(u[:, 7], np.mod(table["object_color"], 1.0), atol=1e-12)
    for k, column in ((8, "spotlight_color"), (9, "background_color")):  # (u - 0.5) / 2, on the circle
        np.testing.assert_allclose(u[:, k], np.mod((table[column] - 0.5) / 2, 1.0), atol=1e-12)
    assert np.array_equal(scene_units(z), to_scene_units(z))


def test_the_scene_is_taken_from_the_latents_and_recorded_only_when_not_the_default():
    config = render_config("preview", 32)
    assert "scene" not in config.to_dict()  # earlier files' render settings and job stamps are unchanged
    multimodal = scene_config(config, {"preset": load_preset("multimodal3dident").to_dict()})
    assert multimodal.scene == "multimodal3dident" and multimodal.to_dict()["scene"] == "multimodal3dident"
    assert scene_config(config, {"preset": load_preset("causal3dident").to_dict()}) == config
    assert RenderConfig().scene == "causal3dident"


@pytest.mark.render
def test_grid_positions_and_object_hue_in_rendered_pixels(assets_dir: Path) -> None:
    from causal3dident.render.devices import CPU
    from causal3dident.render.preview import render_latents

    base = np.zeros(10)
    base[[latent_index("hue_obj"), latent_index("hue_bg"), latent_index("hue_spot")]] = (-1.0, 0.8, 0.8)
    cases = [(-1, 0), (1, 0), (0, -1), (0, 1)]  # left, right, top, bottom (grid x / y: 0, 2 / 0, 2)
    latents = np.array([np.where(np.arange(10) == 0, x, np.where(np.arange(10) == 1, y, base)) for x, y in cases],
                       dtype=np.float32)
    config = render_config("preview", 32, samples=4).with_overrides(scene="multimodal3dident")
    images = render_latents(latents, np.zeros(4, dtype=np.int64), config, [CPU], assets=assets_dir, per_task=4)
    centres = []
    for image in images:
        v = image.astype(np.float64)
        red = v[..., 0] > 1.5 * v[..., 1] + 20  # object hue raw -1 -> h = 0: red (Causal3DIdent's map: violet)
        assert red.sum() > 10
        rows, cols = np.nonzero(red)
        centres.append((cols.mean(), rows.mean()))
    (lx, _), (rx, _), (_, ty), (_, by) = centres
    assert lx < 12 < 20 < rx and ty < by - 5


@pytest.mark.render
def test_c3di_render_with_the_preset_writes_text_and_exports(assets_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "val.h5"
    result = subprocess.run([C3DI, "render", "--preset", "multimodal3dident", "--n", "4", "--resolution", "32",
                             "--quality", "preview", "--set", "samples=2", "--assets", str(assets_dir),
                             "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    with h5py.File(out) as f:
        assert json.loads(f.attrs["render_settings"])["scene"] == "multimodal3dident"
        image, text, sentences = read_tables(f)
        assert f["images"].shape == (4, 32, 32, 3) and len(sentences) == 4
    assert subprocess.run([C3DI, "verify", str(out)], capture_output=True).returncode == 0
    export = subprocess.run([C3DI, "export", str(out), str(tmp_path / "m3di"), "--format", "multimodal3dident"],
                            capture_output=True, text=True)
    assert export.returncode == 0, export.stderr
    assert (tmp_path / "m3di/val/text/text_raw.txt").read_text().split("\n") == sentences
