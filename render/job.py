"""Render jobs: latents in, a complete dataset file out; sharded, resumable, deterministic.

A job renders the anchors (``/images``) and the transformed view of every anchor for each pair
(``/pairs/<name>/images``). Work goes to ``<out>.parts/``: a ``job.json`` that must match when the
job resumes, and one small chunk file per ``chunk_size`` samples, each written atomically, so a job
killed at any moment resumes where it stopped. When every chunk exists, the dataset file is
assembled atomically and the work folder removed.

One output, one job: a job holds an exclusive lock on its work folder (``lock.OutputLock``), and
every chunk file carries the job's fingerprint (``chunk_stamp``), so a chunk of another job, or a
damaged one, is named, discarded and rendered again, never assembled.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..checksums import seal
from ..citris_convert import is_converted, refuse_converted
from ..codecs import filter_args, write_images
from ..errors import ConfigError, DatasetFileError
from ..generate import (build_config, latents_file_size, latents_for_config, latents_job_id, shard_range,
                        shard_record, transformations_from_config)
from ..latents import CLASS_NAMES
from ..multimodal_store import text_tables
from ..splits import check_split, infer_split, recorded_split
from ..store import (atomic_h5, check_output, create_image_dataset, open_dataset, pair_names, read_config,
                     write_core, write_pair_latents)
from ..temporal import TemporalModel, to_package_classes
from ..temporal_store import (is_sequence_file, model_from_config, normalised, read_sequence, sequence_config,
                              temporal_preset)
from ..triplets import sample_triplets
from . import assets as assets_mod
from .config import RECORDED_WHEN_CHANGED, RenderConfig
from .devices import DeviceSpec, require_bpy
from .lock import LOCK_NAME, OutputLock
from .worker import ChunkError, Task, WorkerPool, WorkerSpec, chunk_problem, read_chunk, write_chunk

JOB_FORMAT = "causal3dident-render-job"
JOB_VERSION = 1
DEFAULT_CHUNK_SIZE = 16
ANCHORS = "images"
MAX_ASSEMBLIES = 3
"""Times the file is assembled when chunks turn out damaged (each time they are rendered again)."""


@dataclass
class JobInput:
    """The latents a job renders, and what its output file records about them."""

    latents: np.ndarray
    classes: np.ndarray
    indices: np.ndarray
    config: dict[str, Any]
    seed: int
    pairs: dict[str, tuple[np.ndarray, dict[str, Any]]] = field(default_factory=dict)
    shard: dict[str, int] | None = None
    split: str | None = None
    """The split the output records (``causal3dident.splits``)."""
    scene: str = "causal3dident"
    """How the scene reads the rendered latents (``latents.SCENE_MAPPINGS``)."""
    scene_latents: np.ndarray | None = None
    """What the anchors render, where it is not ``latents`` (a sequence's latents in its preset's units)."""
    views: dict[str, np.ndarray] = field(default_factory=dict)
    """Further image datasets (path -> latents, read like ``scene_latents``): a triplet's source frames."""
    view_classes: dict[str, np.ndarray] = field(default_factory=dict)
    """The classes of those views (default: ``classes``)."""
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    """Further datasets the output holds as they are (path -> array, one row per sample)."""
    extra_attrs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Attributes of those datasets or of their groups (path -> attributes): a converted file's /sequence."""

    @property
    def streams(self) -> dict[str, np.ndarray]:
        """Dataset path -> latents to render: the anchors, then each pair's transformed views."""
        out = {ANCHORS: self.latents if self.scene_latents is None else self.scene_latents}
        out.update({f"pairs/{name}/images": z for name, (z, _) in sorted(self.pairs.items())})
        out.update(self.views)
        return out

    def fingerprint(self) -> str:
        """SHA-256 of everything that decides the images (latents, classes, indices, pair latents)."""
        digest = hashlib.sha256()
        for array in (self.latents, self.classes, self.indices):
            digest.update(np.ascontiguousarray(array).tobytes())
        for name, z in self.streams.items():
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(z, dtype=np.float32).tobytes())
        if self.scene_latents is not None:
            digest.update(self.scene.encode())
            digest.update(np.ascontiguousarray(self.scene_latents).tobytes())
        for name, array in sorted({**self.extras, **{f"{k}/classes": c for k, c in self.view_classes.items()}}.items()):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()


def sampled_input(preset: str, n: int, seed: int, *, pairs: str | None = None, interventions: Sequence[str] = (),
                  shard: int | None = None, num_shards: int | None = None, balanced_classes: bool = False,
                  split: str | None = None) -> JobInput:
    """Latents drawn from an SCM preset, exactly as ``c3di latents`` draws them (a temporal preset: its frames)."""
    if (model := temporal_preset(preset)) is not None:
        if pairs or interventions or balanced_classes:
            raise ConfigError(f"--preset {preset} samples a sequence: --pairs, --intervene and --balanced-classes "
                              f"do not apply to its frames; drop them")
        return sequence_input(model, n, seed, shard=shard, num_shards=num_shards, split=split)
    config = build_config(preset, n, interventions=interventions, pairs=pairs, balanced_classes=balanced_classes)
    start, stop = shard_range(n, shard, num_shards)
    data = latents_for_config(config, seed, start, stop - start)
    lts = {lt.name: lt.to_dict() for lt in transformations_from_config(config)}
    return JobInput(latents=data["latents"], classes=data["classes"], indices=data["indices"], config=config,
                    seed=seed, pairs={name: (data["pairs"][name], lts[name]) for name in lts},
                    shard=None if num_shards is None else
                    shard_record(latents_job_id(config, seed), shard, num_shards, start, stop, n), split=split)


def sequence_input(model: TemporalModel, n: int, seed: int, *, shard: int | None = None,
                   num_shards: int | None = None, split: str | None = None) -> JobInput:
    """Frames of a temporal preset, exactly as ``c3di latents`` samples them: the file records /latents in
    [-1, 1]; the scene renders the preset's own values, read as its ``scene`` says."""
    config = sequence_config(model, n)
    start, stop = shard_range(n, shard, num_shards)
    frames = model.sample(seed, 0, stop)
    rows = slice(start, stop)
    return JobInput(latents=normalised(model, frames.latents[rows]),
                    classes=to_package_classes(model, frames.classes[rows]),
                    indices=np.arange(start, stop, dtype=np.int64), config=config, seed=seed,
                    shard=None if num_shards is None else
                    shard_record(latents_job_id(config, seed), shard, num_shards, start, stop, n), split=split,
                    **_scene_of(model, frames.latents[rows]))


def triplet_input(model: TemporalModel, latents: np.ndarray, classes: np.ndarray, source: Mapping[str, Any], n: int,
                  seed: int, *, masks: str = "fine", shard: int | None = None, num_shards: int | None = None,
                  split: str | None = None) -> JobInput:
    """CITRIS's triplets of a sequence (``causal3dident.triplets``; ``latents`` in the preset's units, ``classes`` in
    its order; ``source``: what the file records about the sequence): the file's samples are the mixed frames
    (/images), the source frames go to /triplets/first/images and /triplets/second/images."""
    if n <= 0:
        raise ConfigError(f"--triplets must be a positive number of triplets, got {n}")
    if masks not in ("fine", "coarse"):
        raise ConfigError(f"--triplet-masks must be fine or coarse, got {masks!r}")
    config = {"generator_version": 1, "sequence": dict(source),
              "triplets": {"num_triplets": int(n), "masks": masks, "mask_columns": list(model.target_names)}}
    start, stop = shard_range(n, shard, num_shards)
    t = sample_triplets(model, latents, classes, seed, start, stop, masks)  # type: ignore[arg-type]
    package = to_package_classes(model, t.classes)
    scene = _scene_of(model, t.latents[:, 2])
    native = scene.get("scene_latents") is not None
    views = {f"triplets/{which}/images": t.latents[:, k] if native else normalised(model, t.latents[:, k])
             for k, which in enumerate(("first", "second"))}
    extras = {"triplets/sources": t.sources, "triplets/masks": t.masks, "triplets/latents": t.latents,
              "triplets/classes": package}
    return JobInput(latents=normalised(model, t.latents[:, 2]), classes=package[:, 2],
                    indices=np.arange(start, stop, dtype=np.int64), config=config, seed=seed,
                    shard=None if num_shards is None else
                    shard_record(latents_job_id(config, seed), shard, num_shards, start, stop, n), split=split,
                    views=views, view_classes={name: package[:, k] for k, name in enumerate(views)}, extras=extras,
                    **scene)


def sequence_triplets(source: str | os.PathLike[str] | None, preset: str, frames: int | None, seed: int, n: int, *,
                      masks: str = "fine", shard: int | None = None, num_shards: int | None = None,
                      split: str | None = None) -> JobInput:
    """``triplet_input`` of the sequence file ``source``, or of ``frames`` frames sampled from ``preset`` with
    ``seed``; the triplets are drawn with ``seed``."""
    if source is None:
        model = temporal_preset(preset)
        if model is None:
            raise ConfigError(f"--triplets mixes the frames of a sequence; --preset {preset} is not a temporal preset "
                              f"(use temporal_causal3dident)")
        if frames is None:
            raise ConfigError("give --n (frames of the sequence to draw triplets from) or a sequence file SOURCE")
        config = sequence_config(model, frames)
        seq = model.sample(seed, 0, frames)
        return triplet_input(model, seq.latents, seq.classes, {"config": config, "seed": seed}, n, seed, masks=masks,
                             shard=shard, num_shards=num_shards, split=split)
    with open_dataset(source) as f:
        if not is_sequence_file(f):
            raise ConfigError(f"{source} holds no sequence to draw triplets from; sample one with c3di latents "
                              f"--preset temporal_causal3dident --n FRAMES --out seq.h5")
        if "shard" in f.attrs:
            raise ConfigError(f"{source} is one shard of a sequence; draw triplets from the whole sequence (c3di merge "
                              f"its shards first)")
        config = read_config(f)
        refuse_converted(config, source, "drawing triplets from it")
        model = model_from_config(config)
        latents = read_sequence(f)["latents"]
        lookup = {CLASS_NAMES.index(c): i for i, c in enumerate(model.class_names)}
        classes = np.array([lookup[int(c)] for c in f["classes"][...]], dtype=np.int64)
        record = {"config": config, "seed": int(f.attrs["seed"])}
        split = split or recorded_split(f)
    return triplet_input(model, latents, classes, record, n, seed, masks=masks, shard=shard, num_shards=num_shards,
                         split=split)


def _recorded_triplets(config: Mapping[str, Any], seed: int, shard: int | None, num_shards: int | None,
                       split: str | None) -> JobInput:
    """The triplets a triplet file's config and seed record, from the sequence its config and seed generate."""
    source = config["sequence"]
    model = model_from_config(source["config"])
    seq = model.sample(int(source["seed"]), 0, int(source["config"]["num_samples_total"]))
    return triplet_input(model, seq.latents, seq.classes, source, int(config["triplets"]["num_triplets"]), seed,
                         masks=config["triplets"]["masks"], shard=shard, num_shards=num_shards, split=split)


def _scene_of(model: TemporalModel, latents: np.ndarray) -> dict[str, Any]:
    """How a sequence's frames are rendered: CITRIS's scene from its own values, or /latents as Causal3DIdent."""
    if model.spec.scene == "causal3dident":
        return {}
    return {"scene": model.spec.scene, "scene_latents": np.asarray(latents, dtype=np.float64)}


def file_input(path: str | os.PathLike[str], *, pairs: str | None = None, shard: int | None = None,
               num_shards: int | None = None, split: str | None = None) -> JobInput:
    """Latents (and pair latents) of an existing dataset file; ``pairs`` picks some of its pairs; ``split``:
    the split the output records (default: the one the file records, if any)."""
    split = None if split is None else check_split(split)
    with open_dataset(path) as f:
        config = read_config(f)
        if is_converted(config):  # CITRIS's latents, kept in the output: no seed to regenerate them from
            return _converted_input(f, config, shard, num_shards, split)
        if "triplets" in config:  # rebuilt from the sequence and draws it records
            return _recorded_triplets(config, int(f.attrs["seed"]), shard, num_shards, split or recorded_split(f))
        names = pair_names(f)
        wanted = names if pairs is None else [p.strip() for p in pairs.split(",") if p.strip()
                                              and p.strip() not in config.get("text_pairs", [])]  # kept anyway
        missing = sorted(set(wanted) - set(names))
        if missing:
            raise ConfigError(f"{path} has no pairs {', '.join(missing)} (it has: {', '.join(names) or 'none'}); "
                              f"sample new latents with --preset/--n to add transformations")
        total = len(f["latents"])
        start, stop = shard_range(total, shard, num_shards)
        rows = slice(start, stop)
        index = f["index"][rows]
        pair_data = {name: (f["pairs"][name]["latents"][rows],
                            json.loads(f["pairs"][name].attrs["transformation"])) for name in wanted}
        own_shard = json.loads(f.attrs["shard"]) if "shard" in f.attrs else None
        inp = JobInput(latents=f["latents"][rows], classes=f["classes"][rows], indices=index,
                       config=read_config(f), seed=int(f.attrs["seed"]), pairs=pair_data, shard=own_shard,
                       split=split or recorded_split(f))
        if is_sequence_file(f):
            scene = _scene_of(model_from_config(inp.config), read_sequence(f)["latents"][rows])
            inp.scene, inp.scene_latents = scene.get("scene", inp.scene), scene.get("scene_latents")
        if num_shards is not None:
            inp.shard = shard_record(_file_job_id(f, wanted), shard, num_shards, start, stop, total)
    return inp


def _converted_input(f: Any, config: Mapping[str, Any], shard: int | None, num_shards: int | None,
                     split: str | None) -> JobInput:
    """A file converted from CITRIS's files (``causal3dident.citris_convert``) rendered again: its frames (or
    triplets) from the CITRIS latents stored in it, which the output keeps (/sequence, or /triplets/masks, latents
    and classes) because no seed regenerates them; /classes already holds this package's labels."""
    kept = ("triplets/masks", "triplets/latents", "triplets/classes") if "triplets" in config else \
        ("sequence/latents", "sequence/targets")
    missing = [name for name in kept if name not in f]
    if missing:
        raise DatasetFileError(f"{f.filename} was converted from CITRIS's files but lacks /{', /'.join(missing)}, the "
                               f"CITRIS values rendering reads; convert the CITRIS files again (c3di convert --format "
                               f"citris)")
    total = len(f["latents"])
    start, stop = shard_range(total, shard, num_shards)
    rows = slice(start, stop)
    record = {**config["converted"], "images": "rendered by c3di render from the converted latents (render_settings), "
                                              "not CITRIS's imgs"}
    out_config = {**{k: v for k, v in config.items() if k != "images"}, "converted": record}
    own = json.loads(f.attrs["shard"]) if "shard" in f.attrs else None
    inp = JobInput(latents=f["latents"][rows], classes=f["classes"][rows], indices=f["index"][rows],
                   config=out_config, seed=int(f.attrs["seed"]), split=split or recorded_split(f),
                   shard=own if num_shards is None else
                   shard_record(_file_job_id(f, []), shard, num_shards, start, stop, total))
    if "triplets" in config:
        model = model_from_config(config["sequence"]["config"])
        native, package = f["triplets/latents"][rows], f["triplets/classes"][rows]
        scene = _scene_of(model, native[:, 2])
        views = {f"triplets/{which}/images": native[:, k] if scene else normalised(model, native[:, k])
                 for k, which in enumerate(("first", "second"))}
        inp.views, inp.view_classes = views, {name: package[:, k] for k, name in enumerate(views)}
        inp.extras = {"triplets/masks": f["triplets/masks"][rows], "triplets/latents": native,
                      "triplets/classes": package}
    else:
        model = model_from_config(config)
        group = f["sequence"]
        scene = _scene_of(model, group["latents"][rows])
        inp.extras = {"sequence/latents": group["latents"][rows], "sequence/targets": group["targets"][rows]}
        inp.extra_attrs = {"sequence": dict(group.attrs), "sequence/latents": dict(group["latents"].attrs),
                           "sequence/targets": dict(group["targets"].attrs)}
    inp.scene, inp.scene_latents = scene.get("scene", inp.scene), scene.get("scene_latents")
    return inp


def _file_job_id(f: Any, pairs: Sequence[str]) -> str:
    """SHA-256 naming a sharded job over a whole file: its latents, classes, indices, chosen pairs, config, seed."""
    digest = hashlib.sha256(latents_job_id(read_config(f), int(f.attrs["seed"])).encode())
    for array in (f["latents"][...], f["classes"][...], f["index"][...],
                  *(f["pairs"][name]["latents"][...] for name in sorted(pairs))):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(json.dumps(sorted(pairs)).encode())
    return digest.hexdigest()


def output_path(out: str | os.PathLike[str], shard: int | None, num_shards: int | None) -> Path:
    """``--out`` as a file: a name ending in .h5 is used as is, anything else is a folder to write into."""
    out = Path(out)
    if out.suffix in (".h5", ".hdf5"):
        return out
    name = "causal3dident.h5" if num_shards is None else f"causal3dident-shard{shard:05d}-of-{num_shards:05d}.h5"
    return out / name


@dataclass
class JobResult:
    """What a finished job did (for the summary line)."""

    path: Path
    rendered: int
    total: int
    seconds: float
    workers: int
    device: str


class JobInterrupted(KeyboardInterrupt):
    """Ctrl-C during a job; the message says how to resume."""


def run_job(inp: JobInput, out: Path, config: RenderConfig, devices: Sequence[DeviceSpec], *,
            workers: int | None = None, assets: str | os.PathLike[str] | None = None,
            chunk_size: int = DEFAULT_CHUNK_SIZE, overwrite: bool = False, progress: bool = True,
            backend: RenderBackend | None = None, compression: str = "gzip") -> JobResult:
    """Render every image of ``inp`` into the dataset file ``out``, resuming earlier work on it;
    ``compression``: the images' codec, 'gzip' or 'lz4' (causal3dident.codecs).

    ``backend`` decides where the missing chunks are rendered (default: ``LocalBackend``, worker
    processes on this machine; ``ray_backend.RayBackend``: a Ray cluster). Everything else (the
    chunks, the work folder, resuming, assembling the file) is the same for every backend. A second
    job on the same ``out`` meanwhile raises ``OutputBusyError``; Ctrl-C raises ``JobInterrupted``.
    """
    if chunk_size < 1:
        raise ConfigError(f"--chunk-size must be >= 1, got {chunk_size}")
    config = scene_config(config, inp.config)
    filter_args(compression)  # an unknown codec fails before any rendering
    backend = LocalBackend() if backend is None else backend
    if isinstance(backend, LocalBackend):
        require_bpy()
    meshes = assets_mod.resolve(assets, progress=progress)
    settings = render_settings(config, devices, meshes)
    out = check_output(out, overwrite=True)  # its folder exists and is writable: the lock goes there
    parts = out.with_name(out.name + ".parts")
    manifest = job_manifest(inp, settings, chunk_size)
    with OutputLock(parts, out):
        try:
            if _is_job_folder(parts, manifest) and _is_result_of(out, inp, manifest):
                _clear_work_folder(parts)  # killed between the final rename and the clean-up: nothing left to do
                return JobResult(out, 0, len(inp.latents) * len(inp.streams), 0.0, 0, devices[0].kind)
            out = check_output(out, overwrite)
            _open_work_folder(parts, manifest, overwrite)
            local = assets_mod.local_dir(assets)  # --assets or $C3DI_ASSETS, passed on to remote workers
            context = RenderContext(config, tuple(devices), tuple(meshes), workers,
                                    None if local is None else str(local.resolve()), parts / "logs")
            return _render_and_assemble(inp, out, parts, manifest, context, backend, overwrite, progress,
                                        compression)
        except KeyboardInterrupt:
            done = len(list(parts.glob("chunk-*.npz")))
            raise JobInterrupted(f"interrupted; {done} of {len(chunk_ranges(len(inp.latents), chunk_size))} "
                                 f"chunks are finished in {parts}: rerun the same command to resume from "
                                 f"them") from None


def _render_and_assemble(inp: JobInput, out: Path, parts: Path, manifest: Mapping[str, Any],
                         context: RenderContext, backend: RenderBackend, overwrite: bool, progress: bool,
                         compression: str) -> JobResult:
    """Render the chunks missing (or unusable) in ``parts``, then assemble ``out``; a chunk found damaged
    while assembling is discarded and rendered again."""
    n, chunk_size, settings = len(inp.latents), int(manifest["chunk_size"]), manifest["render_settings"]
    stamp = job_stamp(manifest)
    chunks = chunk_ranges(n, chunk_size)
    rendered, seconds, used = 0, 0.0, 0
    for _ in range(MAX_ASSEMBLIES):
        missing = set(_chunks_to_render(parts, chunks, inp.streams, stamp))
        todo = [chunk_task(inp, c, a, b, parts, stamp) for c, a, b in chunks if c in missing]
        images = sum(t.num_images for t in todo)
        start = time.monotonic()
        if todo:
            from causal3dident.progress import ProgressBar

            done_before = n * len(inp.streams) - images
            with ProgressBar(total=n * len(inp.streams), initial=done_before, unit="img",
                             desc=f"rendering {out.name}", disable=not progress, smoothing=0.1,
                             dynamic_ncols=True) as bar:
                used = backend.render(todo, context, on_image=bar.update, on_done=_store_chunk) or used
        seconds += time.monotonic() - start
        rendered += images
        try:
            _assemble(inp, out, parts, [c for c, _, _ in chunks], chunk_size, settings, overwrite, compression,
                      stamp=stamp)
            break
        except DamagedChunk as bad:
            notice(f"discarding {bad.path}: {bad.reason}; rendering it again")
            bad.path.unlink(missing_ok=True)
    else:
        raise DatasetFileError(f"chunks in {parts} were damaged again after {MAX_ASSEMBLIES} renders; check the "
                               f"disk (and its free space) and rerun the same command")
    _clear_work_folder(parts)
    return JobResult(out, rendered, n * len(inp.streams), seconds, used, context.devices[0].kind)


def job_manifest(inp: JobInput, settings: Mapping[str, Any], chunk_size: int) -> dict[str, Any]:
    """``job.json``: what a resumed job must match (latents, streams, chunk size, render settings, seed)."""
    return {"format": JOB_FORMAT, "version": JOB_VERSION, "latents_sha256": inp.fingerprint(),
            "num_samples": len(inp.latents), "streams": list(inp.streams), "chunk_size": chunk_size,
            "render_settings": dict(settings), "seed": inp.seed}


def job_stamp(manifest: Mapping[str, Any]) -> str:
    """SHA-256 of a job's manifest: its latents, streams, chunk size, seed and render settings (meshes too)."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def chunk_stamp(job: str, chunk: int, start: int, stop: int) -> str:
    """What chunk ``chunk`` (rows ``start:stop``) of job ``job`` carries in its file."""
    return f"{job}/chunk {chunk}: rows {start}:{stop}"


class DamagedChunk(Exception):
    """A chunk file found unusable while assembling."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def notice(line: str) -> None:
    """One line to the user on stderr (above any progress bar)."""
    from causal3dident.progress import ProgressBar

    ProgressBar.write(line, file=sys.stderr)


def chunk_ranges(n: int, chunk_size: int) -> list[tuple[int, int, int]]:
    """``(chunk id, first row, stop row)`` of every chunk of an ``n``-sample job."""
    return [(c, c * chunk_size, min(n, (c + 1) * chunk_size)) for c in range((n + chunk_size - 1) // chunk_size)]


def chunk_task(inp: JobInput, chunk: int, start: int, stop: int, parts: Path, job: str | None = None) -> Task:
    """The work unit of chunk ``chunk`` (rows ``start:stop`` of every stream), stored as its chunk file
    stamped for job ``job`` (``job_stamp``)."""
    return Task(key=chunk, classes=inp.classes[start:stop],
                streams={k: z[start:stop] for k, z in inp.streams.items()}, path=str(_chunk_path(parts, chunk)),
                stamp=None if job is None else chunk_stamp(job, chunk, start, stop), scene=inp.scene,
                stream_classes={k: c[start:stop] for k, c in inp.view_classes.items()})


def _store_chunk(task: Task, images: dict[str, np.ndarray] | None) -> None:
    """A chunk finished: backends whose workers cannot write ``task.path`` hand its images back to us."""
    if images is not None and task.path is not None:
        write_chunk(Path(task.path), images, task.stamp)


def _chunks_to_render(parts: Path, chunks: Sequence[tuple[int, int, int]], streams: Mapping[str, Any],
                      stamp: str, named: int = 5) -> list[int]:
    """The chunks missing from ``parts`` or unusable there: another job's or damaged ones are named (the
    first ``named`` of them one by one) and removed. Their index and stamp are checked here, their pixels
    when the file is assembled."""
    todo, discarded = [], 0
    for c, a, b in chunks:
        path = _chunk_path(parts, c)
        if not path.exists():
            todo.append(c)
            continue
        problem = chunk_problem(path, streams, chunk_stamp(stamp, c, a, b))
        if problem is None:
            continue
        discarded += 1
        if discarded <= named:
            notice(f"discarding {path}: {problem}; rendering it again")
        path.unlink(missing_ok=True)
        todo.append(c)
    if discarded > named:
        notice(f"discarded {discarded - named} more chunks in {parts} that this job cannot use; rendering them again")
    return todo


@dataclass(frozen=True)
class RenderContext:
    """What every backend needs to render a job's chunks."""

    config: RenderConfig
    devices: tuple[DeviceSpec, ...]
    meshes: tuple[assets_mod.MeshAsset, ...]
    workers: int | None
    assets: str | None
    """Absolute path of ``--assets`` / ``$C3DI_ASSETS``, or None (the cache); remote nodes resolve their own copy."""
    log_dir: Path


class RenderBackend(Protocol):
    """Where a job's missing chunks are rendered."""

    def render(self, tasks: Sequence[Task], context: RenderContext, on_image: Callable[[int], Any],
               on_done: Callable[[Task, dict[str, np.ndarray] | None], None]) -> int:
        """Render every task: ``on_image(k)`` as images finish, ``on_done(task, images)`` once per task
        (``images`` None when the worker wrote ``task.path`` itself). Returns the number of workers used."""
        ...


class LocalBackend:
    """Worker processes on this machine (``WorkerPool``): one per GPU, or ``--workers`` on the CPU."""

    def render(self, tasks: Sequence[Task], context: RenderContext, on_image: Callable[[int], Any],
               on_done: Callable[[Task, dict[str, np.ndarray] | None], None]) -> int:
        specs = worker_specs(context.config, context.devices, context.meshes, context.workers,
                             log_dir=context.log_dir)[:len(tasks)]
        WorkerPool(specs).run(tasks, on_image=lambda: on_image(1), on_done=on_done)
        return len(specs)


def scene_config(config: RenderConfig, latents_config: Mapping[str, Any]) -> RenderConfig:
    """``config`` with the scene the latents were drawn for (Multimodal3DIdent's for its presets)."""
    from ..multimodal_store import is_multimodal

    return config.with_overrides(scene="multimodal3dident") if is_multimodal(latents_config) else config


def render_settings(config: RenderConfig, devices: Sequence[DeviceSpec],
                    meshes: Sequence[assets_mod.MeshAsset]) -> dict[str, Any]:
    """The ``render_settings`` attribute: scene and sampler settings, device backend, mesh hashes."""
    return {**config.to_dict(), "device": devices[0].kind, "meshes": assets_mod.describe(meshes)}


def blender_version() -> str:
    """bpy's version, read from the package metadata (the CLI process never imports bpy)."""
    try:
        return metadata.version("bpy")
    except metadata.PackageNotFoundError:
        return "unknown"


def worker_specs(config: RenderConfig, devices: Sequence[DeviceSpec], meshes: Sequence[assets_mod.MeshAsset],
                 workers: int | None, log_dir: Path | None = None) -> list[WorkerSpec]:
    """One worker per GPU, or ``workers`` CPU workers sharing the cores."""
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)

    def log(i: int) -> str | None:
        return None if log_dir is None else str(log_dir / f"worker-{i}.log")

    if devices[0].kind != "CPU":
        count = len(devices) if workers is None else max(1, min(workers, len(devices)))
        return [WorkerSpec(config, tuple(meshes), devices[i], log_path=log(i)) for i in range(count)]
    cores = os.cpu_count() or 1
    count = 1 if workers is None else workers
    if count < 1:
        raise ConfigError(f"--workers must be >= 1, got {count}")
    threads = max(1, cores // count)
    return [WorkerSpec(config, tuple(meshes), devices[0], threads=threads, log_path=log(i)) for i in range(count)]


def _chunk_path(parts: Path, chunk: int) -> Path:
    return parts / f"chunk-{chunk:07d}.npz"


def _read_job(parts: Path) -> dict[str, Any] | None:
    try:
        return json.loads((parts / "job.json").read_text())
    except (OSError, ValueError):
        return None


def _is_job_folder(parts: Path, manifest: Mapping[str, Any]) -> bool:
    return _read_job(parts) == json.loads(json.dumps(manifest))


def _is_result_of(out: Path, inp: JobInput, manifest: Mapping[str, Any]) -> bool:
    """Whether ``out`` is what this job assembles (same latents and render settings, every image rendered),
    not an older file that --overwrite is to replace."""
    if not out.is_file():
        return False
    try:
        with open_dataset(out) as f:
            return (json.loads(f.attrs.get("render_settings", "null")) == manifest["render_settings"]
                    and int(f.attrs.get("num_rendered", -1)) == len(inp.latents)
                    and np.array_equal(f["latents"][...], inp.latents)
                    and np.array_equal(f["classes"][...], inp.classes)
                    and all(np.array_equal(f[f"pairs/{name}/latents"][...], z) for name, (z, _) in inp.pairs.items())
                    and all(name in f and f[name].shape[0] == len(inp.latents) for name in inp.streams))
    except (DatasetFileError, OSError, KeyError, ValueError):
        return False


def _settings_difference(existing: Mapping[str, Any], manifest: Mapping[str, Any]) -> tuple[str, str]:
    """The render settings in which a job and this command differ (e.g. a preset changed since the job
    started), and the ``--set`` items that give the job's values ("" where some cannot be set)."""
    job, now = existing.get("render_settings"), manifest.get("render_settings")
    if not isinstance(job, Mapping) or not isinstance(now, Mapping):
        return "", ""
    job, now = {**RECORDED_WHEN_CHANGED, **job}, {**RECORDED_WHEN_CHANGED, **now}  # defaults go unrecorded
    keys = sorted(k for k in set(job) | set(now) if job.get(k) != now.get(k))
    if not keys:
        return "", ""
    detail = " (" + "; ".join(f"{k} is {json.dumps(job.get(k))} in the job, {json.dumps(now.get(k))} here"
                              for k in keys) + ")"
    settable = all(k in job and k in RenderConfig.__dataclass_fields__ and k not in ("quality", "resolution")
                   for k in keys)
    return detail, " ".join(f"--set {k}={_set_value(job[k])}" for k in keys) if settable else ""


def _set_value(value: Any) -> str:
    """A render setting as ``--set`` writes it (lists as comma-free JSON)."""
    if isinstance(value, bool):
        return str(value).lower()
    return json.dumps(value, separators=(",", ":")) if isinstance(value, (list, tuple)) else str(value)


def _open_work_folder(parts: Path, manifest: Mapping[str, Any], overwrite: bool) -> None:
    """Check that the work folder (created by the job's lock) belongs to this very job, or start it."""
    job_file = parts / "job.json"
    if job_file.exists():
        existing = _read_job(parts) or {}
        if not _is_job_folder(parts, manifest):
            if not overwrite:
                differ = sorted(k for k in set(manifest) | set(existing) if existing.get(k) != manifest.get(k))
                detail, fix = _settings_difference(existing, manifest)
                redo = f" (here: add {fix})" if fix and differ == ["render_settings"] else ""
                named = ", ".join(k + detail if k == "render_settings" else k for k in differ)
                raise ConfigError(f"{parts} holds an unfinished render job with other settings (differs in: "
                                  f"{named}); to finish it, rerun that job's exact command{redo}, or pass "
                                  f"--overwrite (or delete the folder) to start over")
            _clear_work_folder(parts)
    elif any(p.name != LOCK_NAME for p in parts.iterdir()):
        if not overwrite:
            raise ConfigError(f"{parts} exists but holds no job.json; delete it or pass --overwrite")
        _clear_work_folder(parts)
    for stale in parts.glob(".chunk-*.tmp-*"):
        stale.unlink()
    if not job_file.exists():
        tmp = job_file.with_name(".job.json.tmp")
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(tmp, job_file)


def _clear_work_folder(parts: Path) -> None:
    """Remove everything in the work folder but its lock (the job's lock removes the rest when it ends)."""
    for entry in parts.iterdir():
        if entry.name == LOCK_NAME:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)


def assembled_size(inp: JobInput, parts: Path, chunk_ids: Sequence[int], compression: str = "gzip") -> int:
    """Bytes the assembled file needs about: the deflated chunk files' size (LZ4 compresses less than
    deflate, by up to ~1.3x), the latents, and HDF5's overhead per image."""
    images = sum(_chunk_path(parts, c).stat().st_size for c in chunk_ids)
    factor = 1.1 if compression == "gzip" else 1.5
    n, views = len(inp.latents), len(inp.streams)
    return int(images * factor) + 128 * n * views + latents_file_size(n, len(inp.pairs), text_tables(inp.config))


def _assemble(inp: JobInput, out: Path, parts: Path, chunk_ids: Sequence[int], chunk_size: int,
              settings: Mapping[str, Any], overwrite: bool, compression: str = "gzip", *,
              stamp: str | None = None) -> None:
    """Write the dataset file from the chunk files (atomically: a temporary name, then a rename), after
    checking the disk has room for it; ``DamagedChunk`` if a chunk is damaged or not job ``stamp``'s."""
    n, res = len(inp.latents), int(settings["resolution"])
    streams = list(inp.streams)
    with atomic_h5(out, overwrite, size_hint=assembled_size(inp, parts, chunk_ids, compression)) as f:
        write_core(f, latents=inp.latents, classes=inp.classes, indices=inp.indices, config=inp.config,
                   seed=inp.seed, split=inp.split or infer_split(out))
        for name, array in inp.extras.items():
            f.create_dataset(name, data=array)
        for name, attrs in inp.extra_attrs.items():
            f[name].attrs.update(attrs)
        if inp.shard is not None:
            f.attrs["shard"] = json.dumps(inp.shard)
        for name, (z, transformation) in sorted(inp.pairs.items()):
            write_pair_latents(f, name, z, transformation)
        targets = {name: create_image_dataset(f.require_group(os.path.dirname(name)) if "/" in name else f,
                                              os.path.basename(name), n, res, res,
                                              compression) for name in streams}
        for c in chunk_ids:
            path = _chunk_path(parts, c)
            a = c * chunk_size
            b = min(n, a + chunk_size)
            try:
                chunk = read_chunk(path, streams, None if stamp is None else chunk_stamp(stamp, c, a, b))
            except ChunkError as exc:
                raise DamagedChunk(path, str(exc)) from None
            for name in streams:
                block = chunk[name]
                if block.shape != (b - a, res, res, 3):
                    raise DamagedChunk(path, f"it holds {name} of shape {block.shape}, not {(b - a, res, res, 3)}")
                write_images(targets[name], a, block)
        f.attrs["blender_version"] = blender_version()
        f.attrs["render_settings"] = json.dumps(dict(settings), sort_keys=True)
        f.attrs["num_rendered"] = n
        seal(f, source=str(parts))  # pixel checksums and image statistics, from the images as stored
