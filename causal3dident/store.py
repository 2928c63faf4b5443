"""The Causal3DIdent HDF5 dataset file, schema v1 (documented in docs/hdf5_schema.md).

Writers build the file under a temporary name in the target folder and rename it into place
only when complete, so a crash never leaves a file that looks finished. Readers check the format
marker, the schema version and the completion flag, and say what is wrong in one line.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from . import codecs, diskspace, leftovers
from .errors import DatasetFileError, OutputExistsError
from .latents import CLASS_NAMES, LATENT_NAMES, NUM_CLASSES, NUM_LATENTS

FORMAT_NAME = "causal3dident"
SCHEMA_VERSION = 1
TMP_MARK = leftovers.TMP_MARK


def package_version() -> str:
    from . import __version__

    return __version__


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


# -- writing ---------------------------------------------------------------------------------------
def check_output(path: str | os.PathLike[str], overwrite: bool) -> Path:
    """Fail early (before any work) if ``path`` exists without ``overwrite`` or its folder is unwritable."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; pass --overwrite to replace it or choose another --out")
    if path.is_dir():
        raise OutputExistsError(f"{path} is a directory; give a file name such as {path / 'dataset.h5'}")
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetFileError(f"cannot create folder {parent}: {exc.strerror}; choose a writable --out") from None
    if not os.access(parent, os.W_OK):
        raise DatasetFileError(f"folder {parent} is not writable; choose a writable --out")
    return path


@contextmanager
def atomic_h5(path: str | os.PathLike[str], overwrite: bool = False, *,
              size_hint: int | None = None) -> Iterator[h5py.File]:
    """Yield an HDF5 file open for writing at a temporary name; on success mark it complete and
    rename it to ``path``; on any error remove the temporary file and leave ``path`` untouched.

    Temporaries that killed runs left for ``path`` are removed first (never a live writer's:
    ``causal3dident.leftovers``). ``size_hint``: bytes the file needs about, checked against the free
    space first; a full disk is one ``DiskFullError`` line. The file has no chunk cache, so a failed
    write raises at the write instead of crashing HDF5 when the file is closed: write whole chunks.
    """
    path = check_output(path, overwrite)
    leftovers.remove_stale(path)
    if size_hint is not None:
        diskspace.check_free_space(path, size_hint)
    tmp = leftovers.temporary_name(path)
    try:
        with leftovers.claimed(tmp):  # released before the rename: readers of ``path`` never meet the lock
            f = h5py.File(tmp, "w", libver=("earliest", "v110"), rdcc_nbytes=0, locking=False)
            try:
                f.attrs["format"] = FORMAT_NAME
                f.attrs["schema_version"] = SCHEMA_VERSION
                f.attrs["complete"] = False
                yield f
                f.attrs["complete"] = True
            finally:
                f.close()
        os.replace(tmp, path)
    except BaseException as exc:
        written = tmp.stat().st_size if tmp.exists() else 0
        if written:
            os.truncate(tmp, 0)  # frees the space now, even where HDF5 still holds the file open
        tmp.unlink(missing_ok=True)
        if diskspace.is_no_space(exc):
            raise diskspace.disk_full(path, written, size_hint) from None
        raise


def write_core(f: h5py.File, *, latents: np.ndarray, classes: np.ndarray, indices: np.ndarray,
               config: Mapping[str, Any], seed: int, split: str | None = None,
               multimodal: tuple[Any, ...] | None = None) -> None:
    """Write latents, classes, sample indices and the provenance attributes (schema v1); ``split``: the
    root attribute ``split`` (``causal3dident.splits``), if given. A Multimodal3DIdent config also gets
    ``/multimodal`` (``causal3dident.multimodal_store``): drawn from ``seed``, or ``multimodal`` = (image table,
    text table, provenance, sentences) as a release holds them."""
    latents = np.asarray(latents, dtype=np.float32)
    classes = np.asarray(classes, dtype=np.int64)
    if latents.ndim != 2 or latents.shape[1] != NUM_LATENTS or classes.shape != (len(latents),):
        raise ValueError(f"latents must be [N, {NUM_LATENTS}] and classes [N]; got {latents.shape}, {classes.shape}")
    ds = f.create_dataset("latents", data=latents, chunks=_row_chunks(latents.shape))
    ds.attrs["names"] = list(LATENT_NAMES)
    ds.attrs["range"] = [-1.0, 1.0]
    f.create_dataset("classes", data=classes, chunks=_row_chunks(classes.shape))
    f.create_dataset("index", data=np.asarray(indices, dtype=np.int64), chunks=_row_chunks(classes.shape))
    f.attrs["num_samples"] = len(latents)
    f.attrs["class_names"] = list(CLASS_NAMES)
    f.attrs["latent_names"] = list(LATENT_NAMES)
    f.attrs["seed"] = int(seed)
    f.attrs["config"] = json.dumps(config, sort_keys=True)
    f.attrs["package_version"] = package_version()
    f.attrs["created"] = utc_now()
    if split is not None:
        f.attrs["split"] = split
    from . import multimodal_store  # late: only multimodal files need the text module

    if multimodal is not None:
        multimodal_store.write_tables(f, *multimodal)
    elif multimodal_store.is_multimodal(config) and "preset" in config:  # drawn latents: their text is drawn too
        multimodal_store.write_drawn(f, config, latents, classes, seed, indices)


def write_pair_latents(f: h5py.File, name: str, latents: np.ndarray, transformation: Mapping[str, Any]) -> None:
    """``/pairs/<name>/latents``: the transformed latents z~ of every anchor, row for row."""
    group = f.require_group("pairs").create_group(name)
    ds = group.create_dataset("latents", data=np.asarray(latents, dtype=np.float32),
                              chunks=_row_chunks(np.shape(latents)))
    ds.attrs["names"] = list(LATENT_NAMES)
    group.attrs["transformation"] = json.dumps(dict(transformation), sort_keys=True)
    if "multimodal" in f:  # Multimodal3DIdent: the views' own text, where the transformation can change it
        from .multimodal_store import write_view_text

        write_view_text(f, name, latents, transformation)


def _row_chunks(shape: Sequence[int]) -> tuple[int, ...] | None:
    if not shape or shape[0] == 0:
        return None
    return (min(shape[0], 65536), *shape[1:])


# -- reading ---------------------------------------------------------------------------------------
def open_dataset(path: str | os.PathLike[str], mode: str = "r", *, check_structure: bool = True) -> h5py.File:
    """Open a dataset file after checking it is ours, of a schema we read, complete and (unless
    ``check_structure`` is False) holding every dataset and attribute the schema requires."""
    path = Path(path)
    if not path.exists():
        raise DatasetFileError(f"{path}: no such file; create one with 'c3di latents' or 'c3di render'")
    if path.is_dir():
        raise DatasetFileError(f"{path} is a directory; pass the .h5 file inside it")
    codecs.load_filter_plugins()  # lets h5py read LZ4-compressed images
    try:
        f = h5py.File(path, mode)
    except OSError as exc:
        raise DatasetFileError(describe_open_error(path, exc)) from None
    try:
        check_header(f, path)
        if check_structure:
            problems = structure_problems(f)
            if problems:
                raise DatasetFileError(f"{path} is not a well-formed Causal3DIdent file: {'; '.join(problems)}; "
                                       f"re-create it with the command that made it ('c3di verify' lists defects)")
    except BaseException:
        f.close()
        raise
    return f


def describe_open_error(path: Path, exc: OSError) -> str:
    """One line saying why HDF5 could not open ``path``: busy (locked by a writer), unreadable, foreign,
    truncated or damaged."""
    text = str(exc)
    if "unable to lock file" in text.lower() or (exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK)
                                                  and "lock" in text.lower()):
        return (f"{path} is busy: another process has it open for writing (HDF5 file lock); wait until that "
                f"process finishes, then retry")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as err:
        return f"{path} cannot be read ({err.strerror}); check that it exists and is readable"
    if head != b"\x89HDF\r\n\x1a\n":
        return (f"{path} is not an HDF5 file (no HDF5 signature); pass a Causal3DIdent .h5 file, "
                f"or convert an original-layout folder with 'c3di convert'")
    if "truncated" in text.lower() or "eof" in text.lower():
        return (f"{path} is truncated ({path.stat().st_size} bytes; HDF5 says: {text.split('(')[0].strip()}); "
                f"it was cut short while copying or writing: copy it again or re-run the command that made it")
    return f"{path} cannot be opened as HDF5 ({text}); the file is damaged: re-create or re-copy it"


def check_header(f: h5py.File, path: str | os.PathLike[str] = "") -> None:
    """Raise ``DatasetFileError`` unless ``f`` carries our format marker, schema v1 and 'complete'."""
    where = str(path or f.filename)
    fmt = f.attrs.get("format")
    if fmt is None or _as_str(fmt) != FORMAT_NAME:
        raise DatasetFileError(f"{where} is an HDF5 file but not a Causal3DIdent dataset (no format='causal3dident' "
                               f"attribute); create one with 'c3di latents' or 'c3di convert'")
    try:
        version = int(f.attrs.get("schema_version", -1))
    except (TypeError, ValueError):
        raise DatasetFileError(f"{where} has schema version {_as_str(f.attrs['schema_version'])!r}, not a number; "
                               f"this package reads version {SCHEMA_VERSION}: re-create the file") from None
    if version != SCHEMA_VERSION:
        hint = "upgrade causal3dident" if version > SCHEMA_VERSION else "re-create it with this version"
        raise DatasetFileError(f"{where} has schema version {version}; this package reads version "
                               f"{SCHEMA_VERSION}: {hint}")
    if not bool(f.attrs.get("complete", False)):
        raise DatasetFileError(f"{where} is incomplete: the job that wrote it did not finish; re-run that command "
                               f"(render jobs resume) or delete the file")


def _as_str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


REQUIRED_ATTRS = ("num_samples", "seed", "config", "class_names", "package_version", "created")


def structure_problems(f: h5py.File) -> list[str]:
    """What a file lacks or holds in the wrong form, from its metadata alone (no data is read): the checks
    ``c3di verify`` starts with, which the loader and ``c3di info`` make when they open a file."""
    problems = [f"missing dataset /{key}" for key in ("latents", "classes", "index") if key not in f]
    problems += [f"/{key} is a group, not a dataset" for key in ("latents", "classes", "index", "images")
                 if isinstance(f.get(key), h5py.Group)]
    problems += [f"missing root attribute {key!r}" for key in REQUIRED_ATTRS if key not in f.attrs]
    if problems:
        return problems
    try:
        n = int(f.attrs["num_samples"])
        int(f.attrs["seed"])
    except (TypeError, ValueError):
        return ["root attributes 'num_samples' and 'seed' must be integers"]
    try:
        if not isinstance(read_config(f), dict):
            problems.append("root attribute 'config' is not a JSON object")
    except ValueError:
        problems.append("root attribute 'config' is not valid JSON")
    latents, classes, index = f["latents"], f["classes"], f["index"]
    if latents.dtype != np.float32 or latents.shape != (n, NUM_LATENTS):
        problems.append(f"/latents is {latents.dtype} {latents.shape}, expected float32 ({n}, {NUM_LATENTS})")
    if classes.dtype != np.int64 or classes.shape != (n,):
        problems.append(f"/classes is {classes.dtype} {classes.shape}, expected int64 ({n},)")
    if index.shape != (n,):
        problems.append(f"/index has shape {index.shape}, expected ({n},)")
    if "images" in f:
        problems += _image_shape_problems(f["images"], n, "/images")
    pairs = f.get("pairs")
    if pairs is not None and not isinstance(pairs, h5py.Group):
        problems.append("/pairs is a dataset, not a group of transformations (/pairs/<name>/latents)")
    elif pairs is not None:
        for name, group in pairs.items():
            if not isinstance(group, h5py.Group):
                problems.append(f"/pairs/{name} is a dataset, not a group with latents (and images)")
                continue
            z = group.get("latents")
            if not isinstance(z, h5py.Dataset) or z.shape != (n, NUM_LATENTS):
                problems.append(f"/pairs/{name}/latents must be float32 [{n}, {NUM_LATENTS}]")
            if "images" in group:
                problems += _image_shape_problems(group["images"], n, f"/pairs/{name}/images")
    sums: list[tuple[str, h5py.Dataset]] = []
    if isinstance(f.get("checksums"), h5py.Group):
        f["checksums"].visititems(lambda name, obj: sums.append((name, obj)) if isinstance(obj, h5py.Dataset) else None)
    problems += [f"/checksums/{name} is {ds.dtype} {ds.shape}, expected uint32 ({n},)" for name, ds in sums
                 if ds.dtype != np.uint32 or ds.shape != (n,)]
    from .multimodal_store import problems as multimodal_problems

    return problems + multimodal_problems(f)


def _image_shape_problems(ds: h5py.Dataset | h5py.Group, n: int, where: str) -> list[str]:
    if not isinstance(ds, h5py.Dataset):
        return [f"{where} is a group, not a uint8 [{n}, H, W, 3] dataset"]
    if ds.dtype != np.uint8 or ds.ndim != 4 or ds.shape[0] != n or ds.shape[3] != 3:
        return [f"{where} is {ds.dtype} {ds.shape}, expected uint8 [{n}, H, W, 3]"]
    return []


def read_config(f: h5py.File) -> dict[str, Any]:
    return json.loads(_as_str(f.attrs["config"]))


def read_latents(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Latents float32 [N, 10] and classes int64 [N] of a dataset file."""
    with open_dataset(path) as f:
        return f["latents"][...], f["classes"][...]


def pair_names(f: h5py.File) -> list[str]:
    return sorted(f["pairs"]) if isinstance(f.get("pairs"), h5py.Group) else []


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a file holds: counts per class, resolution, pairs, config and provenance."""
    with open_dataset(path) as f:
        classes = f["classes"][...]
        counts = np.bincount(classes, minlength=NUM_CLASSES)
        images = f.get("images")
        info: dict[str, Any] = {
            "path": str(path),
            "schema_version": int(f.attrs["schema_version"]),
            "num_samples": int(f.attrs["num_samples"]),
            "class_counts": {c: int(k) for c, k in zip(CLASS_NAMES, counts)},
            "images": None if images is None else list(images.shape[1:]),
            "rendered": _rendered_count(f),
            "pairs": {name: {"images": "images" in f["pairs"][name]} for name in pair_names(f)},
            "pixel_checksums": _has_checksums(f),
            "seed": int(f.attrs["seed"]),
            "split": _as_str(f.attrs["split"]) if "split" in f.attrs else None,
            "package_version": _as_str(f.attrs["package_version"]),
            "created": _as_str(f.attrs["created"]),
            "config": read_config(f),
        }
        if isinstance(f.get("multimodal"), h5py.Group):  # Multimodal3DIdent: sentences and their provenance
            from .multimodal_store import pair_text_names

            info["text"] = {"sentences": int(f["multimodal/text"].shape[0]),
                            "provenance": json.loads(_as_str(f["multimodal"].attrs["provenance"])),
                            "pairs": pair_text_names(f)}
        for key in ("blender_version", "render_settings"):
            if key in f.attrs:
                value = _as_str(f.attrs[key])
                info[key] = json.loads(value) if value.startswith("{") else value
        return info


def _has_checksums(f: h5py.File) -> bool | None:
    """Whether every image dataset has recorded pixel checksums (None: the file has no images)."""
    from .checksums import checksum_path, image_datasets

    names = image_datasets(f)
    return all(checksum_path(name) in f for name in names) if names else None


def _rendered_count(f: h5py.File) -> int | None:
    if "images" not in f:
        return None
    return int(f.attrs.get("num_rendered", f["images"].shape[0]))


# -- verification ----------------------------------------------------------------------------------
def verify(path: str | os.PathLike[str], regenerate: bool = True, *, progress: bool = False,
           notes: list[str] | None = None) -> list[str]:
    """Every defect found in a dataset file (empty list: the file is sound).

    Checks the structure, dtypes, shapes, ranges and pair alignment; decodes every image of every image
    dataset and compares it with its recorded checksum (``progress``: a bar on stderr); with ``regenerate``
    (first), re-derives the latents from the recorded config and seed and compares them exactly. Remarks that are
    not defects (a file written before pixel checksums existed) are appended to ``notes``.
    """
    from .checksums import check_pixels  # late: it imports the statistics, which import the neighbour search

    try:
        f = open_dataset(path, check_structure=False)
    except DatasetFileError as exc:
        return [str(exc)]
    with f:
        problems = structure_problems(f)
        if problems:
            return problems
        problems += _check_values(f)
        if problems:
            return problems
        problems += [p for name in ("images", *(f"pairs/{lt}/images" for lt in pair_names(f))) if name in f
                     for p in _check_rendered(f, name)]
        if problems:
            return problems
        if regenerate:  # latents first: cheap, and a bad recorded config is found before decoding every image
            problems += _check_regenerates(f, notes)
        pixel_problems, pixel_notes = check_pixels(f, progress)
        problems += pixel_problems
        if notes is not None:
            notes += pixel_notes
    return problems


def _check_values(f: h5py.File) -> list[str]:
    problems = []
    if [_as_str(x) for x in f["latents"].attrs.get("names", [])] != list(LATENT_NAMES):
        problems.append("/latents 'names' attribute does not list the ten latents in order")
    z, c = f["latents"][...], f["classes"][...]
    if not np.isfinite(z).all() or (np.abs(z) > 1.0).any():
        problems.append("/latents has values outside [-1, 1] or non-finite values")
    if ((c < 0) | (c >= NUM_CLASSES)).any():
        problems.append(f"/classes has labels outside 0..{NUM_CLASSES - 1}")
    return problems


def _check_rendered(f: h5py.File, name: str) -> list[str]:
    rendered, n = _rendered_count(f), int(f.attrs["num_samples"])
    if rendered is not None and rendered != n:
        return [f"/{name}: only {rendered} of {n} samples rendered; resume the render job"]
    return []


def _check_regenerates(f: h5py.File, notes: list[str] | None = None) -> list[str]:
    from .citris_convert import consistency_problems, converted_note, is_converted
    from .generate import latents_for_config  # late: avoid a cycle

    config = read_config(f)
    if is_converted(config):  # CITRIS's files: no seed to regenerate from (causal3dident.citris_convert)
        if notes is not None:
            notes.append(converted_note(config))
        return consistency_problems(f, config)
    if "temporal" in config:  # a sequence (causal3dident.temporal_store)
        from .temporal_store import regeneration_problems

        return regeneration_problems(f, config)
    if "triplets" in config:  # triplets of a sequence (causal3dident.triplets)
        from .triplets import regeneration_problems as triplet_problems

        return triplet_problems(f, config)
    if "preset" not in config:  # converted or hand-made data: nothing to regenerate from
        from .multimodal_convert import converted_release_problems  # a Multimodal3DIdent release: what it can check

        return converted_release_problems(f, config, notes)
    index = f["index"][...]
    if len(index) == 0:
        return []
    if not np.array_equal(index, np.arange(index[0], index[0] + len(index))):
        return ["/index is not a contiguous range of sample indices"]
    expected = latents_for_config(config, int(f.attrs["seed"]), int(index[0]), len(index))
    problems = []
    if not np.array_equal(expected["latents"], f["latents"][...]) or \
            not np.array_equal(expected["classes"], f["classes"][...]):
        problems.append("/latents or /classes differ from what the recorded config and seed generate")
    for name, z in expected["pairs"].items():
        if name in pair_names(f) and not np.array_equal(z, f["pairs"][name]["latents"][...]):
            problems.append(f"/pairs/{name}/latents differ from what the recorded config and seed generate")
    from .multimodal_store import regenerate_problems

    return problems + regenerate_problems(f, expected, int(f.attrs["seed"]))


# -- images ----------------------------------------------------------------------------------------
IMAGE_COMPRESSION: dict[str, Any] = codecs.GZIP_ARGS
"""h5py filter arguments of image datasets by default, chosen by measurement (benchmarks/perf/loader_throughput.py):
gzip (deflate) level 6, which every HDF5 reader decodes; 1.1-1.3x the size of the same images as PNG
(lzf: 1.5-1.8x; Zstd and Blosc compared in benchmarks/perf/codec_choice.py). ``codec="lz4"`` trades portability
(readers need the LZ4 filter plugin) for decoding several times faster (``c3di repack``); see
causal3dident/codecs.py."""


def create_image_dataset(group: h5py.Group, name: str, n: int, height: int, width: int,
                         codec: str = "gzip") -> h5py.Dataset:
    """An empty uint8 [n, height, width, 3] image dataset, one image per chunk (random access); write LZ4 ones
    with :func:`causal3dident.codecs.write_images`."""
    return group.create_dataset(name, shape=(n, height, width, 3), dtype=np.uint8,
                                chunks=(1, height, width, 3), **codecs.filter_args(codec))
