"""The multimodal3dident presets: the release's independent uniform latents on the 3 x 3 grid, the optional
position-dependent colour, and the schema additions they need (discrete latents, uniform windows)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from causal3dident import ConfigError
from causal3dident.latents import LATENT_NAMES
from causal3dident.scm import SCM, load_preset, load_preset_dict, preset_names

N = 60_000
CONTINUOUS = ("rot_alpha", "rot_beta", "rot_gamma", "spot_pos", "hue_obj", "hue_spot", "hue_bg")


def col(name: str) -> int:
    return LATENT_NAMES.index(name)


@pytest.fixture(scope="module")
def sample():
    return load_preset("multimodal3dident").sample(N, seed=5)


def test_presets_are_shipped_with_the_multimodal_scene():
    assert {"multimodal3dident", "multimodal3dident_position_color"} <= set(preset_names())
    assert load_preset("multimodal3dident").scene == "multimodal3dident"
    assert load_preset("causal3dident").scene == "causal3dident"
    assert "scene" not in load_preset("causal3dident").to_dict()  # older configs are recorded as before
    assert load_preset("multimodal3dident").edges() == []


def test_grid_positions_and_shape_are_uniform_and_independent(sample):
    z, c = sample
    assert stats.chisquare(np.bincount(c, minlength=7)).pvalue > 1e-3
    for name in ("pos_x", "pos_y"):
        values, counts = np.unique(z[:, col(name)], return_counts=True)
        assert values.tolist() == [-1.0, 0.0, 1.0]  # grid {0, 1, 2} - 1: x 3 in the scene is {-3, 0, 3}
        assert stats.chisquare(counts).pvalue > 1e-3
    table = np.zeros((3, 3, 7))
    np.add.at(table, (z[:, col("pos_x")].astype(int) + 1, z[:, col("pos_y")].astype(int) + 1, c), 1)
    assert stats.chi2_contingency(table.reshape(9, 7)).pvalue > 1e-3
    assert stats.chi2_contingency(table.sum(axis=2)).pvalue > 1e-3
    assert (z[:, col("pos_z")] == 0).all()


def test_continuous_latents_are_uniform_and_uncorrelated(sample):
    z, c = sample
    for name in CONTINUOUS:
        assert stats.kstest(z[:, col(name)], stats.uniform(-1, 2).cdf).pvalue > 1e-3, name
    cont = z[:, [col(n) for n in CONTINUOUS]]
    corr = np.corrcoef(np.column_stack([cont, z[:, col("pos_x")], c]).T)
    assert np.abs(corr - np.eye(len(corr))).max() < 0.03  # 4.5 standard errors at N = 60,000


def test_position_dependent_colour_is_the_releases_window():
    z, _ = load_preset("multimodal3dident_position_color").sample(N, seed=5)
    x, hue = z[:, col("pos_x")], z[:, col("hue_obj")].astype(np.float64)
    for grid in (0, 1, 2):  # object_color = (object_xpos + U) / 3 with object_color = (raw + 1) / 2
        h = (hue[x == grid - 1] + 1) / 2
        assert stats.kstest(h, stats.uniform(grid / 3, 1 / 3).cdf).pvalue > 1e-3
    # the other latents are the independent preset's, from the same noise
    z0, _ = load_preset("multimodal3dident").sample(N, seed=5)
    other = [i for i in range(10) if i != col("hue_obj")]
    assert np.array_equal(z[:, other], z0[:, other])


@pytest.mark.parametrize("name", ["multimodal3dident", "multimodal3dident_position_color"])
def test_presets_round_trip_through_to_dict(name):
    scm = load_preset(name)
    again = SCM.from_dict(scm.to_dict())
    assert again.scene == scm.scene and again.to_dict()["latents"] == scm.to_dict()["latents"]
    assert all(np.array_equal(a, b) for a, b in zip(scm.sample(500, seed=1), again.sample(500, seed=1)))


@pytest.mark.parametrize("latent, message", [
    ({"distribution": "discrete", "values": [-1, 0, 1], "weights": [1, 1]}, "one weight per value"),
    ({"distribution": "discrete", "values": [0, 0]}, "distinct values"),
    ({"distribution": "discrete", "values": [0, 2]}, r"values\[1\] must be <= 1"),
    ({"distribution": "discrete", "values": []}, "at least 1"),
    ({"distribution": "uniform", "low": "hue_bg", "high": 1}, "parents"),
    ({"distribution": "uniform", "low": "pos_y", "high": 1, "parents": ["pos_y"]}, "own parent"),
])
def test_bad_discrete_and_window_latents_name_the_problem(latent, message):
    data = load_preset_dict("multimodal3dident")
    data["latents"]["pos_y"] = latent
    data["latents"]["pos_x"] = {"distribution": "uniform", "low": "hue_bg", "high": 1, "parents": []} \
        if message == "parents" else data["latents"]["pos_x"]
    with pytest.raises(ConfigError, match=message):
        SCM.from_dict(data)


def test_a_window_that_leaves_the_range_is_refused_when_drawn():
    data = load_preset_dict("multimodal3dident")
    data["latents"]["hue_obj"] = {"distribution": "uniform", "low": "pos_x", "high": "pos_x + 0.5"}
    scm = SCM.from_dict(data)
    with pytest.raises(ConfigError, match="hue_obj.*leaves"):
        scm.sample(100, seed=0)


def test_latent_transformations_keep_the_grid_and_the_constant():
    from causal3dident.transformations import LatentTransformation

    scm = load_preset("multimodal3dident")
    z, c = scm.sample(N, seed=9)
    lt = LatentTransformation.parse("positions")
    z2 = lt.apply(z, c, seed=9, scm=scm)
    assert set(np.unique(z2[:, col("pos_x")])) <= {-1.0, 0.0, 1.0} and (z2[:, col("pos_z")] == 0).all()
    others = [i for i, n in enumerate(LATENT_NAMES) if n not in ("pos_x", "pos_y", "spot_pos")]
    assert np.array_equal(z2[:, others], z[:, others])
    centre = z[:, col("pos_x")] == 0  # from the middle: weights exp(-(v - 0)^2 / 2) for v in -1, 0, 1 (sigma 1)
    counts = np.array([(z2[centre, col("pos_x")] == v).sum() for v in (-1, 0, 1)])
    p = np.exp(-0.5 * np.array([1.0, 0.0, 1.0]))
    assert stats.chisquare(counts, counts.sum() * p / p.sum()).pvalue > 1e-3
    edge = z[:, col("pos_y")] == -1  # from an edge: -1, 0, 1 at distances 0, 1, 2
    counts = np.array([(z2[edge, col("pos_y")] == v).sum() for v in (-1, 0, 1)])
    p = np.exp(-0.5 * np.array([0.0, 1.0, 4.0]))
    assert stats.chisquare(counts, counts.sum() * p / p.sum()).pvalue > 1e-3


def test_an_intervention_off_the_grid_is_one_line_and_writes_nothing(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    c3di = str(Path(sys.executable).with_name("c3di"))
    out = tmp_path / "mm.h5"
    bad = subprocess.run([c3di, "latents", "--preset", "multimodal3dident", "--n", "20", "--out", str(out),
                          "--intervene", "pos_x~uniform(-1,1)"], capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "3 x 3 grid" in bad.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []
    good = subprocess.run([c3di, "latents", "--preset", "multimodal3dident", "--n", "20", "--out", str(out),
                           "--intervene", "pos_x=1"], capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
