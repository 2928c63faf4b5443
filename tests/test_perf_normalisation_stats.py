"""The normalisation-statistics script: the original's way (per-image mean and std, averaged) on real files and
on a grid picture of tiles, checked against numbers computed here by hand."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from causal3dident.testing import make_synthetic_dataset

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "perf" / "normalisation_stats.py"


def numbers(text: str, label: str) -> np.ndarray:
    line = re.search(rf"^\s*{label}\s+([-0-9., ]+?)\s{{2,}}", text + "  ", flags=re.M)
    assert line, text
    return np.array([float(v) for v in line.group(1).split(",")])


def test_file_and_picture_statistics_match_a_hand_computation(tmp_path: Path) -> None:
    path = make_synthetic_dataset(tmp_path / "train.h5", n=20, resolution=32, pairs=(), seed=2)
    with h5py.File(path) as f:
        images = f["images"][...].astype(np.float64) / 255
    tiles = images[:6]
    grid = np.full((2 * 32 + 8, 3 * 32 + 16, 3), 1.0)  # 2 x 3 tiles, 8 px white lines between them
    for k, tile in enumerate(tiles):
        r, c = divmod(k, 3)
        grid[r * 40:r * 40 + 32, c * 40:c * 40 + 32] = tile
    Image.fromarray(np.round(grid * 255).astype(np.uint8)).save(tmp_path / "grid.png")
    out = subprocess.run([sys.executable, str(SCRIPT), str(path), "--picture", str(tmp_path / "grid.png"),
                          "--size", "32"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    ours, picture = out.stdout.split(str(tmp_path / "grid.png"))
    flat = images.reshape(20, -1, 3)
    np.testing.assert_allclose(numbers(ours, "mean"), flat.mean(axis=1).mean(axis=0), atol=6e-5)
    np.testing.assert_allclose(numbers(ours, "std within image"), flat.std(axis=1, ddof=1).mean(axis=0), atol=6e-5)
    np.testing.assert_allclose(numbers(ours, "std pooled"), flat.reshape(-1, 3).std(axis=0), atol=6e-5)
    assert "(6 tiles at 32 px): 6 images" in picture
    inner = tiles[:, 2:-2, 2:-2].reshape(6, -1, 3)  # the tiles less the 2 px margin, resized back to 32 px
    np.testing.assert_allclose(numbers(picture, "mean"), inner.mean(axis=1).mean(axis=0), atol=0.01)
