"""The nearest-partner gap script: per LT, how far nearest partners are from their anchors on kept and changed
latents, checked against a direct computation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

from causal3dident.pairs import NearestPairs
from causal3dident.testing import make_synthetic_dataset
from causal3dident.transformations import LatentTransformation

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "perf" / "nearest_gap.py"


def test_gaps_match_a_direct_computation_and_shrink_with_more_anchors(tmp_path: Path) -> None:
    path = make_synthetic_dataset(tmp_path / "train.h5", n=400, resolution=8, pairs=(), seed=3)
    out = subprocess.run([sys.executable, str(SCRIPT), str(path), "--anchors", "50,400", "--lt", "hues"],
                         capture_output=True, text=True, check=True).stdout
    rows = {int(r.split()[0]): (float(r.split()[2]), float(r.split()[3])) for r in out.splitlines()[1:]}
    with h5py.File(path) as f:
        latents, classes = f["latents"][:], f["classes"][:]
    lt = LatentTransformation.parse("hues")
    partners = NearestPairs(lt, latents, classes, 0).partners(0)
    diff = np.abs(latents[partners] - latents)
    kept = [c for c in range(latents.shape[1]) if c not in lt.columns]
    assert rows[400] == (round(float(diff[:, kept].mean()), 3), round(float(diff[:, lt.columns].mean()), 3))
    assert rows[400][0] < rows[50][0]  # more anchors, closer partners on what the views should share
    assert rows[400][0] < rows[400][1]  # partners are near on kept latents, far on changed ones


def test_more_anchors_than_the_file_has_is_an_error(tmp_path: Path) -> None:
    path = make_synthetic_dataset(tmp_path / "train.h5", n=20, resolution=8, pairs=(), seed=3)
    result = subprocess.run([sys.executable, str(SCRIPT), str(path), "--anchors", "30"], capture_output=True, text=True)
    assert result.returncode == 2 and "the file has 20 samples" in result.stderr
