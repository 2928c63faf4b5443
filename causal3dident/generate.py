"""From a preset, interventions and LT names to a latents dataset file (whole, sharded, merged).

The config recorded in every file is enough to regenerate its latents exactly: the full SCM as a
preset mapping, the interventions, the transformations, the seed and the noise block size.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from . import codecs, diskspace, noise
from .errors import ConfigError, DatasetFileError
from .latents import CLASS_NAMES, NUM_CLASSES, NUM_LATENTS
from .multimodal_store import text_bytes, text_tables
from .scm import SCM, Intervention, load_preset
from .splits import choose_split
from .store import atomic_h5, check_output, open_dataset, write_core, write_pair_latents
from .transformations import PAPER_SIGMA, LatentTransformation, parse_transformations

GENERATOR_VERSION = 1
ROW_CHUNK = 65536
"""Rows per HDF5 chunk of /latents, /classes, /index and pair latents (as ``store.write_core`` writes them)."""


def build_config(preset: str | os.PathLike[str] | SCM, n: int, *, interventions: Iterable[str] = (),
                 pairs: str | Iterable[str] | None = None, lt_sigma: float = PAPER_SIGMA,
                 lt_mode: str = "independent", balanced_classes: bool = False) -> dict[str, Any]:
    """The JSON-able config of a dataset: validated here so that errors surface before any work.

    ``balanced_classes``: every class the SCM draws gets exactly n / k samples (k such classes), in a
    seeded random order (``balanced_class_labels``); recorded as ``balanced_classes: true``.
    """
    if n <= 0:
        raise ConfigError(f"--n must be a positive number of samples, got {n}")
    scm = preset if isinstance(preset, SCM) else load_preset(preset)
    parsed = [Intervention.parse(s) for s in interventions]
    intervened = scm.intervene(parsed)  # validates
    if balanced_classes:
        balanced_support(intervened.class_weights, n)
    text_pairs, lt_specs = split_text_pairs(pairs, scm.scene)
    config = {
        "generator_version": GENERATOR_VERSION,
        "preset": scm.to_dict(),
        "interventions": [iv.spec for iv in parsed],
        "pairs": [lt.to_dict() for lt in _transformations(lt_specs, lt_sigma, lt_mode, scm.scene)],
        "num_samples_total": int(n),
        "noise_block": noise.BLOCK,
    }
    if balanced_classes:  # only then: the configs (and job ids) of files drawn the usual way stay as they were
        config["balanced_classes"] = True
    if text_pairs:  # likewise: Multimodal3DIdent's text-only pairs, recorded only where asked for
        config["text_pairs"] = text_pairs
    return config


TEXT_PAIR_HINT = "text-only pairs of --preset multimodal3dident: phrasing, palette"


def split_text_pairs(pairs: str | Iterable[str] | None, scene: str) -> tuple[list[str], list[str]]:
    """``--pairs`` items split into Multimodal3DIdent's text-only pairs (``multimodal_text.PAIR_CHANGES``) and
    latent transformations; a text pair is refused for another scene, or when joined to latents with '+'."""
    from .multimodal_text import PAIR_CHANGES

    items = [s.strip() for s in (pairs.split(",") if isinstance(pairs, str) else pairs or []) if s and s.strip()]
    text = [s for s in dict.fromkeys(items) if s in PAIR_CHANGES]
    for item in items:
        words = set(item.replace("+", " ").replace("_", " ").split())
        if item not in PAIR_CHANGES and words & set(PAIR_CHANGES):
            raise ConfigError(f"--pairs {item!r} joins a text-only pair to latents; a text pair changes only the "
                              f"text: give it as a pair of its own, e.g. --pairs {','.join(sorted(words))}")
    if text and scene != "multimodal3dident":
        raise ConfigError(f"--pairs {','.join(text)}: {' and '.join(text)} {'is a' if len(text) == 1 else 'are'} "
                          f"text-only pair{'s' * (len(text) > 1)} of Multimodal3DIdent's sentences; use --preset "
                          f"multimodal3dident, or drop {'it' if len(text) == 1 else 'them'}")
    return text, [s for s in items if s not in PAIR_CHANGES]


def _transformations(specs: list[str], sigma: float, mode: str, scene: str) -> list[LatentTransformation]:
    """``parse_transformations``, whose error also names the text pairs in a Multimodal3DIdent scene."""
    try:
        return parse_transformations(specs, sigma, mode)
    except ConfigError as exc:
        if scene != "multimodal3dident":
            raise
        raise ConfigError(f"{exc}; or the {TEXT_PAIR_HINT}") from None


BALANCED_STREAM = "classes/balanced"
"""Noise stream whose uniforms order the balanced class labels (one per sample)."""


def balanced_support(class_weights: np.ndarray, n: int) -> np.ndarray:
    """The classes a balanced draw of ``n`` samples uses (those of non-zero weight), after checking that the
    weights are equal and ``n`` divides among them; a ``ConfigError`` naming the fix otherwise."""
    weights = np.asarray(class_weights, dtype=np.float64)
    support = np.flatnonzero(weights > 0)
    if not np.allclose(weights[support], weights[support[0]], rtol=1e-9, atol=0):
        listed = ", ".join(f"{CLASS_NAMES[c]} {weights[c]:.3g}" for c in support)
        raise ConfigError(f"--balanced-classes gives every class the same count, but the class weights differ "
                          f"({listed}); make them equal (0 leaves a class out) or drop --balanced-classes")
    k = len(support)
    if n % k:
        lower, upper = n - n % k, n + k - n % k
        which = (f"the {k} classes" if k == NUM_CLASSES else
                 f"the {k} classes drawn ({', '.join(CLASS_NAMES[c] for c in support)})")
        raise ConfigError(f"--balanced-classes needs --n divisible by {which} for exactly equal counts; "
                          f"{n} is not: use --n {lower if lower else upper}" + (f" or {upper}" if lower else ""))
    return support


def balanced_class_labels(class_weights: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Classes int64 [n] of a balanced draw: n / k of each of the k classes of non-zero weight, shuffled.

    The order is the argsort of one counter-based uniform per sample (stream ``classes/balanced``), so it
    depends only on (seed, n, classes) and shard i of k is rows [start, stop) of it (1 byte + 16 bytes of
    scratch per sample of the whole job).
    """
    support = balanced_support(class_weights, n)
    labels = np.repeat(support.astype(np.int8), n // len(support))
    keys = noise.uniforms(seed, BALANCED_STREAM, 0, n, 1)[0]
    return labels[np.argsort(keys, kind="stable")].astype(np.int64)


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
    given = None
    if config.get("balanced_classes"):
        given = balanced_class_labels(scm.class_weights, int(config["num_samples_total"]), seed)[start:start + count]
    latents, classes = scm.sample(count, seed, start, classes=given)
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
                       overwrite: bool = False, split: str | None = None) -> Path:
    """Generate the latents (and pair latents) of ``config`` and write a new dataset file; ``split``: the split
    it records (default: the one ``path``'s name implies, else 'train'; ``causal3dident.splits``)."""
    split = choose_split(split, path)
    n = int(config["num_samples_total"])
    start, stop = shard_range(n, shard, num_shards)
    pairs = transformations_from_config(config)
    size = latents_file_size(stop - start, len(pairs), text_tables(config))
    check_output(path, overwrite)
    diskspace.check_free_space(path, size)  # before sampling: a full disk is one line, not minutes later
    data = latents_for_config(config, seed, start, stop - start)
    with atomic_h5(path, overwrite, size_hint=size) as f:
        write_core(f, latents=data["latents"], classes=data["classes"], indices=data["indices"],
                   config=dict(config), seed=seed, split=split)
        if num_shards is not None:
            f.attrs["shard"] = json.dumps(shard_record(latents_job_id(config, seed), shard, num_shards, start, stop,
                                                       n))
        for lt in pairs:
            write_pair_latents(f, lt.name, data["pairs"][lt.name], lt.to_dict())
    return Path(path)


def latents_file_size(n: int, num_pairs: int, num_text_tables: int = 0) -> int:
    """Bytes a latents file of ``n`` samples and ``num_pairs`` pairs needs at most (data plus HDF5's overhead);
    ``num_text_tables``: its Multimodal3DIdent sentence tables (``multimodal_store.text_tables``), if any."""
    return rows_file_size(n, CORE_ROW_BYTES + num_pairs * 4 * NUM_LATENTS) + text_bytes(n, num_text_tables)


CORE_ROW_BYTES = 4 * NUM_LATENTS + 8 + 8
"""Bytes per sample of what every dataset file holds (``store.write_core``): latents (float32), class and index (int64)."""


def rows_file_size(n: int, bytes_per_row: int) -> int:
    """Bytes a file of ``n`` rows of numbers needs at most: whole row chunks (HDF5 allocates them whole), plus 1 %
    and 256 KiB for HDF5's own structures. Latents files and sequence files share it."""
    rows = n if n <= ROW_CHUNK else -(-n // ROW_CHUNK) * ROW_CHUNK
    return int(rows * bytes_per_row * 1.01) + 256 * 1024


def latents_job_id(config: Mapping[str, Any], seed: int) -> str:
    """SHA-256 naming the job a shard belongs to: everything that decides its latents except the shard."""
    return hashlib.sha256(json.dumps({"config": config, "seed": int(seed)}, sort_keys=True).encode()).hexdigest()


def shard_record(job: str, shard: int | None, num_shards: int, start: int, stop: int, total: int) -> dict[str, Any]:
    """The ``shard`` attribute: which shard of how many of which job, and its rows [start, stop) of ``total``."""
    return {"job": job, "index": shard, "count": num_shards, "start": start, "stop": stop, "total": total}


def merge_files(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *,
                overwrite: bool = False, block: int = 1024) -> Path:
    """Concatenate the shard files of one job (any order) into one file.

    All or nothing: every shard of the job must be there exactly once, and the shards must agree in
    everything but their rows (config, seed, render settings, datasets and their shapes and codecs);
    otherwise one line names what is missing or what differs between which files, and nothing is written.
    """
    from .checksums import seal  # late: keeps 'c3di latents' from importing the neighbour search

    if not paths:
        raise ConfigError("nothing to merge: give the shard files")
    check_output(out, overwrite)
    files: list[h5py.File] = []
    try:
        for p in paths:
            files.append(open_dataset(p))
        files = _check_mergeable(files)
        size = sum(os.path.getsize(p) for p in paths) + 256 * 1024
        with atomic_h5(out, overwrite, size_hint=size) as dst:
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
            seal(dst, source="the shards")  # checks the shards' pixel checksums; the merged file's statistics
    finally:
        for f in files:
            f.close()
    return Path(out)


SHARD_KEYS = ("index", "count", "start", "stop")
SAME_ATTRS = ("format", "schema_version", "seed", "config", "render_settings", "blender_version", "split")
"""Root attributes every shard of one job has alike (the rest, e.g. 'created', differ per file)."""


def _check_mergeable(files: list[h5py.File]) -> list[h5py.File]:
    """``files`` in shard order, after checking they are every shard of one job, each once, and alike."""
    records = [_shard_of(f) for f in files]
    first = files[0]
    for f, rec in zip(files[1:], records[1:]):
        differences = _differences_between(first, f, records[0], rec)
        if differences:
            listed = ", ".join(f"{what} ({_short(a)} vs {_short(b)})" for what, a, b in differences[:4])
            more = f" and {len(differences) - 4} more" if len(differences) > 4 else ""
            raise DatasetFileError(f"{_name(first)} and {_name(f)} differ in {listed}{more}: they are not shards "
                                   f"of one job; merge only the shards of one job")
    count = int(records[0]["count"])
    by_index: dict[int, tuple[h5py.File, dict[str, Any]]] = {}
    for f, rec in zip(files, records):
        index = int(rec["index"])
        if index in by_index:
            raise DatasetFileError(f"shard {index} of {count} is given twice: {_name(by_index[index][0])} and "
                                   f"{_name(f)}; give each shard once")
        by_index[index] = f, rec
    missing = [i for i in range(count) if i not in by_index]
    if missing:
        have = ", ".join(str(i) for i in sorted(by_index))
        raise DatasetFileError(f"shard{'s' if len(missing) > 1 else ''} {', '.join(str(i) for i in missing)} of "
                               f"{count} {'are' if len(missing) > 1 else 'is'} missing (given: {have}); "
                               f"render or copy {'them' if len(missing) > 1 else 'it'} and merge all {count}")
    expected = 0
    for f, rec in (by_index[i] for i in range(count)):
        rows = len(f["latents"])
        if int(rec["start"]) != expected or int(rec["stop"]) - int(rec["start"]) != rows:
            raise DatasetFileError(f"{_name(f)} holds rows {rec['start']}..{int(rec['stop']) - 1} ({rows} samples) "
                                   f"of its job, expected rows from {expected}: the shard is damaged or not "
                                   f"made by 'c3di latents/render --shard'; make it again")
        if "num_rendered" in f.attrs and int(f.attrs["num_rendered"]) != rows:
            raise DatasetFileError(f"{_name(f)} has only {int(f.attrs['num_rendered'])} of {rows} samples rendered; "
                                   f"finish rendering that shard before merging")
        expected += rows
    total = records[0].get("total")
    if total is not None and expected != int(total):
        raise DatasetFileError(f"the {count} shards hold {expected} samples, their job has {total}: a shard is "
                               f"damaged; make it again")
    return [by_index[i][0] for i in range(count)]


def _shard_of(f: h5py.File) -> dict[str, Any]:
    if "shard" not in f.attrs:
        raise DatasetFileError(f"{_name(f)} is not a shard (no 'shard' attribute); 'c3di merge' joins the files "
                               f"of one job's --shard i --num-shards K runs")
    try:
        record = json.loads(f.attrs["shard"])
        if not all(isinstance(record.get(k), int) for k in SHARD_KEYS):
            raise ValueError
    except (TypeError, ValueError, AttributeError):
        raise DatasetFileError(f"{_name(f)} has a damaged 'shard' attribute ({f.attrs['shard']!r}); make the shard "
                               f"again") from None
    return record


def _differences_between(a: h5py.File, b: h5py.File, rec_a: Mapping[str, Any],
                         rec_b: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """What differs between two shards that must be alike, as (what, value in a, value in b); [] if nothing.

    Checked in order (the first kind that differs is reported): the job in the shard records, the root
    attributes of the job, the datasets, their shapes, dtypes and codecs, the groups' attributes.
    """
    for key in ("count", "total", "job"):
        if rec_a.get(key) != rec_b.get(key):
            return [(f"shard {key}", rec_a.get(key), rec_b.get(key))]
    for key in SAME_ATTRS:
        found = _deep_differences(key, _attr(a, key), _attr(b, key))
        if found:
            return found
    names_a, names_b = _dataset_names(a), _dataset_names(b)
    if names_a != names_b:
        return [(f"/{name}", "present" if name in names_a else "absent", "present" if name in names_b else "absent")
                for name in sorted(set(names_a) ^ set(names_b))]
    for name in names_a:
        da, db = a[name], b[name]
        found = [(f"/{name} {what}", va, vb) for what, va, vb in (
            ("shape", da.shape[1:], db.shape[1:]), ("dtype", str(da.dtype), str(db.dtype)),
            ("compression", codecs.codec_of(da), codecs.codec_of(db))) if va != vb]
        if found:
            return found
    for name in _group_names(a):
        found = _deep_differences(f"/{name} attributes", {k: _plain(v) for k, v in a[name].attrs.items()},
                                  {k: _plain(v) for k, v in b[name].attrs.items()})
        if found:
            return found
    return []


def _attr(f: h5py.File, key: str) -> Any:
    if key not in f.attrs:
        return None
    value = _plain(f.attrs[key])
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            pass
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _deep_differences(where: str, a: Any, b: Any) -> list[tuple[str, Any, Any]]:
    """Every dotted key at which two JSON-like values differ, with the two values."""
    if a == b:
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in sorted(set(a) | set(b), key=str)
                for d in _deep_differences(f"{where}.{key}", a.get(key), b.get(key))]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _deep_differences(f"{where}[{i}]", x, y)]
    return [(where, a, b)]


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, sort_keys=True, default=str) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _read(src: h5py.Dataset, rows: slice) -> np.ndarray:
    """``src[rows]``; a chunk that does not decode is one line naming the shard, not HDF5's OSError."""
    try:
        return src[rows]
    except OSError as exc:
        start, stop, _ = rows.indices(src.shape[0])
        raise DatasetFileError(f"{_name(src.file)}: {src.name} rows {start}..{stop - 1} do not decode ({exc}); the "
                               f"shard is damaged ('c3di verify {_name(src.file)}' lists the samples): copy or "
                               f"render that shard again, then merge") from None


def _name(f: h5py.File) -> str:
    return Path(f.filename).name


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
    if first.ndim < 4:  # latents, classes, ...: small, and written whole (the file has no chunk cache)
        if total:
            out[...] = np.concatenate([_read(s, slice(None)) for s in sources])
        return
    offset = 0
    for src in sources:
        for i in range(0, src.shape[0], block):
            rows = _read(src, slice(i, i + block))
            if lz4:
                codecs.write_images(out, offset + i, rows)
            else:
                out[offset + i: offset + i + len(rows)] = rows
        offset += src.shape[0]
