"""Vectorised inverse-CDF sampling, so every draw is a function of one uniform per value.

Mapping fixed uniforms to values (rather than calling a sampler) makes a sample depend only on
(seed, index): shards concatenate to the unsharded result and interventions reuse the same noise.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

_TINY = np.finfo(np.float64).tiny
_ONE_MINUS = 1.0 - np.finfo(np.float64).epsneg


def truncnorm_ppf(u: np.ndarray, mean: np.ndarray | float, sigma: float,
                  low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """Quantile of Normal(mean, sigma) truncated to [low, high] at probabilities ``u``.

    Rows whose mean lies below the interval's centre are mirrored, so the normal CDF is always
    evaluated where it is accurate (its lower tail), whatever the mean.
    """
    return _finish(np.asarray(u, dtype=np.float64), *_params(mean, sigma, low, high), sigma, low, high)


def truncnorm_ppf_by_class(u: np.ndarray, classes: np.ndarray, class_means: np.ndarray, sigma: float,
                           low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """``truncnorm_ppf`` where each row's mean is ``class_means[classes[row]]``.

    The normal CDF is evaluated once per class instead of once per row.
    """
    sign, m, a, b = (np.asarray(p)[classes] for p in _params(np.asarray(class_means, dtype=np.float64),
                                                             sigma, low, high))
    return _finish(np.asarray(u, dtype=np.float64), sign, m, a, b, sigma, low, high)


def _params(mean: np.ndarray | float, sigma: float, low: float, high: float):
    mean = np.asarray(mean, dtype=np.float64)
    sign = np.where(mean < 0.5 * (low + high), -1.0, 1.0)
    m = sign * mean
    lo = np.where(sign > 0, low, -high)
    a = ndtr((lo - m) / sigma)
    b = ndtr((lo + (high - low) - m) / sigma)
    return sign, m, a, b


def _finish(u: np.ndarray, sign, m, a, b, sigma: float, low: float, high: float) -> np.ndarray:
    q = u * (b - a)
    q += a
    np.clip(q, _TINY, _ONE_MINUS, out=q)
    x = ndtri(q)
    x *= sigma
    x += m
    x *= sign
    return np.clip(x, low, high, out=x)


def uniform_ppf(u: np.ndarray, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """Quantile of U(low, high)."""
    return low + np.asarray(u, dtype=np.float64) * (high - low)


def categorical_ppf(u: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Category index with probabilities ``weights`` (normalised) at uniforms ``u``."""
    cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1).astype(np.int64)
