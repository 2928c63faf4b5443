"""The content-oracle script: every latent probed from a setting's true content latents, on latents drawn from
the causal model (no images)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py

from causal3dident.benchmarks.settings import get_setting, load_settings
from causal3dident.testing import make_synthetic_dataset
from perf_scripts import PERF, load_perf_script

oracle = load_perf_script("content_oracle")


def test_content_scores_one_and_style_scores_what_the_causal_model_lets_content_predict(tmp_path: Path) -> None:
    path = make_synthetic_dataset(tmp_path / "test.h5", n=600, resolution=8, pairs=(), seed=1)
    with h5py.File(path) as f:
        latents, classes = f["latents"][:], f["classes"][:]
    setting = get_setting("lt_hues", load_settings())
    r2 = oracle.oracle_r2(latents, classes, setting.content)
    assert all(r2[n] > 0.9 for n in setting.content if n != "class")  # content, from itself
    assert r2["hue_spot"] < 0.1 and r2["hue_bg"] < 0.1  # independent of the content in the SCM
    assert 0.1 < r2["hue_obj"] < 0.6  # the object hue depends on class and position (about 0.3 at 2,000 samples)
    positions = oracle.oracle_r2(latents, classes, get_setting("lt_positions", load_settings()).content)
    assert positions["pos_x"] < 0.1 and positions["hue_bg"] > 0.9


def test_the_script_prints_one_row_per_setting_with_style_marked(tmp_path: Path) -> None:
    path = make_synthetic_dataset(tmp_path / "test.h5", n=300, resolution=8, pairs=(), seed=1)
    out = subprocess.run([sys.executable, str(PERF / "content_oracle.py"), str(path), "--setting", "lt_hues",
                          "--setting", "da_rotation"], capture_output=True, text=True, check=True).stdout
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:3]}
    assert set(rows) == {"lt_hues", "da_rotation"}
    assert rows["lt_hues"][-1].endswith("*") and not rows["lt_hues"][0].endswith("*")  # hue_bg style, pos_x content
