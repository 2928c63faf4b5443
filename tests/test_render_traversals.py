"""Latent traversals: the latents of each row, and a real tiny render through ``c3di traversals``."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from causal3dident.cli import main
from causal3dident.errors import ConfigError
from causal3dident.latents import CLASS_NAMES, LATENT_NAMES
from causal3dident.render.preview import GAP, LABEL_WIDTH, traversal_latents


def test_each_row_varies_one_latent_over_the_range_and_keeps_the_rest():
    z, c, labels = traversal_latents("causal3dident", seed=3, steps=5, class_name="cow")
    assert labels == ["class", *LATENT_NAMES]
    rows, classes = z.reshape(11, 5, 10), c.reshape(11, 5)
    base = rows[0, 0]
    assert (classes[0] == np.arange(5)).all() and (rows[0] == base).all()  # class row: latents fixed
    for i in range(10):
        row = rows[i + 1]
        assert np.allclose(row[:, i], np.linspace(-1, 1, 5))
        others = np.delete(row, i, axis=1)
        assert (others == np.delete(base, i)).all()
        assert (classes[i + 1] == CLASS_NAMES.index("cow")).all()


def test_bad_traversal_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="unknown class 'cat'"):
        traversal_latents("causal3dident", 0, 5, "cat")
    with pytest.raises(ConfigError, match="steps must be >= 2"):
        traversal_latents("causal3dident", 0, 1)


@pytest.mark.render
def test_traversals_command_renders_a_labelled_sheet(assets_dir, tmp_path):
    out = tmp_path / "traversals.png"
    result = CliRunner().invoke(main, ["traversals", "--out", str(out), "--steps", "2", "--resolution", "32",
                                       "--quality", "preview", "--device", "cpu", "--assets", str(assets_dir)])
    assert result.exit_code == 0, result.output
    with Image.open(out) as sheet:
        pixels = np.asarray(sheet.convert("RGB"))
    assert pixels.shape == (11 * (32 + GAP) - GAP, LABEL_WIDTH + 2 * (32 + GAP) - GAP, 3)
    tiles = [pixels[r * (32 + GAP): r * (32 + GAP) + 32, LABEL_WIDTH + k * (32 + GAP):][:, :32]
             for r in range(11) for k in range(2)]
    assert not (pixels[:, :LABEL_WIDTH] == 255).all()  # the labels are drawn
    hue_bg = LATENT_NAMES.index("hue_bg") + 1
    assert np.abs(tiles[2 * hue_bg].astype(int) - tiles[2 * hue_bg + 1]).mean() > 5  # the background changes
    again = ["traversals", "--out", str(out), "--steps", "2", "--resolution", "32", "--quality", "preview",
             "--device", "cpu", "--assets", str(assets_dir), "--seed", "1"]
    refused = CliRunner().invoke(main, again)
    assert refused.exit_code == 2 and "already exists; pass --overwrite" in refused.stderr
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), pixels)  # untouched
    replaced = CliRunner().invoke(main, [*again, "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert not np.array_equal(np.asarray(Image.open(out).convert("RGB")), pixels)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["traversals.png"]  # no temporary file left
