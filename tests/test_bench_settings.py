"""The settings registry and the tiers: shipped content, user files, overrides, one-line errors."""

from __future__ import annotations

import csv
from importlib import resources

import pytest

from causal3dident.benchmarks.settings import get_setting, load_settings, table1_ids
from causal3dident.benchmarks.tiers import load_tier, tier_names
from causal3dident.errors import ConfigError


def test_registry_has_table1_and_table6_settings():
    settings = load_settings()
    text = resources.files("causal3dident.benchmarks").joinpath("reference/paper_table1.csv").read_text()
    paper = [row["setting"] for row in csv.DictReader(text.splitlines())]
    assert sorted(table1_ids(settings)) == sorted(paper)
    assert len([s for s in settings.values() if s.table == "6"]) == 6
    lt = settings["lt_positions_hues"]
    assert lt.lt == "positions_hues" and lt.lt_pairs == "nearest" and not lt.augment  # the paper's protocol
    exact = settings["lt_positions_hues_exact"]
    assert (exact.lt, exact.lt_pairs, exact.style, exact.table) == (lt.lt, "exact", lt.style, "exact")
    assert all(s.lt_pairs == "nearest" for s in settings.values() if s.lt and s.table in ("1", "6"))
    assert set(lt.style) == {"pos_x", "pos_y", "pos_z", "spot_pos", "hue_obj", "hue_spot", "hue_bg"}
    assert lt.content == ("class", "rot_alpha", "rot_beta", "rot_gamma")
    assert settings["da_crop_small_colour"].augment == ("crop_small", "colour")


def test_user_settings_file_adds_and_overrides(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("settings:\n  lt_bg_nearest:\n    views: 'LT: background hue (nearest)'\n"
                    "    lt: hue_bg\n    lt_pairs: nearest\n    style: [hue_bg]\n")
    settings = load_settings([path])
    mine = get_setting("lt_bg_nearest", settings)
    assert mine.lt == "hue_bg" and mine.lt_pairs == "nearest" and mine.table == "user"
    assert "da_colour" in settings


@pytest.mark.parametrize("body, message", [
    ("settings:\n  x:\n    augment: [blur]\n", "must be one of crop_large, crop_small, colour, rotation, got 'blur'"),
    ("settings:\n  x:\n    views: nothing\n", "makes no views"),
    ("settings:\n  x:\n    lt: colours\n", "unknown latent transformation"),
    ("settings:\n  x:\n    lt: hues\n    lt_pairs: approx\n", "lt_pairs must be one of exact, nearest, got 'approx'"),
    ("settings:\n  x:\n    augment: [colour]\n    style: [hue]\n", "must be one of pos_x, .*, hues, got 'hue'"),
    ("settings:\n  x:\n    lt: hues\n    stlye: [hues]\n", "'x': stlye: unknown key; known keys: views, augment, lt"),
    ("- a list\n", "top-level 'settings:' mapping"),
])
def test_bad_settings_files_raise_one_line(tmp_path, body, message):
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as info:
        load_settings([path])
    assert "\n" not in str(info.value)


def test_unknown_setting_lists_known_ones():
    with pytest.raises(ConfigError, match="known: da_colour, lt_hues"):
        get_setting("da_blur", load_settings())


def test_tiers_load_and_accept_overrides():
    assert {"smoke", "mini", "paper"} <= set(tier_names())
    paper = load_tier("paper")
    assert (paper.resolution, paper.model.encoder, paper.train.batch_size, paper.train.lr,
            paper.method["simclr"]["temperature"], paper.seeds) == (224, "resnet18", 512, 1e-4, 1.0, (0, 1, 2))
    assert not any(load_tier(name).provisional for name in ("smoke", "mini", "paper"))
    tier = load_tier("smoke", ["train.steps=7", "model.widths=[4, 8]"])
    assert tier.train.steps == 7 and tier.model.widths == (4, 8)
    assert tier.overrides == ("train.steps=7", "model.widths=[4, 8]")


@pytest.mark.parametrize("name, overrides, message", [
    ("huge", [], "unknown tier 'huge'"),
    ("smoke", ["train.steps"], "write section.key=value"),
    ("smoke", ["train.optimiser=sgd"], "train.optimiser: unknown key; known keys: batch_size, steps"),
    ("smoke", ["model.encoder=vit"], "model.encoder must be one of"),
    ("smoke", ["eval.fit_fraction=1.5"], "eval.fit_fraction must be < 1, got 1.5"),
])
def test_bad_tiers_raise(name, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_tier(name, overrides)


@pytest.mark.parametrize("overrides", [[], ["model.pool=flatten"], ["model.pool=flatten", "resolution=40"]])
def test_encoders_return_hidden_and_final_at_the_tier_resolution(overrides):
    import torch

    from causal3dident.benchmarks.models import build_encoder

    tier = load_tier("smoke", overrides)
    hidden, final = build_encoder(tier.model, tier.resolution)(torch.zeros(2, 3, tier.resolution, tier.resolution))
    assert hidden.shape == (2, 100) and final.shape == (2, 8)
