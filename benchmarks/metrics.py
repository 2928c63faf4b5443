"""The field's representation metrics beside the paper's probes: an MLP class probe, MCC and DCI.

- MLP: scikit-learn's MLPClassifier, one hidden layer of 100 ReLU units, Adam, L2 1e-4, batches of
  min(200, n), seeded; trains on the whole fit part for at most 100 epochs, stopping earlier once
  the training loss gains < 1e-4 for 10 epochs. Measured alternatives: early stopping on a held-out
  10 % kept the first model with a perfect score on the few validation samples (0.96-0.99 on
  perfectly separable clusters, depending on the seed); 200 epochs cost twice as much for the same
  accuracy (within 0.02); lbfgs overfit where classes overlap.
- MCC (mean correlation coefficient): |Pearson| or |Spearman| correlation between every
  representation dimension and every latent, a one-to-one matching that maximises the summed
  correlation (``scipy.optimize.linear_sum_assignment``), averaged over the latents; a latent left
  without a dimension (fewer dimensions than latents) counts 0.
- DCI (Eastwood & Williams, ICLR 2018), their LASSO variant as in their code (cianeastwood/qedr):
  per latent a lasso with alpha 0.02 on the standardised representation and latent, importance =
  |coefficient|; disentanglement = importance-weighted mean over dimensions of 1 - entropy (base:
  number of latents) of the dimension's importances; completeness = mean over latents of 1 -
  entropy (base: number of dimensions); informativeness = mean R^2 of the lassos on the score part.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import entropy, rankdata
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso
from sklearn.metrics import accuracy_score, r2_score
from sklearn.neural_network import MLPClassifier

MLP_SETTINGS: dict[str, Any] = {"hidden_layer_sizes": (100,), "activation": "relu", "solver": "adam", "alpha": 1e-4,
                                "learning_rate_init": 1e-3, "batch_size": "auto", "early_stopping": False,
                                "tol": 1e-4, "n_iter_no_change": 10, "max_iter": 100}
"""MLPClassifier arguments (random_state is the run seed); recorded in run.json."""
LASSO_ALPHA = 0.02
"""DCI's lasso penalty on standardised inputs and targets, Eastwood & Williams' value for every latent."""
LASSO_MAX_ITER = 10_000
CORRELATIONS = ("pearson", "spearman")


# -- MLP class probe -------------------------------------------------------------------------------
def mlp_accuracy(x_fit: np.ndarray, c_fit: np.ndarray, x_score: np.ndarray, c_score: np.ndarray,
                 seed: int) -> tuple[float, dict[str, Any]]:
    """Accuracy on the score part of an MLP fit on the fit part; and the epochs it trained."""
    labels = np.unique(c_fit)
    if len(labels) < 2:  # one class in the fit part: predict it, as the logistic probe does
        return float(accuracy_score(c_score, np.full_like(c_score, labels[0]))), {"epochs": 0}
    model = MLPClassifier(random_state=seed, **MLP_SETTINGS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the epoch budget is the protocol, not a failure
        model.fit(x_fit, c_fit)
    return float(accuracy_score(c_score, model.predict(x_score))), {"epochs": int(model.n_iter_)}


# -- MCC -------------------------------------------------------------------------------------------
def correlation_matrix(x: np.ndarray, z: np.ndarray, method: str = "pearson") -> np.ndarray:
    """|correlation| [d, k] between the columns of ``x`` [n, d] and ``z`` [n, k]; constant columns give 0.

    Spearman is Pearson on the columns' ranks (ties get their average rank).
    """
    if method not in CORRELATIONS:
        raise ValueError(f"method must be one of {CORRELATIONS}, got {method!r}")
    if method == "spearman":
        x, z = rankdata(x, axis=0), rankdata(z, axis=0)
    xs, zs = _unit_columns(np.asarray(x, np.float64)), _unit_columns(np.asarray(z, np.float64))
    return np.abs(xs.T @ zs) / len(xs)


def _unit_columns(a: np.ndarray) -> np.ndarray:
    centred = a - a.mean(0)
    std = centred.std(0)
    return np.divide(centred, std, out=np.zeros_like(centred), where=std > 0)


def matched_correlations(corr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per latent (column of ``corr`` [d, k]): its matched correlation (0 if unmatched) and its dimension (-1).

    The matching is one-to-one and maximises the summed correlation (Hungarian algorithm).
    """
    dims, latents = linear_sum_assignment(corr, maximize=True)
    values, matched = np.zeros(corr.shape[1]), np.full(corr.shape[1], -1)
    values[latents], matched[latents] = corr[dims, latents], dims
    return values, matched


@dataclass
class MCC:
    """Mean of ``per_latent`` (matched |correlation| per latent, 0 where no dimension was left)."""

    value: float
    per_latent: np.ndarray
    dims: np.ndarray


def mcc(x: np.ndarray, z: np.ndarray, method: str = "pearson") -> MCC:
    """MCC between representation ``x`` [n, d] and latents ``z`` [n, k] of the same samples."""
    values, dims = matched_correlations(correlation_matrix(x, z, method))
    return MCC(float(values.mean()), values, dims)


# -- DCI -------------------------------------------------------------------------------------------
@dataclass
class DCI:
    """Eastwood & Williams' scores, the importance matrix [d, k] they come from and the lassos' R^2 per latent."""

    disentanglement: float
    completeness: float
    informativeness: float
    importance: np.ndarray
    r2: np.ndarray


def dci_scores(importance: np.ndarray) -> tuple[float, float]:
    """(disentanglement, completeness) of an importance matrix [dimensions, latents] of non-negative weights.

    A dimension without importance has no weight in D; a latent no dimension explains has C = 0;
    a matrix of zeros scores 0 on both.
    """
    r = np.asarray(importance, np.float64)
    d, k = r.shape
    total = r.sum()
    if total <= 0:
        return 0.0, 0.0
    row, col = r.sum(1), r.sum(0)
    used = row > 0
    d_per_dim = 1.0 - entropy(r[used] / row[used, None], base=max(k, 2), axis=1)
    disentanglement = float(np.sum(d_per_dim * row[used] / total))
    c_per_latent = np.zeros(k)
    explained = col > 0
    c_per_latent[explained] = 1.0 - entropy(r[:, explained] / col[explained], base=max(d, 2), axis=0)
    return disentanglement, float(c_per_latent.mean())


def dci(x_fit: np.ndarray, z_fit: np.ndarray, x_score: np.ndarray, z_score: np.ndarray) -> DCI:
    """DCI of a representation: lassos fit on the fit part (inputs and targets standardised there),
    informativeness = their mean R^2 on the score part."""
    x_fit, x_score = standardise(x_fit, x_score)
    z_fit, z_score = standardise(z_fit, z_score)
    importance = np.zeros((x_fit.shape[1], z_fit.shape[1]))
    r2 = np.zeros(z_fit.shape[1])
    for j in range(z_fit.shape[1]):
        model = Lasso(alpha=LASSO_ALPHA, max_iter=LASSO_MAX_ITER).fit(x_fit, z_fit[:, j])
        importance[:, j] = np.abs(model.coef_)
        r2[j] = r2_score(z_score[:, j], model.predict(x_score))
    disentanglement, completeness = dci_scores(importance)
    return DCI(disentanglement, completeness, float(r2.mean()), importance, r2)


def standardise(fit: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both parts scaled by the fit part's per-column mean and std (constant columns keep std 1): no leak."""
    mean, std = fit.mean(0), fit.std(0)
    std = np.where(std > 0, std, 1.0)
    return (fit - mean) / std, (score - mean) / std

