"""The evaluation protocol: disjoint fit/score sets, kernel ridge selection as sklearn's grid search."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.kernel_ridge import KernelRidge
from sklearn.model_selection import GridSearchCV

from causal3dident.benchmarks.evaluate import ALPHAS, GAMMAS, evaluate, kernel_ridge_cv, split_fit_score
from causal3dident.benchmarks.tiers import EvalConfig
from causal3dident.latents import LATENT_NAMES


def test_fit_and_score_sets_are_disjoint_and_cover():
    fit, score = split_fit_score(101, 0.5, seed=4)
    assert not set(fit) & set(score)
    assert sorted(np.concatenate([fit, score])) == list(range(101))
    assert len(fit) == 50 or len(fit) == 51


def test_kernel_ridge_cv_matches_sklearn_grid_search():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 3))
    y = np.stack([np.sin(2 * x[:, 0]), x[:, 1] ** 2 - 1, rng.normal(size=90)], axis=1)
    x_new = rng.normal(size=(20, 3))
    ours, chosen = kernel_ridge_cv(x, y, x_new, EvalConfig(kernel_exact_max=1000), seed=0)
    assert chosen["solver"] == "exact"
    for j in range(3):
        grid = {"alpha": list(ALPHAS), "gamma": list(GAMMAS)}
        ref = GridSearchCV(KernelRidge(kernel="rbf"), grid, cv=3).fit(x, y[:, j])
        name = LATENT_NAMES[j]
        assert chosen["params"][name]["alpha"] == ref.best_params_["alpha"]
        assert chosen["params"][name]["gamma"] == pytest.approx(ref.best_params_["gamma"], rel=1e-3)
        np.testing.assert_allclose(ours[:, j], ref.predict(x_new), rtol=1e-6, atol=1e-8)


def test_nystroem_beyond_the_exact_limit_approximates_exact():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 2))
    y = np.sin(x[:, :1] * 2) + 0.05 * rng.normal(size=(300, 1))
    exact, _ = kernel_ridge_cv(x, y, x[:50], EvalConfig(kernel_exact_max=1000), seed=0)
    approx, chosen = kernel_ridge_cv(x, y, x[:50], EvalConfig(kernel_exact_max=100, nystroem_components=150), seed=0)
    assert chosen["solver"] == "nystroem(150)"
    assert np.abs(exact - approx).mean() < 0.1


def test_evaluate_rows_recover_latents_that_are_the_features():
    rng = np.random.default_rng(2)
    n = 400
    latents = rng.uniform(-1, 1, size=(n, 10)).astype(np.float32)
    classes = rng.integers(0, 7, n)
    onehot = np.eye(7)[classes]
    features = {"final": latents[:, :5].astype(np.float64),
                "hidden": np.concatenate([latents, onehot], axis=1).astype(np.float64)}
    rows, details = evaluate(features, latents, classes, EvalConfig(samples=n, fit_fraction=0.5), seed=0,
                             content=("class", "pos_x", "pos_y", "hue_bg"))
    # per layer: logistic 1, kernel ridge and linear 2 x 10, mlp 1, mcc 2 x (all + content + 10 latents), dci 3
    assert len(rows) == 2 * (1 + 2 * 10 + 1 + 2 * 12 + 3)
    value = {(r.layer, r.probe, r.factor, r.metric): r.value for r in rows}
    assert value[("hidden", "logistic", "class", "accuracy")] > 0.95
    assert value[("final", "logistic", "class", "accuracy")] < 0.35
    assert value[("final", "linear", "pos_x", "r2")] > 0.99 and value[("final", "linear", "hue_bg", "r2")] < 0.05
    assert value[("hidden", "kernel_ridge", "hue_bg", "r2")] > 0.9
    assert value[("hidden", "mlp", "class", "accuracy")] > 0.95
    assert value[("final", "mlp", "class", "accuracy")] < 0.35
    for metric in ("mcc_pearson", "mcc_spearman"):
        assert value[("hidden", "mcc", "all", metric)] == pytest.approx(1.0)
        # the final layer holds the first five latents: they match exactly, the other five have no dimension
        assert value[("final", "mcc", "all", metric)] == pytest.approx(0.5)
        assert value[("final", "mcc", "pos_y", metric)] == pytest.approx(1.0)
        assert value[("final", "mcc", "hue_bg", metric)] == 0.0
        # content: pos_x and pos_y match exactly; hue_bg only a spare dimension it is independent of
        assert 2 / 3 < value[("final", "mcc", "content", metric)] < 2 / 3 + 0.1 / 3
    assert value[("hidden", "dci", "all", "disentanglement")] > 0.99
    assert value[("hidden", "dci", "all", "completeness")] > 0.99
    assert 0.45 < value[("final", "dci", "all", "informativeness")] < 0.5  # five latents ~1, five <= 0
    r2 = details["layers"]["final"]["field"]["dci_r2"]
    assert min(r2[n] for n in LATENT_NAMES[:5]) > 0.99 and max(r2[n] for n in LATENT_NAMES[5:]) < 0.02
    assert details["fit_samples"] + details["score_samples"] == n
    assert details["layers"]["final"]["field"]["mcc_matched_dims"]["pearson"]["rot_beta"] == 4
    assert details["probes"]["mcc"]["content"] == ["pos_x", "pos_y", "hue_bg"]
