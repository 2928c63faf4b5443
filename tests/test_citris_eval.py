"""CITRIS's correlation metrics (causal3dident.citris_eval): diag and sep by hand, and the matrices on encodings
whose groups each carry one known variable."""

from __future__ import annotations

import numpy as np
import pytest

from causal3dident.citris_eval import assignment_by_max_r2, correlation_matrices, diag_sep
from causal3dident.errors import ConfigError

VAR_INFO = ["continuous_2", "angle", "categ_3"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_diag_and_sep_as_citris_logs_them():
    m = np.array([[0.9, 0.2, 0.1], [0.3, 0.8, 0.0], [0.1, 0.4, 0.7]])
    diag, sep = diag_sep(m)
    assert diag == pytest.approx(0.8) and sep == pytest.approx((0.2 + 0.3 + 0.4) / 3)
    with_extra_row = np.vstack([m, [1.0, 1.0, 1.0]])  # CITRIS drops the 'no variable' group
    assert diag_sep(with_extra_row) == (diag, sep)
    with pytest.raises(ConfigError):
        diag_sep(np.ones((2, 4)))
    np.testing.assert_array_equal(assignment_by_max_r2(np.array([[0.1, 0.9], [0.8, 0.2], [0.0, 0.3]])),
                                  [[0, 1], [1, 0], [0, 1]])


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, n)
    theta = rng.uniform(0, 2 * np.pi, n)
    c = rng.integers(0, 3, n)
    latents = np.stack([x, theta, c], axis=1)
    enc = np.stack([x + 0.05 * rng.normal(size=n), np.sin(theta), np.cos(theta), c + 0.05 * rng.normal(size=n)], 1)
    return enc, latents


def test_groups_that_carry_one_variable_each_score_high_diag_and_low_sep():
    enc, latents = _data()
    assignment = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    out = correlation_matrices(enc, latents, VAR_INFO, assignment, epochs=100)
    assert out["r2"].shape == out["spearman"].shape == (3, 3)
    r2_diag, r2_sep = diag_sep(out["r2"])
    sp_diag, sp_sep = diag_sep(np.abs(out["spearman"]))
    assert r2_diag > 0.85 and r2_sep < 0.15, out["r2"]
    assert sp_diag > 0.8 and sp_sep < 0.2, out["spearman"]
    # the same encodings, groups swapped: the diagonal now pairs each variable with the wrong group
    swapped = assignment[:, [1, 2, 0]]
    r2_swapped = correlation_matrices(enc, latents, VAR_INFO, swapped, epochs=100)["r2"]
    assert diag_sep(r2_swapped)[0] < 0.2 and diag_sep(r2_swapped)[1] > 0.85
    # identity assignment (one group per latent), then CITRIS's baseline grouping recovers the true groups
    per_latent = correlation_matrices(enc, latents, VAR_INFO, epochs=100)["r2"]
    np.testing.assert_array_equal(assignment_by_max_r2(per_latent), assignment)


def test_deterministic_and_checked():
    enc, latents = _data(200)
    a = correlation_matrices(enc, latents, VAR_INFO, epochs=3, seed=1)
    b = correlation_matrices(enc, latents, VAR_INFO, epochs=3, seed=1)
    np.testing.assert_array_equal(a["r2"], b["r2"])
    with pytest.raises(ConfigError, match="variable kind"):
        correlation_matrices(enc, latents, ["continuous_2", "circle", "categ_3"], epochs=1)
    with pytest.raises(ConfigError, match="assignment"):
        correlation_matrices(enc, latents, VAR_INFO, np.eye(3), epochs=1)
