"""CITRIS's triplets of a sequence: two frames, and a third whose latents mix theirs by a random mask.

As CITRIS's ``triplet_generation_causal3dident.py``: both source frames are uniform over the sequence; the mask
has one entry per target column (0: the first frame's value, 1: the second's) and is drawn again while it is all
0 or all 1; excluded columns (the preset's ``interventions.exclude``) copy the mask of the first column that is
not excluded; coarse masks give each of the preset's ``interventions.groups`` its first member's entry. The class
column mixes the shape. Triplet i reads index i of counter-based noise streams (``causal3dident.noise``), so a
shard's triplets are those of one whole run.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Literal

import h5py
import numpy as np

from . import noise
from .errors import ConfigError
from .temporal import CLASS_TARGET, TemporalModel

STREAMS = {"sources": "triplets/sources", "mask": "triplets/mask"}
MAX_DRAWS = 64
"""Masks drawn per triplet before giving up (a non-degenerate one comes with probability >= 1/2 per draw)."""
Masks = Literal["fine", "coarse"]


@dataclasses.dataclass(frozen=True)
class Triplets:
    """Triplets [start, stop): source frames int64 [n, 2], masks uint8 [n, T] (the model's target columns),
    latents float64 [n, 3, 10] and classes int64 [n, 3] (model order) of the first, second and mixed frame."""

    sources: np.ndarray
    masks: np.ndarray
    latents: np.ndarray
    classes: np.ndarray


def sample_triplets(model: TemporalModel, latents: np.ndarray, classes: np.ndarray, seed: int, start: int, stop: int,
                    masks: Masks = "fine") -> Triplets:
    """Triplets ``start .. stop - 1`` of the sequence (``latents`` [N, 10] in the preset's units, ``classes`` [N] in
    the model's order); ``masks``: fine (every column its own entry) or coarse (the preset's groups share one)."""
    n_frames = len(latents)
    if n_frames < 2:
        raise ConfigError(f"triplets need a sequence of at least 2 frames, got {n_frames}")
    u = noise.uniforms(seed, STREAMS["sources"], start, stop, 2)
    sources = np.minimum((u.T * n_frames).astype(np.int64), n_frames - 1)
    mask = _masks(model, seed, start, stop, masks)
    first, second = latents[sources[:, 0]], latents[sources[:, 1]]
    mixed = np.where(mask[:, :latents.shape[1]] == 0, first, second)
    cls = np.asarray(classes, dtype=np.int64)[sources]
    class_col = model.target_names.index(CLASS_TARGET)
    mixed_cls = np.where(mask[:, class_col] == 0, cls[:, 0], cls[:, 1])
    return Triplets(sources=sources, masks=mask, latents=np.stack([first, second, mixed], axis=1),
                    classes=np.concatenate([cls, mixed_cls[:, None]], axis=1))


def _masks(model: TemporalModel, seed: int, start: int, stop: int, masks: Masks) -> np.ndarray:
    names = model.target_names
    iv = model.spec.interventions
    excluded = [names.index(c) for c in iv.exclude]
    kept = next(i for i in range(len(names)) if i not in excluded)
    groups = [[names.index(c) for c in g] for g in iv.groups] if masks == "coarse" else []
    out = np.zeros((stop - start, len(names)), dtype=np.uint8)
    todo = np.ones(stop - start, dtype=bool)
    for draw in range(MAX_DRAWS):
        bits = (noise.uniforms(seed, STREAMS["mask"], start, stop, len(names), key=(draw,)).T < 0.5).astype(np.uint8)
        bits[:, excluded] = bits[:, [kept]]
        for g in groups:
            bits[:, g] = bits[:, [g[0]]]
        out[todo] = bits[todo]
        total = out.sum(axis=1)
        todo = (total == 0) | (total == len(names))
        if not todo.any():
            return out
    raise ConfigError(f"no mask mixing two frames found in {MAX_DRAWS} draws: the preset's target columns leave "
                      f"no choice (every column excluded or in one group)")


def recorded_triplets(config: Mapping[str, Any], seed: int, start: int, stop: int) -> tuple[TemporalModel, Triplets]:
    """Triplets ``start .. stop - 1`` that a triplet file's config and seed record, drawn from the sequence that its
    config and seed generate."""
    from .temporal_store import model_from_config  # late: temporal_store reads files, this module does not

    source = config["sequence"]
    model = model_from_config(source["config"])
    seq = model.sample(int(source["seed"]), 0, int(source["config"]["num_samples_total"]))
    return model, sample_triplets(model, seq.latents, seq.classes, seed, start, stop, config["triplets"]["masks"])


def regeneration_problems(f: h5py.File, config: Mapping[str, Any]) -> list[str]:
    """What differs between a triplet file and the triplets its config and seed generate (``c3di verify``)."""
    from .temporal import to_package_classes
    from .temporal_store import normalised

    n = int(f.attrs["num_samples"])
    start = int(json.loads(f.attrs["shard"])["start"]) if "shard" in f.attrs else 0
    model, t = recorded_triplets(config, int(f.attrs["seed"]), start, start + n)
    package = to_package_classes(model, t.classes)
    expected = {"triplets/sources": t.sources, "triplets/masks": t.masks, "triplets/latents": t.latents,
                "triplets/classes": package, "latents": normalised(model, t.latents[:, 2]), "classes": package[:, 2]}
    differ = [f"/{name}" for name, array in expected.items()
              if name not in f or not np.array_equal(f[name][...], array)]
    return [f"{', '.join(differ)} differ from what the recorded config and seed generate"] if differ else []
