"""From a preset, interventions and LT names to a latents dataset file (whole, sharded, merged).

The config recorded in every file is enough to regenerate its latents exactly: the full SCM as a
preset mapping, the interventions, the transformations, the seed and the noise block size.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from . import noise
from . import codecs
from .errors import ConfigError, DatasetFileError
from .scm import SCM, Intervention, load_preset
from .store import atomic_h5, open_dataset, read_config, write_core, write_pair_latents
from .transformations import PAPER_SIGMA, LatentTransformation, parse_transformations

GENERATOR_VERSION = 1


def build_config(preset: str | os.PathLike[str] | SCM, n: int, *, interventions: Iterable[str] = (),
                 pairs: str | Iterable[str] | None = None, lt_sigma: float = PAPER_SIGMA,
                 lt_mode: str = "independent") -> dict[str, Any]:
    """The JSON-able config of a dataset: validated here so that errors surface before any work."""
    if n <= 0:
        raise ConfigError(f"--n must be a positive number of samples, got {n}")
    scm = preset if isinstance(preset, SCM) else load_preset(preset)
    parsed = [Intervention.parse(s) for s in interventions]
    scm.intervene(parsed)  # validates
    return {
        "generator_version": GENERATOR_VERSION,
        "preset": scm.to_dict(),
        "interventions": [iv.spec for iv in parsed],
        "pairs": [lt.to_dict() for lt in parse_transformations(pairs, lt_sigma, lt_mode)],
        "num_samples_total": int(n),
        "noise_block": noise.BLOCK,
    }


def scm_from_config(config: Mapping[str, Any]) -> SCM:
    """The SCM a config samples from: the recorded preset with its interventions applied."""
    base = SCM.from_dict(config["preset"], source="recorded config")
    return base.intervene([Intervention.parse(s) for s in config.get("interventions", [])])


def transformations_from_config(config: Mapping[str, Any]) -> list[LatentTransformation]:
    return [LatentTransformation(p["name"], tuple(p["latents"]), float(p["sigma"]), p["mode"])
            for p in config.get("pairs", [])]


def latents_for_config(config: Mapping[str, Any], seed: int, start: int, count: int) -> dict[str, Any]:
    """Anchors and transformed latents for sample indices [start, start + count)."""
    if config.get("noise_block", noise.BLOCK) != noise.BLOCK:
        raise ConfigError(f"this config was made with noise block {config['noise_block']}, "
                          f"this package uses {noise.BLOCK}; use the causal3dident version that wrote it")
    scm = scm_from_config(config)
    latents, classes = scm.sample(count, seed, start)
    pairs = {lt.name: lt.apply(latents, classes, seed=seed, start=start, scm=scm)
             for lt in transformations_from_config(config)}
    return {"latents": latents, "classes": classes, "indices": np.arange(start, start + count, dtype=np.int64),
            "pairs": pairs}


def shard_range(n: int, shard: int | None, num_shards: int | None) -> tuple[int, int]:
    """Index range [start, stop) of shard ``shard`` of ``num_shards`` (contiguous, sizes differ by <= 1)."""
    if shard is None and num_shards is None:
        return 0, n
    if shard is None or num_shards is None:
        raise ConfigError("--shard and --num-shards go together (e.g. --shard 0 --num-shards 4)")
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ConfigError(f"--shard must be in 0..{num_shards - 1} for --num-shards {num_shards}, got {shard}")
    if num_shards > n:  # some shards would hold no sample: refused for every shard of such a job
        empty = [i for i in range(num_shards) if n * i // num_shards == n * (i + 1) // num_shards]
        which = (f"shard {shard} would be empty" if shard in empty else
                 f"shard{'s' if len(empty) > 1 else ''} {', '.join(map(str, empty))} would be empty")
        raise ConfigError(f"--num-shards {num_shards} is more than the {n} samples: {which}; "
                          f"use --num-shards {n} or fewer")
    return n * shard // num_shards, n * (shard + 1) // num_shards


def write_latents_file(path: str | os.PathLike[str], config: Mapping[str, Any], seed: int, *,
                       shard: int | None = None, num_shards: int | None = None,
                       overwrite: bool = False) -> Path:
    """Generate the latents (and pair latents) of ``config`` and write a new dataset file."""
    n = int(config["num_samples_total"])
    start, stop = shard_range(n, shard, num_shards)
    data = latents_for_config(config, seed, start, stop - start)
    with atomic_h5(path, overwrite) as f:
        write_core(f, latents=data["latents"], classes=data["classes"], indices=data["indices"],
                   config=dict(config), seed=seed)
        if num_shards is not None:
            f.attrs["shard"] = json.dumps({"index": shard, "count": num_shards, "start": start, "stop": stop})
        for lt in transformations_from_config(config):
            write_pair_latents(f, lt.name, data["pairs"][lt.name], lt.to_dict())
    return Path(path)


def merge_files(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *,
                overwrite: bool = False, block: int = 1024) -> Path:
    """Concatenate shard files (same config and seed, consecutive index ranges) into one file."""
    if not paths:
        raise ConfigError("nothing to merge: give the shard files")
    files = [open_dataset(p) for p in paths]
    try:
        files.sort(key=lambda f: int(f["index"][0]) if len(f["index"]) else 0)
        _check_mergeable(files)
        with atomic_h5(out, overwrite) as dst:
            first = files[0]
            for key, value in first.attrs.items():
                if key not in ("complete", "shard"):
                    dst.attrs[key] = value
            dst.attrs["num_samples"] = sum(int(f.attrs["num_samples"]) for f in files)
            if "num_rendered" in first.attrs:
                dst.attrs["num_rendered"] = sum(int(f.attrs.get("num_rendered", 0)) for f in files)
            for name in _dataset_names(first):
                _concat(dst, [f[name] for f in files], name, block)
            for name in _group_names(first):
                dst.require_group(name).attrs.update(dict(first[name].attrs))
    finally:
        for f in files:
            f.close()
    return Path(out)


def _check_mergeable(files: list[h5py.File]) -> None:
    first = files[0]
    config, seed = read_config(first), int(first.attrs["seed"])
    names = _dataset_names(first)
    expected_start = int(first["index"][0]) if len(first["index"]) else 0
    for f in files:
        if read_config(f) != config or int(f.attrs["seed"]) != seed:
            raise DatasetFileError(f"{f.filename} was made with another config or seed than {first.filename}; "
                                   f"merge only shards of one job")
        if _dataset_names(f) != names:
            raise DatasetFileError(f"{f.filename} holds other datasets than {first.filename}; "
                                   f"finish rendering every shard before merging")
        index = f["index"][...]
        if len(index) and index[0] != expected_start:
            raise DatasetFileError(f"{f.filename} starts at sample {index[0]}, expected {expected_start}: "
                                   f"a shard is missing or given twice")
        expected_start += len(index)


def _dataset_names(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return sorted(names)


def _group_names(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Group) else None)
    return sorted(names)


def _concat(dst: h5py.File, sources: list[h5py.Dataset], name: str, block: int) -> None:
    first = sources[0]
    total = sum(s.shape[0] for s in sources)
    chunks = first.chunks if first.chunks and total >= first.chunks[0] else None
    if first.chunks and chunks is None and total > 0:
        chunks = (total, *first.chunks[1:])
    lz4 = codecs.codec_of(first) == "lz4"  # re-encoded as LZ4-HC chunks, as the shards were
    filters = codecs.filter_args("lz4") if lz4 else {
        "compression": first.compression, "compression_opts": first.compression_opts, "shuffle": first.shuffle}
    out = dst.create_dataset(name, shape=(total, *first.shape[1:]), dtype=first.dtype, chunks=chunks, **filters)
    out.attrs.update(dict(first.attrs))
    offset = 0
    for src in sources:
        for i in range(0, src.shape[0], block):
            rows = src[i:i + block]
            if lz4:
                codecs.write_images(out, offset + i, rows)
            else:
                out[offset + i: offset + i + len(rows)] = rows
        offset += src.shape[0]
