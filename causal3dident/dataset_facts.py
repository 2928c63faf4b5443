"""What a data card says about a dataset, gathered once from a dataset file or from a preset.

Cards, the Croissant file and the figures all read a ``DatasetFacts``, so they agree with each
other and with the data: a file's card uses its recorded config, sizes, checksums and latents; a
preset's card describes the canonical release (250,000 train and 25,000 test images at 224 px).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError
from .file_hash import sha256_of
from .generate import scm_from_config
from .latents import (CLASS_NAMES, HUE_SCALE, LATENT_NAMES, LATENT_RANGE, NUM_CLASSES, POSITION_SCALE,
                      ROTATION_SCALE, SCENE_UNITS, SPOT_ANGLE_SCALE)
from .scm import SCM, Mechanism, load_preset
from .store import describe, read_latents

CANONICAL_SPLITS: tuple[tuple[str, int], ...] = (("train", 250_000), ("test", 25_000))
MULTIMODAL_SPLITS: tuple[tuple[str, int], ...] = (("train", 125_000), ("val", 10_000), ("test", 10_000))
"""Multimodal3DIdent's release (Zenodo 7678231): the canonical splits of a preset of its scene."""
"""The original release's splits (von Kügelgen et al., 2021)."""
CANONICAL_RESOLUTION = 224
CANONICAL_STATS_SEED = 0
CANONICAL_RENDER_SETTINGS: dict[str, Any] = {
    "engine": "Blender Cycles", "samples": 512, "denoising": True, "max_bounces": 0,
    "resolution": CANONICAL_RESOLUTION, "view_transform": "Standard", "format": "PNG",
}
"""The original renderer's settings (cl-ica tools/3dident), which the canonical release follows."""

_MESH_FIELDS = ("class_index", "name", "origin", "license", "url", "sha256")

# Raw -> scene scale and the period of the scene quantity (None: not periodic), per latent.
_SCALE_PERIOD: dict[str, tuple[float, float | None]] = {
    **{n: (POSITION_SCALE, None) for n in ("pos_x", "pos_y", "pos_z")},
    **{n: (ROTATION_SCALE, 2 * math.pi) for n in ("rot_alpha", "rot_beta", "rot_gamma")},
    "spot_pos": (SPOT_ANGLE_SCALE, 2 * math.pi),
    **{n: (HUE_SCALE, 1.0) for n in ("hue_obj", "hue_spot", "hue_bg")},
}


@dataclass(frozen=True)
class FileFacts:
    """A file the card describes: its name relative to the card folder, size and checksum."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class SplitFacts:
    """One split: its name, number of samples and (for an actual dataset) its HDF5 file."""

    name: str
    num_examples: int
    file: FileFacts | None = None


@dataclass(frozen=True)
class DatasetFacts:
    """Everything the cards state about one dataset variant (``path``: its HDF5 file, if it is one)."""

    scm: SCM
    preset_name: str
    interventions: tuple[str, ...]
    pairs: tuple[dict[str, Any], ...]
    splits: tuple[SplitFacts, ...]
    resolution: int | None
    latents: np.ndarray
    classes: np.ndarray
    statistics_source: str
    seed: int | None = None
    render_settings: dict[str, Any] | None = None
    package_version: str = ""
    created: str = ""
    canonical: bool = False
    path: Path | None = None

    @property
    def num_examples(self) -> int:
        return sum(s.num_examples for s in self.splits)

    @property
    def has_images(self) -> bool:
        return self.resolution is not None

    def class_counts(self) -> dict[str, int]:
        """Number of samples per class name."""
        counts = np.bincount(self.classes, minlength=NUM_CLASSES)
        return {name: int(k) for name, k in zip(CLASS_NAMES, counts)}

    def latent_statistics(self) -> list[dict[str, float | str]]:
        """Per latent: mean, standard deviation, minimum and maximum of the raw values."""
        z = self.latents.astype(np.float64)
        return [{"name": n, "mean": float(z[:, j].mean()), "std": float(z[:, j].std()),
                 "min": float(z[:, j].min()), "max": float(z[:, j].max())} for j, n in enumerate(LATENT_NAMES)]


def facts_from_file(path: str | os.PathLike[str], split: str | None = None) -> DatasetFacts:
    """Facts of one dataset file: its config, size, checksum and latents (``split`` defaults to its stem)."""
    path = Path(path)
    info = describe(path)
    latents, classes = read_latents(path)
    config = info["config"]
    temporal = config.get("temporal") or config.get("sequence", {}).get("config", {}).get("temporal")
    if temporal is not None:  # causal3dident.temporal_store / triplets
        what = "triplets of a sequence" if "triplets" in config else "a sequence"
        raise ConfigError(f"{path} holds {what} of the temporal preset {temporal.get('name', 'temporal')!r}, not "
                          f"i.i.d. samples of an SCM; describe it with causal3dident.temporal_card.temporal_facts (c3di "
                          f"card and c3di figures do; docs/temporal.md)")
    if "preset" not in config:
        original = "multimodal3dident" if config.get("scene") == "multimodal3dident" else "causal3dident"
        raise ConfigError(f"{path} records no SCM (converted or hand-made data), so its card cannot state the "
                          f"causal model; describe the original release's model with --preset {original}")
    images = info["images"]
    settings = info.get("render_settings")
    return DatasetFacts(
        scm=scm_from_config(config),
        preset_name=str(config.get("preset", {}).get("name", config.get("source", "unknown"))),
        interventions=tuple(config.get("interventions", [])),
        pairs=tuple(config.get("pairs", [])),
        splits=(SplitFacts(split or path.stem, int(info["num_samples"]),
                           FileFacts(path.name, path.stat().st_size, sha256_of(path))),),
        resolution=None if images is None else int(images[0]),
        latents=latents,
        classes=classes,
        statistics_source=f"all {len(latents):,} samples of {path.name}",
        seed=int(info["seed"]),
        render_settings=settings if isinstance(settings, dict) else None,
        package_version=info["package_version"],
        created=info["created"],
        path=path,
    )


def facts_from_preset(preset: str | os.PathLike[str] = "causal3dident") -> DatasetFacts:
    """Facts of the canonical release generated from ``preset``; statistics from its train-size sample."""
    from . import __version__

    scm = load_preset(preset)
    splits = MULTIMODAL_SPLITS if scm.scene == "multimodal3dident" else CANONICAL_SPLITS
    n_train = splits[0][1]
    latents, classes = scm.sample(n_train, CANONICAL_STATS_SEED)
    return DatasetFacts(
        scm=scm, preset_name=scm.name, interventions=(), pairs=(),
        splits=tuple(SplitFacts(name, n) for name, n in splits),
        resolution=CANONICAL_RESOLUTION, latents=latents, classes=classes,
        statistics_source=f"{n_train:,} samples drawn from the SCM with seed {CANONICAL_STATS_SEED}",
        render_settings=CANONICAL_RENDER_SETTINGS, package_version=__version__, canonical=True,
    )


# -- meshes ----------------------------------------------------------------------------------------
def meshes() -> list[dict[str, Any]]:
    """Origins and licences of the seven meshes, from the renderer's asset manifest (package data)."""
    data = json.loads(resources.files("causal3dident.render").joinpath("assets_manifest.json").read_text())
    entries = data["meshes"] if isinstance(data, dict) else data
    rows = [{k: m.get(k) for k in _MESH_FIELDS} for m in entries]
    return sorted(rows, key=lambda m: m["class_index"])


# -- factors ---------------------------------------------------------------------------------------
def latent_type(name: str) -> str:
    """``circular`` when the latent's raw range covers a full period of its scene quantity (so it wraps),
    else ``continuous``: rotations, spotlight angle and hues span only half a turn, so they do not wrap."""
    scale, period = _SCALE_PERIOD[name]
    span = (LATENT_RANGE[1] - LATENT_RANGE[0]) * scale
    return "circular" if period is not None and span >= period - 1e-12 else "continuous"


def _bounds(mechanism: Mechanism) -> tuple[float, float]:
    if mechanism.distribution == "constant":
        assert mechanism.value is not None
        return mechanism.value, mechanism.value
    return mechanism.low, mechanism.high


def structural_equation(mechanism: Mechanism) -> str:
    """The mechanism as one line, e.g. ``pos_z := TruncNormal(mean = 0, sigma = 0.5, [-1, 1])``."""
    name = mechanism.name
    if mechanism.distribution == "constant":
        return f"{name} := {mechanism.value:g}"
    if mechanism.distribution == "discrete":
        assert mechanism.values is not None
        return f"{name} := Discrete({{{', '.join(f'{v:g}' for v in mechanism.values)}}})"
    if mechanism.window is not None:
        return f"{name} := Uniform[{mechanism.window[0].source}, {mechanism.window[1].source}]"
    bounds = f"[{mechanism.low:g}, {mechanism.high:g}]"
    if mechanism.distribution == "uniform":
        return f"{name} := Uniform{bounds}"
    mean = mechanism.to_dict()["mean"]
    if isinstance(mean, dict):
        others = ", ".join(p for p in mechanism.parents if p != "class")
        mean_text = f"mean[class]({others})" if others else "mean[class]"
    else:
        mean_text = f"{mean:g}" if isinstance(mean, float) else str(mean)
    return f"{name} := TruncNormal(mean = {mean_text}, sigma = {mechanism.sigma:g}, {bounds})"


def factor_table(scm: SCM) -> list[dict[str, Any]]:
    """One entry per factor (class, then the ten latents in column order), as factors.yaml lists them."""
    weights = [round(float(w), 6) for w in scm.class_weights]
    rows: list[dict[str, Any]] = [{
        "name": "class", "index": None, "type": "discrete", "values": dict(enumerate(CLASS_NAMES)),
        "distribution": "categorical", "parents": [],
        "structural_equation": "class := Categorical(" + ", ".join(f"{w:g}" for w in weights) + ")",
        "weights": dict(zip(CLASS_NAMES, weights)),
    }]
    for index, name in enumerate(LATENT_NAMES):
        mechanism = scm.mechanisms[name]
        low, high = _bounds(mechanism)
        scale = _SCALE_PERIOD[name][0]
        row: dict[str, Any] = {
            "name": name, "index": index, "type": latent_type(name),
            "range": [low, high], "scene_units": SCENE_UNITS[name],
            "scene_range": [round(low * scale, 6), round(high * scale, 6)],
            "distribution": mechanism.distribution, "parents": list(mechanism.parents),
            "structural_equation": structural_equation(mechanism),
        }
        if mechanism.distribution == "truncnorm":
            spec = mechanism.to_dict()
            row.update(sigma=spec["sigma"], mean=spec["mean"])
        rows.append(row)
    return rows
