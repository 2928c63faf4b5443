"""Their evaluation protocol (main_imgtxt.py, ``--evaluate``): probes fit on the val encodings, scored on test.

Per modality, the encodings are standardised with the val encodings' mean and std (``StandardScaler``), and
each factor of that modality (their ``Multimodal3DIdent.FACTORS``; the constant z position left out) is
predicted from them, labels in the release's units: a continuous factor by linear regression and by RBF kernel
ridge chosen by ``GridSearchCV`` (3 folds, alpha in {1, 0.1, 0.01, 0.001}, gamma in logspace(-2, 2, 4)), R^2 on
test; a discrete factor by logistic regression (1000 iterations) and an MLP classifier (sklearn's defaults, 1000
iterations; seeded here, theirs is not), accuracy on test. Rows name factors ``<modality>.<factor>``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from .evaluate import ProbeResult

FACTORS: dict[str, tuple[str, ...]] = {
    "image": ("object_shape", "object_ypos", "object_xpos", "object_alpharot", "object_betarot", "object_gammarot",
              "spotlight_pos", "object_color", "spotlight_color", "background_color"),
    "text": ("object_shape", "object_ypos", "object_xpos", "object_color_index", "text_phrasing"),
}
"""Their FACTORS per modality, in their order (object_zpos, constant, left out as they do)."""
DISCRETE: dict[str, tuple[str, ...]] = {
    "image": ("object_shape", "object_ypos", "object_xpos"),
    "text": FACTORS["text"],
}
ALPHAS = (1.0, 0.1, 0.01, 0.001)
GAMMAS = tuple(float(g) for g in np.logspace(-2, 2, 4))
PROTOCOL = {"fit": "val encodings", "score": "test encodings", "standardise": "encodings, on val (StandardScaler)",
            "continuous": {"linear": "LinearRegression", "kernel_ridge": {"grid_search": "GridSearchCV, cv=3",
                                                                          "alpha": list(ALPHAS),
                                                                          "gamma": [round(g, 4) for g in GAMMAS]}},
            "discrete": {"logistic": "LogisticRegression(max_iter=1000)",
                         "mlp": "MLPClassifier(max_iter=1000, random_state=run seed)"}}


@dataclass
class Encoded:
    """One split's final encodings per modality and its labels per modality (factor -> values)."""

    features: dict[str, np.ndarray]
    labels: dict[str, dict[str, np.ndarray]]


def evaluate_imgtxt(val: Encoded, test: Encoded, seed: int) -> list[ProbeResult]:
    """Every factor of both modalities, probed as their code does (module doc); layer ``final``."""
    rows: list[ProbeResult] = []
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # their MLP's 1000 iterations, as theirs, warned or not
        warnings.filterwarnings("ignore", "The number of unique classes", UserWarning)  # tiny val sets
        for modality, factors in FACTORS.items():
            scaler = StandardScaler().fit(val.features[modality])
            x_fit, x_score = scaler.transform(val.features[modality]), scaler.transform(test.features[modality])
            for factor in factors:
                y_fit, y_score = val.labels[modality][factor], test.labels[modality][factor]
                name = f"{modality}.{factor}"
                if factor in DISCRETE[modality]:
                    for probe, model in (("logistic", LogisticRegression(max_iter=1000)),
                                         ("mlp", MLPClassifier(max_iter=1000, random_state=seed))):
                        rows.append(ProbeResult("final", probe, name, "accuracy",
                                                _accuracy(model, x_fit, y_fit, x_score, y_score)))
                else:
                    linear = LinearRegression().fit(x_fit, y_fit).predict(x_score)
                    rows.append(ProbeResult("final", "linear", name, "r2", float(r2_score(y_score, linear))))
                    search = GridSearchCV(KernelRidge(kernel="rbf"), {"alpha": list(ALPHAS), "gamma": list(GAMMAS)},
                                          cv=3).fit(x_fit, y_fit)
                    rows.append(ProbeResult("final", "kernel_ridge", name, "r2",
                                            float(r2_score(y_score, search.predict(x_score)))))
    return rows


def _accuracy(model, x_fit: np.ndarray, y_fit: np.ndarray, x_score: np.ndarray, y_score: np.ndarray) -> float:
    """Test accuracy of ``model`` fit on val; a val set with one label (tiny files) predicts that label."""
    if len(np.unique(y_fit)) < 2:
        return float(accuracy_score(y_score, np.full_like(y_score, y_fit[0])))
    return float(accuracy_score(y_score, model.fit(x_fit, y_fit).predict(x_score)))
