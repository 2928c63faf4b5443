"""Sequences of a temporal preset in a dataset file, beside the ordinary latents.

A sequence file is an ordinary dataset file (``store.write_core``: /latents, /classes, /index, provenance)
whose frames are the samples, plus the group ``/sequence``:

- ``/sequence/latents`` float64 [N, 10]: the latents in the preset's own units (CITRIS's: positions in
  [-2, 2], angles and hues in radians in [0, 2 pi)), columns ``latents.LATENT_NAMES``;
- ``/sequence/targets`` uint8 [N, T]: row t marks the columns intervened in the step t-1 -> t (row 0: none),
  column names in its ``names`` attribute (the ten latents, ``class``, then the preset's extra columns).

/latents holds the same values mapped linearly from each latent's domain onto [-1, 1] (constants as they
are), so the file passes every check of an ordinary dataset; /classes holds this package's class labels.
The config records the temporal preset under ``temporal`` (not ``preset``), the frame count and the noise
block, so ``c3di verify`` regenerates the sequence from the config and the seed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from . import diskspace, noise
from .errors import ConfigError, DamagedFileError, DatasetFileError
from .latents import LATENT_NAMES
from .scm import load_preset_dict
from .splits import choose_split
from .store import atomic_h5, check_output, read_config, write_core
from .temporal import Frames, TemporalModel, is_temporal, to_package_classes
from .temporal_schema import FixedSpec

GENERATOR_VERSION = 1
GROUP = "sequence"


def temporal_preset(preset: str | os.PathLike[str]) -> TemporalModel | None:
    """The temporal model of a preset name or file, or None where the preset is an ordinary SCM."""
    data = load_preset_dict(preset)
    if not is_temporal(data):
        return None
    return TemporalModel.from_dict(data, source=f"preset {data['name']!r}")


def sequence_config(model: TemporalModel, n: int) -> dict[str, Any]:
    """The JSON-able config of a sequence of ``n`` frames (checked here, before any work)."""
    if n <= 0:
        raise ConfigError(f"--n must be a positive number of frames, got {n}")
    for name, mech in model.mechanisms.items():
        if isinstance(mech.spec, FixedSpec) and abs(mech.spec.value) > 1:
            raise ConfigError(f"{model.source}: the constant {name} = {mech.spec.value} is outside [-1, 1], where "
                              f"/latents keeps constants as they are; use a value in [-1, 1]")
    return {"generator_version": GENERATOR_VERSION, "temporal": model.to_dict(), "num_samples_total": int(n),
            "noise_block": noise.BLOCK}


def model_from_config(config: Mapping[str, Any]) -> TemporalModel:
    if config.get("noise_block", noise.BLOCK) != noise.BLOCK:
        raise ConfigError(f"this config was made with noise block {config['noise_block']}, "
                          f"this package uses {noise.BLOCK}; use the causal3dident version that wrote it")
    return TemporalModel.from_dict(config["temporal"], source="recorded config")


def normalised(model: TemporalModel, latents: np.ndarray) -> np.ndarray:
    """Latents in the preset's units -> [-1, 1] (each domain mapped linearly; constants as they are)."""
    out = np.array(latents, dtype=np.float64)
    for j, name in enumerate(LATENT_NAMES):
        spec = model.mechanisms[name].spec
        if not isinstance(spec, FixedSpec):
            low, high = spec.domain
            out[:, j] = np.clip(2 * (out[:, j] - low) / (high - low) - 1, -1.0, 1.0)
    return out.astype(np.float32)


def write_sequence_file(path: str | os.PathLike[str], model: TemporalModel, n: int, seed: int, *,
                        overwrite: bool = False, split: str | None = None, shard: int | None = None,
                        num_shards: int | None = None) -> Path:
    """Sample ``n`` frames of ``model`` from ``seed`` and write a new dataset file (see the module's docstring);
    ``shard`` of ``num_shards``: only its frames [start, stop), replayed from frame 0 (a frame reads the one before
    it; latents are cheap), so ``c3di merge`` of the shards gives the file of one run."""
    from .generate import latents_job_id, shard_range, shard_record  # late: generate imports the SCM machinery

    split = choose_split(split, path)
    config = sequence_config(model, n)
    start, stop = shard_range(n, shard, num_shards)
    size = sequence_file_size(model, stop - start)
    check_output(path, overwrite)
    diskspace.check_free_space(path, size)
    whole = model.sample(seed, 0, stop)
    rows = slice(start, stop)
    frames = Frames(start, whole.latents[rows], whole.classes[rows], whole.targets[rows])
    with atomic_h5(path, overwrite, size_hint=size) as f:
        write_core(f, latents=normalised(model, frames.latents), classes=to_package_classes(model, frames.classes),
                   indices=np.arange(start, stop, dtype=np.int64), config=config, seed=seed, split=split)
        if num_shards is not None:
            f.attrs["shard"] = json.dumps(shard_record(latents_job_id(config, seed), shard, num_shards, start, stop,
                                                       n))
        write_sequence(f, model, frames)
    return Path(path)


def sequence_file_size(model: TemporalModel, n: int) -> int:
    """Bytes a sequence file of ``n`` frames needs at most (its free-space check): per frame the core datasets, the
    native latents (float64) and the intervention targets (one byte each)."""
    from .generate import CORE_ROW_BYTES, rows_file_size

    return rows_file_size(n, CORE_ROW_BYTES + 8 * len(LATENT_NAMES) + len(model.target_names))


def write_sequence(f: h5py.File, model: TemporalModel, frames: Frames) -> None:
    group = f.create_group(GROUP)
    ds = group.create_dataset("latents", data=frames.latents.astype(np.float64))
    ds.attrs["names"] = list(LATENT_NAMES)
    ds = group.create_dataset("targets", data=frames.targets.astype(np.uint8))
    ds.attrs["names"] = list(model.target_names)
    group.attrs["class_names"] = list(model.class_names)
    group.attrs["preset"] = model.name


def is_sequence_file(f: h5py.File) -> bool:
    """Whether a dataset file holds the frames of a temporal preset (its config records one)."""
    return "temporal" in read_config(f)


def read_sequence(f: h5py.File) -> dict[str, Any]:
    """A sequence file's native latents, targets and their column names. Files rendered from a sequence file
    (``c3di render seq.h5``) keep only /latents and /classes: their sequence is regenerated from the recorded
    config and seed, and refused (DamagedFileError) unless it gives exactly their /latents and /classes."""
    if GROUP in f:
        group = f[GROUP]
        return {"latents": group["latents"][...], "targets": group["targets"][...],
                "target_names": [_str(x) for x in group["targets"].attrs["names"]]}
    if not is_sequence_file(f):
        raise DatasetFileError(f"{f.filename} holds no sequence; sample one with c3di latents --preset "
                               f"temporal_causal3dident --n FRAMES --out seq.h5")
    model, frames = _regenerate(f)
    if not _core_matches(f, model, frames):
        raise DamagedFileError(f"{f.filename}: /latents or /classes differ from the sequence its config and seed "
                               f"generate; run c3di verify on it and sample the sequence again")
    return {"latents": frames.latents, "targets": frames.targets, "target_names": list(model.target_names)}


def regeneration_problems(f: h5py.File, config: Mapping[str, Any]) -> list[str]:
    """What differs between the file and the sequence its config and seed generate (``c3di verify``)."""
    model, frames = _regenerate(f)
    problems = []
    if GROUP in f:
        stored = read_sequence(f)
        if not np.array_equal(stored["latents"], frames.latents) or \
                not np.array_equal(stored["targets"], frames.targets):
            problems.append(f"/{GROUP}/latents or /{GROUP}/targets differ from what the recorded config and seed "
                            f"generate")
    if not _core_matches(f, model, frames):
        problems.append("/latents or /classes differ from what the recorded config and seed generate")
    return problems


def _regenerate(f: h5py.File) -> tuple[TemporalModel, Frames]:
    """The frames the file's config and seed generate: all of them, or a shard's rows (``c3di render --shard``)."""
    model = model_from_config(read_config(f))
    n = int(f.attrs["num_samples"])
    start = int(json.loads(f.attrs["shard"])["start"]) if "shard" in f.attrs else 0
    frames = model.sample(int(f.attrs["seed"]), 0, start + n)
    return model, Frames(start, frames.latents[start:], frames.classes[start:], frames.targets[start:])


def _core_matches(f: h5py.File, model: TemporalModel, frames: Frames) -> bool:
    return (np.array_equal(f["latents"][...], normalised(model, frames.latents))
            and np.array_equal(f["classes"][...], to_package_classes(model, frames.classes)))


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
