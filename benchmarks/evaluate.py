"""The paper's evaluation, with fit and score sets kept disjoint.

Held-out images are embedded (final and hidden layer); a seeded permutation splits them into a
fit part and a disjoint score part. Inputs are standardised on the fit part. Class: logistic
regression, accuracy. Each continuous latent (standardised on the fit part): RBF kernel ridge,
3-fold grid search over alpha x gamma, R^2 on the score part; and linear regression R^2. Kernel
ridge is exact up to ``eval.kernel_exact_max`` fit samples, else a Nystroem approximation; the
choice and the selected hyper-parameters are returned for the run record. Beside these, the
field's metrics (``metrics.py``): an MLP class probe (fit part -> score part), MCC over the ten
continuous latents and over the setting's continuous content latents (on the score part), and DCI
(lassos fit on the fit part, informativeness on the score part).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import torch
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, r2_score
from sklearn.metrics.pairwise import euclidean_distances
from threadpoolctl import threadpool_limits
from torch import nn

from causal3dident.latents import LATENT_NAMES

from . import metrics
from .augment import normalize, to_float
from .tiers import EvalConfig

ALPHAS = (1.0, 0.1, 0.001, 0.0001)
GAMMAS = tuple(float(g) for g in np.logspace(-2, 2, 4))  # 0.01, 0.215, 4.64, 100
FOLDS = 3
LAYERS = ("final", "hidden")


@dataclass
class ProbeResult:
    """One results row without the run's identity columns."""

    layer: str
    probe: str
    factor: str
    metric: str
    value: float


@torch.inference_mode()
def embed(model: nn.Module, images: torch.Tensor, batch_size: int, device: torch.device) -> dict[str, np.ndarray]:
    """Layer name -> float64 features [N, d] of uint8 ``images`` (normalised as in training)."""
    model.eval()
    cuda = device.type == "cuda"
    parts: dict[str, list[np.ndarray]] = {}
    for i in range(0, len(images), batch_size):
        x = normalize(to_float(images[i:i + batch_size].to(device))).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            out = model(x)
        layers = dict(zip(LAYERS, (out[-1], out[0]))) if isinstance(out, (tuple, list)) else {"final": out}
        for name, feats in layers.items():
            parts.setdefault(name, []).append(feats.float().cpu().numpy().astype(np.float64))
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def split_fit_score(n: int, fit_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint index sets (fit, score) of a seeded permutation of ``n`` samples."""
    order = np.random.default_rng(seed).permutation(n)
    n_fit = min(n - 2, max(2, int(round(fit_fraction * n))))
    return order[:n_fit], order[n_fit:]


def evaluate(features: dict[str, np.ndarray], latents: np.ndarray, classes: np.ndarray, config: EvalConfig,
             seed: int, content: Sequence[str] | None = None) -> tuple[list[ProbeResult], dict[str, Any]]:
    """All probes on every layer; returns the rows and what was done (sizes, approximations, choices).

    ``content`` (the setting's content: latent names, 'class' ignored) adds MCC rows over those latents.
    BLAS runs single-threaded here: these solves are small, and multi-threaded OpenBLAS was
    measured 30x slower when other processes shared the cores.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _evaluate(features, latents, classes, config, seed, content)


def _evaluate(features: dict[str, np.ndarray], latents: np.ndarray, classes: np.ndarray, config: EvalConfig,
              seed: int, content: Sequence[str] | None) -> tuple[list[ProbeResult], dict[str, Any]]:
    fit, score = split_fit_score(len(classes), config.fit_fraction, seed)
    y_fit, y_score = metrics.standardise(latents[fit].astype(np.float64), latents[score].astype(np.float64))
    content_names = [n for n in LATENT_NAMES if content is not None and n in content]
    rows: list[ProbeResult] = []
    details: dict[str, Any] = {"fit_samples": len(fit), "score_samples": len(score), "layers": {},
                               "probes": _field_probe_settings(content_names)}
    for layer, x in features.items():
        x_fit, x_score = metrics.standardise(x[fit], x[score])
        rows.append(ProbeResult(layer, "logistic", "class", "accuracy",
                                _class_accuracy(x_fit, classes[fit], x_score, classes[score])))
        pred, chosen = kernel_ridge_cv(x_fit, y_fit, x_score, config, seed)
        for j, name in enumerate(LATENT_NAMES):
            rows.append(ProbeResult(layer, "kernel_ridge", name, "r2", float(r2_score(y_score[:, j], pred[:, j]))))
        linear = LinearRegression().fit(x_fit, y_fit).predict(x_score)
        for j, name in enumerate(LATENT_NAMES):
            rows.append(ProbeResult(layer, "linear", name, "r2", float(r2_score(y_score[:, j], linear[:, j]))))
        details["layers"][layer] = {"dim": int(x.shape[1]), "kernel_ridge": chosen}
        field_rows, details["layers"][layer]["field"] = _field_metrics(
            layer, (x_fit, x_score), (y_fit, y_score), (classes[fit], classes[score]), content_names, seed)
        rows += field_rows
    return rows, details


def _field_probe_settings(content_names: list[str]) -> dict[str, Any]:
    """How the field's metrics were computed, for run.json."""
    return {"mlp": {"sklearn": "MLPClassifier", **metrics.MLP_SETTINGS, "random_state": "run seed",
                    "fit": "fit part", "score": "score part"},
            "mcc": {"correlations": list(metrics.CORRELATIONS), "on": "score part", "latents": list(LATENT_NAMES),
                    "content": content_names, "class": "excluded (categorical)",
                    "matching": "scipy.optimize.linear_sum_assignment, maximised; unmatched latents count 0"},
            "dci": {"regressor": "sklearn Lasso (Eastwood & Williams 2018, LASSO variant)",
                    "alpha": metrics.LASSO_ALPHA, "max_iter": metrics.LASSO_MAX_ITER,
                    "standardised": "inputs and latents, on the fit part", "importance": "|coefficient|",
                    "fit": "fit part", "informativeness": "mean R^2 on the score part", "latents": list(LATENT_NAMES)}}


def _field_metrics(layer: str, x: tuple[np.ndarray, np.ndarray], y: tuple[np.ndarray, np.ndarray],
                   c: tuple[np.ndarray, np.ndarray], content_names: list[str],
                   seed: int) -> tuple[list[ProbeResult], dict[str, Any]]:
    """Rows of the MLP probe, MCC (all latents, per latent, content latents) and DCI for one layer."""
    (x_fit, x_score), (y_fit, y_score) = x, y
    accuracy, mlp_info = metrics.mlp_accuracy(x_fit, c[0], x_score, c[1], seed)
    rows = [ProbeResult(layer, "mlp", "class", "accuracy", accuracy)]
    info: dict[str, Any] = {"mlp": mlp_info, "mcc_matched_dims": {}}
    content_cols = [LATENT_NAMES.index(n) for n in content_names]
    for method in metrics.CORRELATIONS:
        metric = f"mcc_{method}"
        every = metrics.mcc(x_score, y_score, method)
        rows.append(ProbeResult(layer, "mcc", "all", metric, every.value))
        rows += [ProbeResult(layer, "mcc", name, metric, float(v)) for name, v in zip(LATENT_NAMES, every.per_latent)]
        if content_cols:
            rows.append(ProbeResult(layer, "mcc", "content", metric,
                                    metrics.mcc(x_score, y_score[:, content_cols], method).value))
        info["mcc_matched_dims"][method] = {n: int(d) if d >= 0 else None for n, d in zip(LATENT_NAMES, every.dims)}
    scores = metrics.dci(x_fit, y_fit, x_score, y_score)
    rows += [ProbeResult(layer, "dci", "all", "disentanglement", scores.disentanglement),
             ProbeResult(layer, "dci", "all", "completeness", scores.completeness),
             ProbeResult(layer, "dci", "all", "informativeness", scores.informativeness)]
    info["dci_r2"] = {n: round(float(v), 6) for n, v in zip(LATENT_NAMES, scores.r2)}
    return rows, info


def _class_accuracy(x_fit: np.ndarray, c_fit: np.ndarray, x_score: np.ndarray, c_score: np.ndarray) -> float:
    if len(np.unique(c_fit)) < 2:  # logistic regression needs two classes; tiny smoke sets may have one
        return float(accuracy_score(c_score, np.full_like(c_score, c_fit[0])))
    model = LogisticRegression(max_iter=1000).fit(x_fit, c_fit)
    return float(accuracy_score(c_score, model.predict(x_score)))


# -- kernel ridge ----------------------------------------------------------------------------------
def kernel_ridge_cv(x_fit: np.ndarray, y_fit: np.ndarray, x_score: np.ndarray, config: EvalConfig,
                    seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Per target column: pick (alpha, gamma) by 3-fold CV R^2 on the fit part, refit, predict the score part.

    Same selection as sklearn's ``GridSearchCV(KernelRidge(kernel='rbf'), {alpha, gamma}, cv=3)``
    (contiguous folds, mean R^2, first best in alpha-major order), but every target shares one
    factorisation per (fold, alpha, gamma).
    """
    n, targets = y_fit.shape
    exact = n <= config.kernel_exact_max
    solver = _ExactRidge() if exact else _NystroemRidge(config.nystroem_components, seed)
    folds = np.array_split(np.arange(n), FOLDS)
    grid = [(a, g) for a in ALPHAS for g in GAMMAS]
    scores = np.zeros((len(grid), targets))
    for k, valid in enumerate(folds):
        train = np.concatenate([f for i, f in enumerate(folds) if i != k])
        for gi, gamma in enumerate(GAMMAS):
            preds = solver.fit_predict(x_fit[train], y_fit[train], x_fit[valid], gamma, ALPHAS)
            for ai, pred in enumerate(preds):
                scores[ai * len(GAMMAS) + gi] += r2_score(y_fit[valid], pred, multioutput="raw_values") / FOLDS
    best = scores.argmax(axis=0)
    out = np.empty((len(x_score), targets))
    for b in np.unique(best):
        alpha, gamma = grid[b]
        cols = np.flatnonzero(best == b)
        out[:, cols] = solver.fit_predict(x_fit, y_fit[:, cols], x_score, gamma, (alpha,))[0]
    chosen = {"solver": "exact" if exact else f"nystroem({config.nystroem_components})", "fit_samples": n,
              "params": {name: {"alpha": grid[b][0], "gamma": round(grid[b][1], 4)}
                         for name, b in zip(LATENT_NAMES, best)}}
    return out, chosen


class _ExactRidge:
    """Kernel ridge without intercept, as sklearn's KernelRidge: (K + alpha I)^-1 y."""

    def fit_predict(self, x: np.ndarray, y: np.ndarray, x_new: np.ndarray, gamma: float,
                    alphas: tuple[float, ...]) -> list[np.ndarray]:
        k = np.exp(-gamma * euclidean_distances(x, squared=True))
        k_new = np.exp(-gamma * euclidean_distances(x_new, x, squared=True))
        preds = []
        for alpha in alphas:
            a = k.copy()
            a.flat[::len(a) + 1] += alpha
            try:
                coef = scipy.linalg.cho_solve(scipy.linalg.cho_factor(a, overwrite_a=True, check_finite=False), y,
                                              check_finite=False)
            except np.linalg.LinAlgError:
                coef = scipy.linalg.lstsq(k + alpha * np.eye(len(k)), y)[0]
            preds.append(k_new @ coef)
        return preds


class _NystroemRidge:
    """Kernel ridge on Nystroem features (``components`` landmarks): for fit sets too large to solve exactly."""

    def __init__(self, components: int, seed: int) -> None:
        self.components, self.seed = components, seed

    def fit_predict(self, x: np.ndarray, y: np.ndarray, x_new: np.ndarray, gamma: float,
                    alphas: tuple[float, ...]) -> list[np.ndarray]:
        mapper = Nystroem(gamma=gamma, n_components=min(self.components, len(x)), random_state=self.seed).fit(x)
        phi, phi_new = mapper.transform(x), mapper.transform(x_new)
        gram, rhs = phi.T @ phi, phi.T @ y
        preds = []
        for alpha in alphas:
            coef = scipy.linalg.cho_solve(scipy.linalg.cho_factor(gram + alpha * np.eye(len(gram))), rhs)
            preds.append(phi_new @ coef)
        return preds
