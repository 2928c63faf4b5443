"""Dependence between latents (and the class) that the SCM induces: Spearman and mutual information.

numpy and scipy only, so the cards can state the dependences without importing matplotlib.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from .latents import CLASS_NAMES, LATENT_NAMES, LATENT_RANGE, NUM_CLASSES

VARIABLES: tuple[str, ...] = ("class", *LATENT_NAMES)
"""Row/column order of the dependence matrices: the class, then the ten latents."""
MI_BINS = 16


def spearman_matrix(latents: np.ndarray) -> np.ndarray:
    """[10, 10] Spearman rank correlations between latent columns (NaN where a column is constant)."""
    ranks = np.apply_along_axis(rankdata, 0, np.asarray(latents, dtype=np.float64))
    centred = ranks - ranks.mean(axis=0)
    norms = np.sqrt((centred ** 2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (centred.T @ centred) / np.outer(norms, norms)


def _codes(latents: np.ndarray, classes: np.ndarray, bins: int) -> list[np.ndarray]:
    """Each variable as integer codes: the class as is, each latent in equal-width bins over [-1, 1]."""
    low, high = LATENT_RANGE
    edges = np.linspace(low, high, bins + 1)[1:-1]
    return [np.asarray(classes, dtype=np.int64)] + [np.digitize(latents[:, j], edges)
                                                     for j in range(latents.shape[1])]


def _mutual_information(a: np.ndarray, b: np.ndarray, na: int, nb: int) -> float:
    joint = np.bincount(a * nb + b, minlength=na * nb).reshape(na, nb) / len(a)
    pa, pb = joint.sum(axis=1, keepdims=True), joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log2(joint[nz] / (pa @ pb)[nz])).sum())


def mutual_information_matrix(latents: np.ndarray, classes: np.ndarray, bins: int = MI_BINS) -> np.ndarray:
    """[11, 11] plug-in mutual information in bits between class and latents (``VARIABLES`` order).

    Latents are binned into ``bins`` equal-width bins; the plug-in estimate is biased upwards by
    about (bins_a - 1)(bins_b - 1) / (2 N ln 2) bits, negligible for the sample sizes cards use.
    """
    codes = _codes(np.asarray(latents), classes, bins)
    sizes = [NUM_CLASSES] + [bins] * (len(codes) - 1)
    k = len(codes)
    out = np.zeros((k, k))
    for i in range(k):
        for j in range(i, k):
            out[i, j] = out[j, i] = _mutual_information(codes[i], codes[j], sizes[i], sizes[j])
    return out


def edge_dependence(edges: list[tuple[str, str]], latents: np.ndarray, classes: np.ndarray
                    ) -> list[dict[str, float | str | None]]:
    """For each SCM edge (parent, child): mutual information in bits and, between two latents, the
    Spearman rho overall and within the class where it is strongest (per-class mechanisms can cancel
    out in the marginal, as the position means do: they flip sign between classes)."""
    rho = spearman_matrix(latents)
    mi = mutual_information_matrix(latents, classes)
    rows: list[dict[str, float | str | None]] = []
    for parent, child in edges:
        i, j = VARIABLES.index(parent), VARIABLES.index(child)
        row: dict[str, float | str | None] = {"parent": parent, "child": child,
                                              "mutual_information_bits": round(float(mi[i, j]), 3),
                                              "spearman": None, "spearman_within_class": None, "class": None}
        if parent != "class":
            row["spearman"] = _rounded(rho[i - 1, j - 1])
            within = {c: spearman_matrix(latents[classes == c][:, [i - 1, j - 1]])[0, 1]
                      for c in np.unique(classes) if (classes == c).sum() > 2}
            best = max(within, key=lambda c: -1.0 if np.isnan(within[c]) else abs(within[c]), default=None)
            if best is not None:
                row.update(spearman_within_class=_rounded(within[best]), **{"class": CLASS_NAMES[best]})
        rows.append(row)
    return rows


def _rounded(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 3)
