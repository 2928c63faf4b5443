"""The field's metrics against direct computations where the answer is known: MLP probe, MCC, DCI."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.linear_model import LogisticRegression

from causal3dident.benchmarks.metrics import (correlation_matrix, dci, dci_scores, matched_correlations, mcc,
                                              mlp_accuracy)


def permuted_scaled_flipped(z: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """z's columns permuted, scaled by factors in [0.1, 10] with random signs, shifted; and the permutation."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(z.shape[1])
    scale = rng.uniform(0.1, 10, z.shape[1]) * rng.choice([-1, 1], z.shape[1])
    return z[:, perm] * scale + rng.normal(size=z.shape[1]), perm


# -- MCC -------------------------------------------------------------------------------------------
def test_correlation_matrix_is_scipys_pearson_and_spearman_per_pair():
    rng = np.random.default_rng(0)
    z = rng.uniform(-1, 1, size=(60, 3))
    x = np.stack([z[:, 0] + 0.5 * rng.normal(size=60), np.exp(z[:, 2]), np.round(z[:, 1], 1)], axis=1)  # ties
    for method, ref in (("pearson", pearsonr), ("spearman", spearmanr)):
        ours = correlation_matrix(x, z, method)
        direct = np.array([[abs(ref(x[:, i], z[:, j])[0]) for j in range(3)] for i in range(3)])
        np.testing.assert_allclose(ours, direct, rtol=1e-10, atol=1e-12)
    dead = np.concatenate([x, np.full((60, 1), 0.7)], axis=1)  # a dead unit correlates with nothing
    assert (correlation_matrix(dead, z)[3] == 0).all() and mcc(dead, z).value == mcc(x, z).value


def test_permuted_scaled_sign_flipped_encoding_scores_one_and_finds_the_permutation():
    z = np.random.default_rng(1).uniform(-1, 1, size=(500, 10))
    x, perm = permuted_scaled_flipped(z)
    for method in ("pearson", "spearman"):
        result = mcc(x, z, method)
        assert result.value == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_array_equal(perm[result.dims], np.arange(10))  # latent j sits in dimension perm^-1(j)


def test_spearman_is_one_under_monotone_distortions_where_pearson_is_not():
    z = np.random.default_rng(2).uniform(-1, 1, size=(1000, 4))
    x = np.stack([np.exp(4 * z[:, 2]), z[:, 0] ** 3, -np.tanh(3 * z[:, 3]), np.exp(-5 * z[:, 1])], axis=1)
    assert mcc(x, z, "spearman").value == pytest.approx(1.0, abs=1e-12)
    assert mcc(x, z, "pearson").value < 0.95


def test_independent_noise_scores_at_the_sampling_floor():
    rng = np.random.default_rng(3)
    n, k = 1000, 10
    z = rng.uniform(-1, 1, size=(n, k))
    for d in (8, 100):
        x = rng.normal(size=(n, d))
        result = mcc(x, z)
        matched = result.per_latent[result.dims >= 0]
        corr = correlation_matrix(x, z)
        # the optimal matching beats the average pair, and no pair exceeds the max of d*k |N(0, 1/n)|
        assert matched.mean() >= corr.mean() > 0
        assert result.value < math.sqrt(2 * math.log(2 * d * k) / n) < 0.15


def test_matching_is_optimal_not_greedy_on_a_hand_computed_example():
    # z: a = (1, 2, 3, 4), b = (1, -1, -1, 1); x1 = (2, 1, 4, 3), x2 = (1, 2, 4, 3).
    # By hand: |r(x1, a)| = 3/5 = 0.6, |r(x1, b)| = 0, |r(x2, a)| = 4/5 = 0.8, |r(x2, b)| = 2/sqrt(20).
    # Greedy takes x2 -> a (0.8) and leaves x1 -> b (0): mean 0.4. Optimal: x1 -> a, x2 -> b.
    z = np.array([[1, 1], [2, -1], [3, -1], [4, 1]], dtype=float)
    x = np.array([[2, 1], [1, 2], [4, 4], [3, 3]], dtype=float)
    np.testing.assert_allclose(correlation_matrix(x, z), [[0.6, 0.0], [0.8, 2 / math.sqrt(20)]], atol=1e-12)
    result = mcc(x, z)
    assert result.value == pytest.approx((0.6 + 2 / math.sqrt(20)) / 2)
    assert list(result.dims) == [0, 1]


def test_fewer_dimensions_than_latents_leave_latents_unmatched_at_zero():
    # 2 dimensions, 3 latents. Matchings: (l0<-d0, l2<-d1) 1.2, (l2<-d0, l0<-d1) 1.3 (best), (l0<-d0, l1<-d1) 1.0
    corr = np.array([[0.9, 0.2, 0.7], [0.6, 0.1, 0.3]])
    values, dims = matched_correlations(corr)
    np.testing.assert_allclose(values, [0.6, 0.0, 0.7])
    assert list(dims) == [1, -1, 0]
    z = np.random.default_rng(4).uniform(-1, 1, size=(200, 3))
    assert mcc(z[:, [2, 0]], z).value == pytest.approx(2 / 3)  # two latents recovered exactly, one absent


# -- DCI -------------------------------------------------------------------------------------------
def test_dci_scores_of_hand_computed_importance_matrices():
    assert dci_scores(np.eye(3)) == pytest.approx((1.0, 1.0))
    assert dci_scores(np.ones((3, 3))) == pytest.approx((0.0, 0.0))
    assert dci_scores(np.zeros((3, 3))) == (0.0, 0.0)
    assert dci_scores(np.array([[1.0, 1.0], [0.0, 0.0]])) == pytest.approx((0.0, 1.0))  # one dimension, both latents
    assert dci_scores(np.array([[1.0, 0.0], [1.0, 0.0]])) == pytest.approx((1.0, 0.0))  # latent 1 explained by none
    # [[3, 1], [0, 2]]: dimension 0 spreads (3/4, 1/4): D0 = 1 - H2 = 1 - 0.811278 = 0.188722, weight 4/6;
    # dimension 1 holds only latent 1: D1 = 1, weight 2/6 -> D = 0.459148. Latent 0 only in dimension 0: C0 = 1;
    # latent 1 spreads (1/3, 2/3): C1 = 1 - 0.918296 = 0.081704 -> C = 0.540852.
    d, c = dci_scores(np.array([[3.0, 1.0], [0.0, 2.0]]))
    assert d == pytest.approx(0.459148, abs=1e-6) and c == pytest.approx(0.540852, abs=1e-6)
    # two dimensions, three latents: entropies in base 3 for D, base 2 for C. Dimension 0 spreads
    # (1/2, 1/4, 1/4): D0 = 1 - 1.039721 / ln 3 = 0.053605, weight 1/2; dimension 1: D1 = 1 -> D = 0.526803.
    # Latents 0 and 1: C = 1; latent 2 spreads (1/5, 4/5): C2 = 1 - 0.721928 -> C = 0.759357.
    d, c = dci_scores(np.array([[2.0, 1.0, 1.0], [0.0, 0.0, 4.0]]))
    assert d == pytest.approx(0.526803, abs=1e-6) and c == pytest.approx(0.759357, abs=1e-6)


def test_permuted_scaled_sign_flipped_encoding_is_disentangled_complete_and_informative():
    z = np.random.default_rng(5).uniform(-1, 1, size=(600, 10))
    x, perm = permuted_scaled_flipped(z, seed=5)
    result = dci(x[:300], z[:300], x[300:], z[300:])
    assert result.disentanglement > 0.999 and result.completeness > 0.999 and result.informativeness > 0.99
    assert (result.importance.argmax(axis=0) == np.argsort(perm)).all()


def test_a_dense_mixing_is_informative_but_neither_disentangled_nor_complete():
    rng = np.random.default_rng(6)
    z = rng.uniform(-1, 1, size=(600, 6))
    rotation = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    result = dci(z[:300] @ rotation, z[:300], z[300:] @ rotation, z[300:])
    assert result.informativeness > 0.99
    assert result.disentanglement < 0.5 and result.completeness < 0.5


def test_independent_noise_is_neither_informative_nor_disentangled():
    rng = np.random.default_rng(7)
    z, x = rng.uniform(-1, 1, size=(1000, 10)), rng.normal(size=(1000, 8))
    result = dci(x[:500], z[:500], x[500:], z[500:])
    assert result.disentanglement < 0.3 and result.completeness < 0.3 and result.informativeness < 0.02
    assert (result.importance > 0).sum() > 10  # low because the weights spread, not because none are left


# -- MLP class probe -------------------------------------------------------------------------------
def rings(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes on concentric rings (radii 1, 2, 3, width 0.3): separable, but not linearly."""
    rng = np.random.default_rng(seed)
    c = rng.integers(0, 3, n)
    radius = 1 + c + rng.uniform(-0.15, 0.15, n)
    angle = rng.uniform(0, 2 * np.pi, n)
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1), c


def test_mlp_separates_what_a_linear_probe_cannot():
    x, c = rings(2000, seed=8)
    accuracy, info = mlp_accuracy(x[:1000], c[:1000], x[1000:], c[1000:], seed=0)
    linear = LogisticRegression(max_iter=1000).fit(x[:1000], c[:1000]).score(x[1000:], c[1000:])
    assert accuracy >= 0.99 and linear < 0.6
    assert 0 < info["epochs"] <= 100


def test_mlp_is_exact_on_separated_clusters_and_seeded():
    rng = np.random.default_rng(9)
    c = rng.integers(0, 7, 600)
    x = 10 * np.eye(7)[c] + rng.normal(scale=0.5, size=(600, 7))
    first = mlp_accuracy(x[:300], c[:300], x[300:], c[300:], seed=3)
    assert first[0] == 1.0
    assert mlp_accuracy(x[:300], c[:300], x[300:], c[300:], seed=3) == first


def test_mlp_on_tiny_fit_sets_and_a_single_class():
    rng = np.random.default_rng(10)
    c = np.repeat(np.arange(7), 3)  # 21 samples, 3 per class: a smoke run's size
    x = 5 * np.eye(7)[c] + rng.normal(scale=0.1, size=(21, 7))
    assert mlp_accuracy(x, c, x, c, seed=0)[0] == 1.0
    assert mlp_accuracy(x[:3], c[:3], x, c, seed=0) == (pytest.approx(3 / 21), {"epochs": 0})  # class 0 only
