"""Latent transformations (LT): the second view of a positive pair in latent space.

``independent`` (the paper's): each chosen latent z_j is redrawn from TruncNormal(z_j, sigma,
[low, high]); class and every other latent are kept, even where the SCM would have them depend on
a changed latent. ``interventional``: the chosen latents are redrawn the same way, then every
descendant of them in the SCM is redrawn from its own mechanism given the new parents, so the
pair's second view is again a sample the SCM could produce under do(changed latents).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from . import noise
from .distributions import truncnorm_ppf
from .errors import ConfigError
from .latents import LATENT_GROUPS, LATENT_NAMES, NUM_LATENTS
from .scm import SCM

MODES = ("independent", "interventional")
PAPER_SIGMA = 1.0
_GROUP_ORDER = ("positions", "rotations", "hues")


@dataclass(frozen=True)
class LatentTransformation:
    """Resample ``latents`` of each sample; ``name`` is the canonical id used in files and settings."""

    name: str
    latents: tuple[str, ...]
    sigma: float = PAPER_SIGMA
    mode: str = "independent"

    @classmethod
    def parse(cls, spec: str, sigma: float = PAPER_SIGMA, mode: str = "independent") -> LatentTransformation:
        """From ``'hues'``, ``'positions+hues'``, ``'positions_hues'`` or latent names (``'hue_bg+pos_x'``)."""
        if mode not in MODES:
            raise ConfigError(f"unknown LT mode {mode!r}; choose {' or '.join(MODES)}")
        if not sigma > 0:
            raise ConfigError(f"LT sigma must be > 0, got {sigma}")
        tokens = _tokens(spec)
        chosen: set[str] = set()
        groups: list[str] = []
        singles: list[str] = []
        for token in tokens:
            if token in LATENT_GROUPS:
                groups.append(token)
                chosen.update(LATENT_GROUPS[token])
            elif token in LATENT_NAMES:
                singles.append(token)
                chosen.add(token)
            else:
                raise ConfigError(f"unknown latent transformation {token!r} in {spec!r}; use "
                                  f"{', '.join(_GROUP_ORDER)}, latent names, or unions such as 'positions+hues'")
        ordered_groups = [g for g in _GROUP_ORDER if g in groups]
        ordered_singles = [n for n in LATENT_NAMES if n in singles and not any(n in LATENT_GROUPS[g] for g in groups)]
        name = "_".join(ordered_groups + ordered_singles)
        return cls(name, tuple(n for n in LATENT_NAMES if n in chosen), float(sigma), mode)

    @property
    def columns(self) -> list[int]:
        return [LATENT_NAMES.index(n) for n in self.latents]

    def apply(self, latents: np.ndarray, classes: np.ndarray, *, seed: int, start: int = 0,
              scm: SCM | None = None) -> np.ndarray:
        """Transformed latents for anchors with sample indices [start, start + len(latents)).

        The noise depends on (seed, transformation name, index) only, so shards agree with an
        unsharded run. ``scm`` gives the bounds and, in interventional mode, the mechanisms.
        """
        latents = np.asarray(latents, dtype=np.float32)
        if latents.ndim != 2 or latents.shape[1] != NUM_LATENTS:
            raise ValueError(f"expected latents of shape [N, {NUM_LATENTS}], got {latents.shape}")
        if self.mode == "interventional" and scm is None:
            raise ConfigError("the interventional LT needs the SCM (pass scm=...)")
        n = len(latents)
        u = noise.uniforms(seed, f"lt/{self.name}/{self.mode}", start, start + n, 2 * NUM_LATENTS)
        out32 = latents.copy()
        for col, name in zip(self.columns, self.latents):
            mech = None if scm is None else scm.mechanisms[name]
            if mech is not None and mech.distribution == "constant" and scm is not None and \
                    scm.scene == "multimodal3dident":
                continue  # its z stays 0, as in the release (Causal3DIdent's LTs keep their recorded behaviour)
            if mech is not None and mech.distribution == "discrete":
                out32[:, col] = _discrete_step(u[col], latents[:, col], mech.values, mech.weights, self.sigma)
                continue
            low, high = _bounds(scm, name)
            out32[:, col] = truncnorm_ppf(u[col], latents[:, col], self.sigma, low, high)
        if self.mode == "interventional":
            assert scm is not None
            descendants = scm.descendants(self.latents)
            if descendants:
                out32 = scm.resample(descendants, out32, np.asarray(classes), u[NUM_LATENTS:])
        return out32

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "latents": list(self.latents), "sigma": self.sigma, "mode": self.mode}


def parse_transformations(specs: str | Iterable[str] | None, sigma: float = PAPER_SIGMA,
                          mode: str = "independent") -> list[LatentTransformation]:
    """A comma-separated list (or iterable) of transformation specs, duplicates removed."""
    if specs is None:
        return []
    items = [s for s in (specs.split(",") if isinstance(specs, str) else specs) if s and s.strip()]
    out: list[LatentTransformation] = []
    for item in items:
        lt = LatentTransformation.parse(item.strip(), sigma, mode)
        if lt.name not in [o.name for o in out]:
            out.append(lt)
    return out


def _tokens(spec: str) -> list[str]:
    text = spec.strip().replace("+", " ").replace(",", " ")
    tokens: list[str] = []
    for word in text.split():
        if word in LATENT_NAMES or word in LATENT_GROUPS:
            tokens.append(word)
        else:
            tokens.extend(w for w in word.split("_") if w)  # 'positions_hues' -> positions, hues
    if not tokens:
        raise ConfigError(f"empty latent transformation {spec!r}; use e.g. 'hues' or 'positions+hues'")
    return tokens


def _discrete_step(u: np.ndarray, z: np.ndarray, values: tuple[float, ...] | None, weights: tuple[float, ...] | None,
                   sigma: float) -> np.ndarray:
    """The truncated normal's analogue on a discrete latent's values: value v with probability proportional to
    weight(v) * exp(-(v - z)^2 / (2 sigma^2)), so grid positions stay on the grid (Multimodal3DIdent)."""
    assert values is not None and weights is not None
    v = np.asarray(values, dtype=np.float64)
    p = np.asarray(weights, dtype=np.float64)[None, :] * np.exp(-0.5 * ((v[None, :] - z[:, None]) / sigma) ** 2)
    cdf = np.cumsum(p, axis=1)
    cdf /= cdf[:, -1:]
    pick = np.minimum((u[:, None] >= cdf).sum(axis=1), len(v) - 1)
    return v[pick]


def _bounds(scm: SCM | None, name: str) -> tuple[float, float]:
    if scm is None:
        return -1.0, 1.0
    mech = scm.mechanisms[name]
    if mech.distribution == "constant":
        return -1.0, 1.0
    return mech.low, mech.high
