"""Latent transformations: exactly the chosen latents change, with the right distribution."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from causal3dident import LATENT_GROUPS, LATENT_NAMES, ConfigError, LatentTransformation, load_preset
from causal3dident.transformations import parse_transformations

SCM_ = load_preset("causal3dident")
Z, C = SCM_.sample(30_000, seed=9)


@pytest.mark.parametrize("spec, changed", [
    ("hues", LATENT_GROUPS["hues"]),
    ("positions", LATENT_GROUPS["positions"]),
    ("rotations", LATENT_GROUPS["rotations"]),
    ("positions+hues", LATENT_GROUPS["positions"] + LATENT_GROUPS["hues"]),
    ("rotations_hues", LATENT_GROUPS["rotations"] + LATENT_GROUPS["hues"]),
    ("hue_bg", ("hue_bg",)),
])
def test_lt_changes_exactly_the_chosen_latents(spec, changed):
    lt = LatentTransformation.parse(spec)
    out = lt.apply(Z, C, seed=0, scm=SCM_)
    for j, name in enumerate(LATENT_NAMES):
        same = np.array_equal(out[:, j], Z[:, j])
        assert same == (name not in changed), name
    assert np.abs(out).max() <= 1.0


def test_lt_resamples_from_truncnormal_around_the_current_value():
    lt = LatentTransformation.parse("hues", sigma=1.0)
    out = lt.apply(Z, C, seed=1, scm=SCM_)
    j = LATENT_NAMES.index("hue_bg")
    mean = Z[:, j].astype(np.float64)
    u = stats.truncnorm.cdf(out[:, j], (-1 - mean), (1 - mean), loc=mean, scale=1.0)
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    u_wrong = stats.truncnorm.cdf(out[:, j], (-1 - mean) / 0.3, (1 - mean) / 0.3, loc=mean, scale=0.3)
    assert stats.kstest(u_wrong, "uniform").pvalue < 1e-3


def test_lt_is_deterministic_and_shardable():
    lt = LatentTransformation.parse("positions")
    full = lt.apply(Z, C, seed=3, scm=SCM_)
    again = lt.apply(Z, C, seed=3, scm=SCM_)
    part = lt.apply(Z[1000:2000], C[1000:2000], seed=3, start=1000, scm=SCM_)
    assert np.array_equal(full, again) and np.array_equal(full[1000:2000], part)
    assert not np.array_equal(full, lt.apply(Z, C, seed=4, scm=SCM_))


def test_interventional_mode_resamples_descendants():
    lt = LatentTransformation.parse("spot_pos", mode="interventional")
    out = lt.apply(Z, C, seed=0, scm=SCM_)
    col = {n: i for i, n in enumerate(LATENT_NAMES)}
    # spot_pos -> pos_x, pos_y are redrawn from their mechanisms given the new spot_pos
    hare = C == 1
    s_new = out[hare, col["spot_pos"]].astype(np.float64) * np.pi / 2
    mean = -np.sin(s_new)
    u = stats.truncnorm.cdf(out[hare, col["pos_x"]], (-1 - mean) / 0.5, (1 - mean) / 0.5, loc=mean, scale=0.5)
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert not np.array_equal(out[:, col["pos_y"]], Z[:, col["pos_y"]])
    for name in ("pos_z", "rot_alpha", "hue_obj", "hue_bg"):
        assert np.array_equal(out[:, col[name]], Z[:, col[name]]), name
    independent = LatentTransformation.parse("spot_pos").apply(Z, C, seed=0, scm=SCM_)
    assert np.array_equal(independent[:, col["pos_x"]], Z[:, col["pos_x"]])


def test_names_are_canonical_and_bad_names_fail():
    assert [lt.name for lt in parse_transformations("hues,hues+positions,positions_hues,rotations")] == \
        ["hues", "positions_hues", "rotations"]
    with pytest.raises(ConfigError, match="unknown latent transformation 'colours'"):
        LatentTransformation.parse("colours")
    with pytest.raises(ConfigError, match="mode"):
        LatentTransformation.parse("hues", mode="sideways")
