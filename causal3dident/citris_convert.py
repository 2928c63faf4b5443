"""``c3di convert --format citris``: CITRIS's ``<split>.npz`` / ``<split>_triplets[_coarse].npz`` -> one HDF5 file.

The inverse of ``c3di export --format citris`` (causal3dident.citris_export): a sequence becomes a sequence file
(causal3dident.temporal_store: /sequence/latents in the preset's units, /sequence/targets with an all-0 row 0,
/latents mapped onto [-1, 1], /classes in this package's labels), a triplet file a triplet file (the mixed frames
as the samples, /triplets/first|second/images, /triplets/masks, /triplets/latents, /triplets/classes; CITRIS's
files do not say which frames a triplet came from, so there is no /triplets/sources). Every array is kept
exactly, so exporting the converted file writes the same arrays byte for byte. The config records the source
files and their SHA-256 under ``converted`` and the temporal preset that describes the frames (``--preset``).
CITRIS's random draws are not in its files, so ``c3di verify`` cannot regenerate a converted file from a seed:
it checks that its arrays agree with each other and with their pixel checksums, and says so.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import h5py
import numpy as np

from . import diskspace
from .checksums import seal
from .citris_export import CITRIS_CLASSES, CITRIS_TARGETS
from .codecs import write_images
from .errors import ConfigError, DatasetFileError
from .file_hash import sha256_of
from .latents import CLASS_NAMES, LATENT_NAMES
from .splits import check_split
from .store import atomic_h5, check_output, create_image_dataset, write_core
from .temporal import Frames, TemporalModel, load_temporal
from .temporal_store import GROUP, write_sequence

FORMAT = "citris"
KEYS = ("imgs", "interventions", "raw_latents", "shape_latents")
DEFAULT_PRESET = "temporal_causal3dident"
BLOCK = 256
_NAME = re.compile(r"^(?P<split>.+?)(?P<triplets>_triplets(?P<coarse>_coarse)?)?$")


def is_citris_source(source: Path) -> bool:
    """Whether ``source`` is a CITRIS ``.npz`` file or a folder holding one (its keys name CITRIS's arrays)."""
    return bool(_candidates(source))


def _candidates(source: Path) -> list[Path]:
    files = [source] if source.is_file() else sorted(source.glob("*.npz")) if source.is_dir() else []
    return [p for p in files if p.suffix == ".npz" and "imgs" in (_keys(p) or ())]


def _keys(path: Path) -> tuple[str, ...] | None:
    try:
        with zipfile.ZipFile(path) as zf:
            return tuple(n.removesuffix(".npy") for n in zf.namelist())
    except (OSError, zipfile.BadZipFile):
        return None


def _split_of(stem: str) -> str:
    """The split a CITRIS file name gives: ``val`` for val.npz, val_triplets.npz and val_triplets_coarse.npz."""
    match = _NAME.match(stem)
    return match["split"] if match else stem


def find_file(source: Path, split: str | None) -> Path:
    """The CITRIS file to convert: ``source`` itself, or ``source/<split>.npz`` (``<split>_triplets.npz``,
    ``<split>_triplets_coarse.npz``); without ``split``, the only CITRIS file in ``source``."""
    if source.is_file():
        if split is not None and split not in (source.stem, _split_of(source.stem)):
            raise ConfigError(f"--split {split}: {source.name} is CITRIS's file of split {_split_of(source.stem)!r}; "
                              f"drop --split or pass the folder that holds {split}.npz")
        return source
    if not source.is_dir():
        raise DatasetFileError(f"{source}: no such file or folder; pass the folder c3di export --format citris wrote "
                               f"(or a CITRIS .npz file)")
    found = _candidates(source)
    names = ", ".join(p.name for p in found) or "none"
    if split is None:
        if len(found) == 1:
            return found[0]
        if not found:
            raise DatasetFileError(f"{source} holds no CITRIS file (<split>.npz with keys {', '.join(KEYS)}); pass "
                                   f"the folder c3di export --format citris wrote, or a CITRIS release folder")
        raise ConfigError(f"{source} holds several CITRIS files ({names}); choose one with --split (e.g. --split "
                          f"{found[0].stem})")
    check_split(split)
    exact = source / f"{split}.npz"
    if exact in found:
        return exact
    matches = [p for p in found if _split_of(p.stem) == split]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ConfigError(f"{source} holds several files of split {split!r} ({', '.join(p.name for p in matches)}); "
                          f"choose one with --split {matches[0].stem}")
    raise DatasetFileError(f"{source} has no CITRIS file of split {split!r} ({split}.npz, {split}_triplets.npz or "
                           f"{split}_triplets_coarse.npz); it holds: {names}")


# -- reading the .npz without loading the images whole ------------------------------------------------------------
class _Member:
    """One array of an .npz file: its shape and dtype from the .npy header, its rows read in blocks (C order; an
    array stored in Fortran order is read whole)."""

    def __init__(self, zf: zipfile.ZipFile, key: str, where: str) -> None:
        self.zf, self.key, self.where = zf, key, where
        with self._open() as fh:
            self.shape, self.dtype, self.fortran = self._header(fh)
        if not self.shape:
            raise DatasetFileError(f"{where}: {key} is a scalar; CITRIS's {key} is an array")

    def _open(self) -> IO[bytes]:
        return self.zf.open(f"{self.key}.npy")

    def _header(self, fh: IO[bytes]) -> tuple[tuple[int, ...], np.dtype, bool]:
        fmt = np.lib.format
        try:
            version = fmt.read_magic(fh)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dtype = read(fh)
        except ValueError as exc:
            raise DatasetFileError(f"{self.where}: {self.key} is not a NumPy array ({exc}); re-download the file") \
                from None
        if dtype.hasobject:
            raise DatasetFileError(f"{self.where}: {self.key} holds Python objects; CITRIS's arrays are numbers: "
                                   f"re-create the file")
        return tuple(shape), dtype, bool(fortran)

    def read(self) -> np.ndarray:
        """The whole array."""
        with self._open() as fh:
            try:
                return np.lib.format.read_array(fh, allow_pickle=False)
            except ValueError as exc:
                raise DatasetFileError(f"{self.where}: {self.key} is truncated or damaged ({exc}); re-download "
                                       f"the file") from None

    def blocks(self, rows: int = BLOCK) -> Iterator[np.ndarray]:
        """The array in blocks of ``rows`` rows."""
        n = self.shape[0]
        if self.fortran:
            whole = self.read()
            yield from (whole[lo:lo + rows] for lo in range(0, n, rows))
            return
        row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        with self._open() as fh:
            self._header(fh)
            for lo in range(0, n, rows):
                count = min(rows, n - lo)
                data = fh.read(count * row_bytes)
                if len(data) != count * row_bytes:
                    raise DatasetFileError(f"{self.where}: {self.key} is truncated; re-download the file")
                yield np.frombuffer(data, dtype=self.dtype).reshape(count, *self.shape[1:])


def _members(zf: zipfile.ZipFile, where: str) -> dict[str, _Member]:
    present = {n.removesuffix(".npy") for n in zf.namelist()}
    missing = [k for k in KEYS if k not in present]
    if missing:
        raise DatasetFileError(f"{where} lacks {', '.join(missing)}; CITRIS's files hold {', '.join(KEYS)} "
                               f"(c3di export --format citris writes them)")
    return {k: _Member(zf, k, where) for k in KEYS}


# -- checks ---------------------------------------------------------------------------------------------------
def _expect(where: str, key: str, shape: tuple[int, ...], expected: tuple[Any, ...], what: str) -> None:
    ok = len(shape) == len(expected) and all(e is None or s == e for s, e in zip(shape, expected))
    if not ok:
        text = "[" + ", ".join("*" if e is None else str(e) for e in expected) + "]"
        raise DatasetFileError(f"{where}: {key} has shape {list(shape)}, CITRIS's is {text} ({what}); "
                               f"re-create the file with c3di export --format citris")


def _check_values(where: str, targets: np.ndarray, latents: np.ndarray, shapes: np.ndarray) -> None:
    if not np.isin(targets, (0, 1)).all():
        raise DatasetFileError(f"{where}: interventions hold values other than 0 and 1; CITRIS's mark each "
                               f"intervened variable with 1")
    if not np.isfinite(latents).all():
        raise DatasetFileError(f"{where}: raw_latents hold non-finite values; re-create the file")
    shape = shapes[..., 0]
    if not np.isin(shape, np.arange(len(CITRIS_CLASSES))).all():
        raise DatasetFileError(f"{where}: shape_latents[..., 0] must be shape indices 0..{len(CITRIS_CLASSES) - 1} "
                               f"({', '.join(CITRIS_CLASSES)})")
    if (shapes[..., 1] != 0).any():
        raise DatasetFileError(f"{where}: shape_latents[..., 1] (the material) is not 0 everywhere; CITRIS fixes "
                               f"the material, and this package renders one material only")


def package_classes(citris: np.ndarray) -> np.ndarray:
    """CITRIS's shape indices -> this package's class labels (the inverse of ``citris_export.citris_classes``)."""
    lookup = np.array([CLASS_NAMES.index(name) for name in CITRIS_CLASSES], dtype=np.int64)
    return lookup[np.asarray(citris, dtype=np.int64)]


def _model(preset: str | None) -> TemporalModel:
    model = load_temporal(preset or DEFAULT_PRESET)
    if tuple(model.target_names) != CITRIS_TARGETS:
        raise ConfigError(f"--preset {model.name}: its target columns are {', '.join(model.target_names)}; CITRIS's "
                          f"are {', '.join(CITRIS_TARGETS)} (give the preset extra_columns: [material])")
    return model


def _native_to_unit(model: TemporalModel, latents: np.ndarray, where: str) -> np.ndarray:
    """/latents of CITRIS's values (``temporal_store.normalised``); constants must already lie in [-1, 1]."""
    from .temporal_store import normalised

    out = normalised(model, latents)
    if (np.abs(out) > 1).any():
        bad = [LATENT_NAMES[j] for j in np.flatnonzero((np.abs(out) > 1).any(axis=0))]
        raise DatasetFileError(f"{where}: {', '.join(bad)} hold values outside [-1, 1] where preset "
                               f"{model.name!r} fixes them; pass --preset with a preset that lets them vary")
    return out


# -- convert --------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Release:
    """One CITRIS file, checked: its images (read later, in blocks) and its other arrays, read whole."""

    path: Path
    triplets: bool
    coarse: bool
    imgs: _Member
    targets: np.ndarray
    latents: np.ndarray
    """float64 [N, 10] (triplets: [N, 3, 10]), CITRIS's units."""
    classes: np.ndarray
    """This package's labels, [N] (triplets: [N, 3])."""

    @property
    def size(self) -> tuple[int, int, int]:
        """Frames (triplets), height, width."""
        return self.imgs.shape[0], self.imgs.shape[-3], self.imgs.shape[-2]


def convert_citris(source: str | os.PathLike[str], out: str | os.PathLike[str], *, split: str | None = None,
                   preset: str | None = None, overwrite: bool = False, compression: str = "gzip",
                   progress: bool = False) -> Path:
    """Convert one CITRIS file (``source``: the file, or a folder and ``split``) into a new HDF5 dataset file;
    ``preset``: the temporal preset whose equations the file follows (default temporal_causal3dident)."""
    from .convert import _bar

    check_output(out, overwrite)
    path = find_file(Path(source), split)
    split = check_split(_split_of(path.stem))
    model = _model(preset)
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise DatasetFileError(f"{path} is not an .npz file ({exc}); re-download or re-export it") from None
    with zf:
        release = _read(zf, path)
        unit = _native_to_unit(model, release.latents[:, 2] if release.triplets else release.latents, str(path))
        config = _config(release, model)
        n = release.size[0]
        size = diskspace.estimate_copy([path], compression)
        with atomic_h5(out, overwrite, size_hint=size) as f, _bar(n, f"converting {path.name}", progress) as bar:
            write_core(f, latents=unit, classes=release.classes[:, 2] if release.triplets else release.classes,
                       indices=np.arange(n, dtype=np.int64), config=config, seed=0, split=split)
            _write_arrays(f, release, model)
            _write_images(f, release, compression, bar)
            f.attrs["num_rendered"] = n
            seal(f, source=str(path))
    return Path(out)


def _read(zf: zipfile.ZipFile, path: Path) -> _Release:
    """The arrays of a CITRIS file, their shapes and values checked (one ``DatasetFileError`` line each)."""
    name = _NAME.match(path.stem)
    triplets, coarse = bool(name and name["triplets"]), bool(name and name["coarse"])
    where = str(path)
    arrays = _members(zf, where)
    imgs = arrays["imgs"]
    _expect(where, "imgs", imgs.shape, ((None, 3) if triplets else (None,)) + (None, None, None),
            "uint8 images, RGB or RGBA" + (": first, second, mixed frame" if triplets else ""))
    n, channels = imgs.shape[0], imgs.shape[-1]
    if imgs.dtype != np.uint8 or channels not in (3, 4):
        raise DatasetFileError(f"{where}: imgs must be uint8 [..., H, W, 3] (or RGBA), got {imgs.dtype} "
                               f"[..., {channels}]")
    if n == 0:
        raise DatasetFileError(f"{where} holds no frames; re-download or re-export it")
    targets, latents, shapes = (arrays[k].read() for k in ("interventions", "raw_latents", "shape_latents"))
    lead, steps = ((n, 3), n) if triplets else ((n,), n - 1)
    _expect(where, "interventions", targets.shape, (steps, len(CITRIS_TARGETS)),
            "one mask per triplet" if triplets else "row t: the step t -> t + 1")
    _expect(where, "raw_latents", latents.shape, (*lead, len(LATENT_NAMES)), "CITRIS's ten latents per frame")
    _expect(where, "shape_latents", shapes.shape, (*lead, 2), "shape and material of each frame")
    _check_values(where, targets, latents, shapes)
    return _Release(path, triplets, coarse, imgs, targets, latents.astype(np.float64),
                    package_classes(shapes[..., 0]))


def _config(release: _Release, model: TemporalModel) -> dict[str, Any]:
    """The converted file's config: where it came from (names, sizes, SHA-256) and the preset it follows."""
    path = release.path
    record: dict[str, Any] = {"format": FORMAT, "preset": model.name, "files": [
        {"name": path.name, "bytes": path.stat().st_size, "sha256": sha256_of(path)}]}
    if release.imgs.shape[-1] == 4:
        record["dropped"] = "the alpha channel of imgs (CITRIS's Causal3DDataset reads imgs[..., :3])"
    config: dict[str, Any] = {"source": "CITRIS release layout (Temporal Causal3DIdent)", "converted": record,
                              "images": {"source": f"imgs of CITRIS's {path.name}", "resolution": release.size[1]}}
    if release.triplets:
        config["sequence"] = {"config": {"temporal": model.to_dict()}}
        config["triplets"] = {"num_triplets": release.size[0], "masks": "coarse" if release.coarse else "fine",
                              "mask_columns": list(CITRIS_TARGETS)}
    else:
        config.update({"temporal": model.to_dict(), "num_samples_total": release.size[0]})
    return config


def _write_arrays(f: h5py.File, release: _Release, model: TemporalModel) -> None:
    """A triplet file's /triplets/masks, latents and classes; a sequence file's /sequence (targets: row 0 all 0)."""
    if release.triplets:
        group = f.create_group("triplets")
        group.create_dataset("masks", data=release.targets.astype(np.uint8))
        group.create_dataset("latents", data=release.latents)
        group.create_dataset("classes", data=release.classes)
        return
    n = release.size[0]
    targets = np.zeros((n, len(CITRIS_TARGETS)), dtype=np.uint8)
    targets[1:] = release.targets
    order = np.array([model.class_names.index(CLASS_NAMES[c]) for c in release.classes], dtype=np.int64)
    write_sequence(f, model, Frames(0, release.latents, order, targets))


def _write_images(f: h5py.File, release: _Release, compression: str, bar: Any) -> None:
    """imgs in blocks: a sequence's to /images; a triplet's first, second and mixed frame to /triplets/first/images,
    /triplets/second/images and /images."""
    n, height, width = release.size
    views = ("triplets/first/images", "triplets/second/images", "images") if release.triplets else ("images",)
    datasets = [create_image_dataset(f.require_group(os.path.dirname(v)) if "/" in v else f, os.path.basename(v),
                                     n, height, width, compression) for v in views]
    lo = 0
    for block in release.imgs.blocks():
        block = block[..., :3]
        for k, ds in enumerate(datasets):
            write_images(ds, lo, np.ascontiguousarray(block[:, k] if release.triplets else block))
        lo += len(block)
        bar.update(len(block))


# -- what verify checks instead of a regeneration -------------------------------------------------------------
def is_converted(config: Mapping[str, Any]) -> bool:
    """Whether a dataset file's config says it was converted from CITRIS's files."""
    converted = config.get("converted")
    return isinstance(converted, Mapping) and converted.get("format") == FORMAT


def converted_files(config: Mapping[str, Any]) -> str:
    """The files a converted file came from, as 'NAME (SHA-256 0123456789ab...)', comma-separated."""
    return ", ".join(f"{x['name']} (SHA-256 {x['sha256'][:12]}...)" for x in config["converted"]["files"])


def converted_note(config: Mapping[str, Any]) -> str:
    return (f"converted from CITRIS's {converted_files(config)}: their random draws are not in those files, so the frames cannot be "
            f"regenerated from a seed; verify checked instead that /latents and /classes agree with the CITRIS "
            f"values stored beside them, and every image with its checksum")


def consistency_problems(f: h5py.File, config: Mapping[str, Any]) -> list[str]:
    """What disagrees inside a converted file: /latents and /classes against the CITRIS values stored beside them."""
    from .temporal_store import model_from_config, normalised

    triplets = "triplets" in config
    model = model_from_config(config["sequence"]["config"] if triplets else config)
    try:
        if triplets:
            native, classes = f["triplets/latents"][:, 2], f["triplets/classes"][:, 2]
            masks = f["triplets/masks"][...]
            extra = [] if np.isin(masks, (0, 1)).all() else ["/triplets/masks hold values other than 0 and 1"]
        else:
            group = f[GROUP]
            native, classes, targets = group["latents"][...], f["classes"][...], group["targets"][...]
            starts_at_0 = "shard" not in f.attrs or json.loads(f.attrs["shard"])["start"] == 0  # a rendered shard
            first = targets[:1] if starts_at_0 else targets[:0]
            extra = [] if np.isin(targets, (0, 1)).all() and not first.any() else \
                [f"/{GROUP}/targets hold values other than 0 and 1, or a target in row 0 (no step leads to frame 0)"]
    except KeyError as exc:
        return [f"a file converted from CITRIS's files lacks {exc}; convert it again"]
    problems = extra
    if not np.array_equal(f["latents"][...], normalised(model, native)) or \
            not np.array_equal(f["classes"][...], classes):
        where = "/triplets/latents and /triplets/classes" if triplets else f"/{GROUP}/latents"
        problems.append(f"/latents or /classes disagree with {where} (the converted CITRIS values)")
    return problems


def refuse_converted(config: Mapping[str, Any], path: str | os.PathLike[str], what: str) -> None:
    """A one-line ``ConfigError`` where a command needs a file's sequence regenerated from its seed."""
    if is_converted(config):
        raise ConfigError(f"{path} was converted from CITRIS's files, whose random draws are not recorded, so its "
                          f"frames cannot be regenerated from a seed and {what} needs that; sample a sequence with "
                          f"c3di latents --preset temporal_causal3dident instead")

