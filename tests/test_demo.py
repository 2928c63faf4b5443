"""``c3di demo`` end to end (real renders at 32 px), and the tier-data checks it and 'bench sweep --render' use."""

from __future__ import annotations

import csv
import dataclasses
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from causal3dident.benchmarks.tier_data import ensure_tier_data, split_specs
from causal3dident.benchmarks.tiers import load_tier
from causal3dident.cli import main
from causal3dident.demo import c3di_command
from causal3dident.errors import ConfigError
from causal3dident.store import open_dataset
from causal3dident.testing import make_synthetic_dataset


@pytest.mark.render
def test_demo_renders_loads_benchmarks_and_draws(assets_dir, tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--n", "24", "--test-n", "32", "--resolution", "32", "--quality", "preview",
            "--device", "cpu", "--assets", str(assets_dir)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    with open_dataset(out / "train.h5") as f:
        assert f["images"].shape == (24, 32, 32, 3) and sorted(f["pairs"]) == ["hues", "positions"]
        assert f["pairs/hues/images"].shape == (24, 32, 32, 3)
    with open_dataset(out / "test.h5") as f:
        assert f["images"].shape == (32, 32, 32, 3) and int(f.attrs["seed"]) == 1
    assert "a batch = (Tensor[16, 3, 32, 32], Tensor[16, 3, 32, 32], Tensor[16, 10])" in result.output
    rows = []
    for setting in ("lt_hues", "da_colour"):
        with open(out / "runs" / "smoke" / "simclr" / setting / "seed0" / "results.csv") as fh:
            rows += list(csv.DictReader(fh))
    assert {r["setting"] for r in rows} == {"lt_hues", "da_colour"}
    assert {r["factor"] for r in rows} >= {"class", "hue_obj", "pos_x"}
    board = (out / "LEADERBOARD.md").read_text()
    assert "lt_hues" in board and "da_colour" in board
    assert "The `smoke` tier only proves that the pipeline runs" in board and "--tier mini" in board
    assert f"'{c3di_command()} info {out / 'train.h5'}' describes the data" in result.output
    for picture in ("sample_grid.png", "lt_pairs.png"):
        with Image.open(out / picture) as image:
            assert image.size[0] > 100 and image.size[1] > 100
    again = CliRunner().invoke(main, args)  # reuses the files and the finished runs
    assert again.exit_code == 0, again.output
    assert "reused" in again.output and "finished earlier, reused" in again.output


def test_tier_data_refuses_a_file_that_is_not_the_tiers(tmp_path):
    tier = dataclasses.replace(load_tier("smoke"), data={"train": 64, "test": 16, "resolution": 32,
                                                          "quality": "preview", "pairs": ["hues", "rotations"]})
    make_synthetic_dataset(tmp_path / "train.h5", n=48, resolution=32, pairs=("hues",), seed=0)
    with pytest.raises(ConfigError) as info:
        ensure_tier_data(tier, tmp_path)
    message = str(info.value)
    assert "48 samples, not 64" in message and "no pairs rotations" in message and "delete it" in message
    with pytest.raises(ConfigError, match="not a file"):
        ensure_tier_data(tier, tmp_path / "train.h5")


def test_tiers_declare_their_data():
    train, test = split_specs(load_tier("mini"))
    assert (train.n, train.seed, train.resolution, test.seed) == (24000, 0, 64, 1)
    assert train.pairs == () and test.pairs == ()  # LT settings use nearest partners among the anchors
    train, _ = split_specs(load_tier("mini", ["data.pairs=[rotations_hues]"]))
    assert train.pairs == ("rotations_hues",)  # the views the *_exact settings need
    with pytest.raises(ConfigError, match="declares no data"):
        split_specs(dataclasses.replace(load_tier("smoke"), data={}))


def test_the_closing_hint_names_a_c3di_the_users_shell_finds(monkeypatch, tmp_path):
    """After scripts/setup.sh the shell is outside .venv: plain 'c3di' is then 'command not found'."""
    ours = Path(sys.executable).with_name("c3di")
    assert ours.exists()
    monkeypatch.setenv("PATH", str(tmp_path))  # outside the environment: no c3di on PATH
    assert c3di_command() == str(ours)
    monkeypatch.setenv("PATH", f"{ours.parent}:{tmp_path}")  # inside it (activated)
    assert c3di_command() == "c3di"
    other = tmp_path / "c3di"  # another installation first on PATH: ours, by its full path
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{ours.parent}")
    assert c3di_command() == str(ours)
