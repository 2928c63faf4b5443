"""Conversion both ways between our HDF5 files and folder layouts (``c3di convert``, ``c3di export``).

``convert``: an original-layout split folder (Causal3DIdent or 3DIdent PNGs + ``.npy``) -> one HDF5 file,
in the original order, sealed with pixel checksums and image statistics. ``export``: an HDF5 file -> the
original layout (``--format original``) or PNGs + a table that Croissant describes (``--format csv`` or
``parquet``: ``DIR/images/<split>/<index:06d>.png`` and ``DIR/<split>.csv`` or ``.parquet``, see
``causal3dident.croissant``).
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import click
import h5py
import numpy as np

from . import diskspace
from .checksums import read_checked, seal, stored
from .cli import on_interrupt
from .codecs import CODECS, write_images
from .errors import ConfigError, DatasetFileError, OutputExistsError
from .latents import CLASS_NAMES, LATENT_NAMES, NUM_CLASSES
from .original_layout import (EXPECTED, OriginalSplit, detect_layout, find_split, write_3dident_split, write_pngs,
                              write_split)
from .outputs import check_writable_folder
from .splits import NAMED_SPLITS, check_split, recorded_split
from .staging import staged_folder
from .store import atomic_h5, check_output, create_image_dataset, open_dataset, write_core

BLOCK = 256
FORMATS = ("original", "3dident", "csv", "parquet", "citris", "multimodal3dident")


def default_workers() -> int:
    return min(8, os.cpu_count() or 1)


def _layout(folder: Path) -> str | None:
    """The release layout ``folder`` holds: the original ones, or Multimodal3DIdent's."""
    from .multimodal_layout import is_release_folder

    return detect_layout(folder) or ("multimodal3dident" if is_release_folder(folder) else None)


def split_folder(source: Path, split: str | None) -> Path:
    """The split folder to convert: ``source`` itself, or its ``<split>set`` (the only one if ``split`` is None)."""
    if _layout(source) and split is None:
        return source
    if split is not None:
        folder = find_split(source, split) or next((p for p in (source / split, source) if p.is_dir() and
                                                    _layout(p) == "multimodal3dident"), None)
        if folder is None:
            raise DatasetFileError(f"{source} has no split {split!r}; expected {EXPECTED.format(split=split)}")
        return folder
    found = sorted(p for p in source.iterdir() if p.is_dir() and _layout(p)) if source.is_dir() else []
    if len(found) == 1:
        return found[0]
    if found:
        names = ", ".join(p.name.removesuffix("set") for p in found)
        raise ConfigError(f"{source} holds several splits ({names}); choose one with --split")
    raise DatasetFileError(f"{source} holds no original-layout data; expected {EXPECTED.format(split='train')}")


CONVERT_FORMATS = ("original", "3dident", "multimodal3dident", "citris")
_LAYOUT_OF_FORMAT = {"original": "causal3dident", "3dident": "3dident", "multimodal3dident": "multimodal3dident"}


def convert(source: str | os.PathLike[str], out: str | os.PathLike[str], *, split: str | None = None,
            overwrite: bool = False, workers: int | None = None, compression: str = "gzip",
            progress: bool = False, fmt: str | None = None, preset: str | None = None) -> Path:
    """Convert one original-layout split to an HDF5 dataset file (schema v1), images and stats included;
    ``compression``: 'gzip' or 'lz4' (see causal3dident.codecs); ``progress``: a bar on stderr. ``fmt``: the
    release's format (default: detected); ``citris`` (CITRIS's .npz files, causal3dident.citris_convert) takes
    ``preset``, the temporal preset the frames follow."""
    from .citris_convert import convert_citris, is_citris_source

    if fmt is not None and fmt not in CONVERT_FORMATS:
        raise ConfigError(f"unknown convert format {fmt!r}; choose {' or '.join(CONVERT_FORMATS)}")
    check_output(out, overwrite)
    if fmt == "citris" or (fmt is None and is_citris_source(Path(source))):
        return convert_citris(source, out, split=split, preset=preset, overwrite=overwrite, compression=compression,
                              progress=progress)
    if preset is not None:
        raise ConfigError("--preset names the temporal preset of CITRIS's files; drop it, or pass --format citris")
    folder = split_folder(Path(source), split)
    layout = _layout(folder)
    if fmt is not None and layout != _LAYOUT_OF_FORMAT[fmt]:
        raise ConfigError(f"{folder} holds the {layout} layout, not --format {fmt}; drop --format to "
                          f"convert what it holds")
    if layout == "multimodal3dident":
        from .multimodal_convert import convert_release

        return convert_release(folder, out, split=split or _folder_split(folder), overwrite=overwrite,
                               compression=compression, progress=progress, workers=workers or default_workers())
    data = OriginalSplit.open(folder)
    height, width = data.image_size()
    n = len(data.latents)
    config = {"source": f"original {data.layout} layout", "split_folder": data.folder.name,
              "images": {"source": f"PNG files of the original {data.layout} release", "resolution": height}}
    size = diskspace.estimate_copy(data.files, compression, root=data.folder)
    with atomic_h5(out, overwrite, size_hint=size) as f, ThreadPoolExecutor(workers or default_workers()) as pool, \
            _bar(n, f"converting {data.folder.name}", progress) as bar:
        write_core(f, latents=data.latents, classes=data.classes, indices=np.arange(n), config=config, seed=0,
                   split=split or _folder_split(data.folder))
        images = create_image_dataset(f, "images", n, height, width, compression)
        for lo in range(0, n, BLOCK):
            block = data.read(range(lo, min(n, lo + BLOCK)), pool)  # refuses an image of another size
            write_images(images, lo, block)
            bar.update(len(block))
        f.attrs["num_rendered"] = n
        seal(f, source=str(data.folder))  # pixel checksums and image statistics, from the images as stored
    return Path(out)


def _folder_split(folder: Path) -> str | None:
    """The split an original-layout folder's name gives (``trainset`` -> train, ``test`` -> test), else None."""
    name = folder.name
    if name.endswith("set") and name != "set":
        name = name.removesuffix("set")
    elif name not in NAMED_SPLITS:
        return None
    try:
        return check_split(name)
    except ConfigError:
        return None


def export(path: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, fmt: str = "original",
           split: str | None = None, overwrite: bool = False, workers: int | None = None,
           progress: bool = False, unbalanced: str = "refuse", notes: list[str] | None = None) -> Path:
    """Write an HDF5 file's split as the original Causal3DIdent or 3DIdent layout or as PNGs + a CSV or Parquet
    table; returns the folder written. ``progress``: a bar on stderr.

    ``split`` (the folder ``<split>set/``; default: the split the file records, else the file's stem, with a
    line in ``notes``). The original layout needs every class equally often (ssl_identifiability's loader
    takes 7 x class 0's count as its length): ``unbalanced`` says what to do with a file that is not:
    'refuse' (a ``ConfigError`` saying how to fix it), 'trim' (the first m samples of each class, m the
    smallest count) or 'keep' (all, as they are).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose {' or '.join(FORMATS)}")
    if unbalanced not in UNBALANCED:
        raise ConfigError(f"--unbalanced {unbalanced!r}: choose {', '.join(UNBALANCED)}")
    if unbalanced != "refuse" and fmt != "original":
        raise ConfigError(f"--unbalanced is for --format original (equal counts per class); drop it for --format {fmt}")
    if fmt == "citris":  # a rendered sequence as CITRIS's <split>.npz (causal3dident.citris_export)
        from .citris_export import export_citris

        return export_citris(path, out_dir, split=split, overwrite=overwrite, notes=notes)
    path, out_dir = Path(path), Path(out_dir)
    split = None if split is None else check_split(split)
    with open_dataset(path) as f:
        latents, classes, index = f["latents"][...], f["classes"][...], f["index"][...]
        if split is None:
            split = recorded_split(f)
            if split is None:
                split = path.stem
                if notes is not None:
                    notes.append(f"{path.name} records no split (written before files did): the folder is named "
                                 f"after the file, {split}{'set' if fmt in LAYOUTS else ''}; pass --split train or "
                                 f"--split test for the release's trainset/ or testset/")
        has_images = "images" in f
        if fmt == "multimodal3dident":
            from .multimodal_convert import export_release

            return export_release(f, path, out_dir / split, overwrite=overwrite, workers=workers or default_workers(),
                                  progress=progress)
        target = out_dir / f"{split}set" if fmt in LAYOUTS else out_dir
        _check_target(target if fmt in LAYOUTS else out_dir / f"{split}.{fmt}", overwrite)
        if fmt not in LAYOUTS:
            _check_target(out_dir / "images" / split, overwrite)
        check_writable_folder(out_dir, "DIR")
        if fmt == "parquet":
            _pyarrow()
        if fmt in LAYOUTS and not has_images:
            raise DatasetFileError(f"{path} has no images; the original layout needs them: render the file first, "
                                   f"or export only the table with --format csv or parquet")
        rows = _rows_to_export(path, fmt, classes, unbalanced, notes)
        if rows is not None:
            latents, classes, index = latents[rows], classes[rows], index[rows]
        bar = _bar(len(latents) if has_images else 0, f"exporting {path.name}", progress and has_images)
        blocks = _blocks(f["images"], stored(f, "images"), bar, rows) if has_images else iter(())
        workers = workers or default_workers()
        with bar:
            if fmt in LAYOUTS:
                with staged_folder(target) as staging:  # replaces an earlier export whole, never mixes with it
                    if fmt == "original":
                        write_split(staging, latents, classes, blocks, workers)
                    else:
                        write_3dident_split(staging, latents, blocks, workers)
            else:
                files = [f"images/{split}/{i:06d}.png" for i in index]
                images_dir = out_dir / "images" / split
                if has_images:
                    with staged_folder(images_dir) as staging:
                        write_pngs((staging / Path(name).name for name in files), blocks, workers)
                elif images_dir.is_dir():
                    shutil.rmtree(images_dir)  # an earlier export's images of this split: not this file's
                write_table = _write_csv if fmt == "csv" else _write_parquet
                write_table(out_dir / f"{split}.{fmt}", index, files, classes, latents)  # last: it names the images
    return target


UNBALANCED = ("refuse", "trim", "keep")
LAYOUTS = ("original", "3dident")
"""Formats that write a release's folder layout, ``DIR/<split>set/``."""


def _rows_to_export(path: Path, fmt: str, classes: np.ndarray, unbalanced: str,
                    notes: list[str] | None) -> np.ndarray | None:
    """The rows of the file to export (None: all), after checking the layout can hold its classes."""
    counts = np.bincount(classes, minlength=NUM_CLASSES)
    present = [f"{CLASS_NAMES[c]} {k}" for c, k in enumerate(counts) if k]
    if fmt == "3dident":
        if counts[1:].any():
            raise ConfigError(f"{path} holds other classes than the teapot ({', '.join(present)}); 3DIdent's layout "
                              f"has one class: render with --preset 3dident, or export --format original")
        return None
    if fmt != "original" or (counts == counts[0]).all() and counts[0] > 0:
        return None
    listed = ", ".join(f"{CLASS_NAMES[c]} {k}" for c, k in enumerate(counts))
    if unbalanced == "keep":
        if notes is not None:
            notes.append(f"exported unbalanced classes ({listed}): the original training code takes 7 x class 0's "
                         f"count as its length, so it fails with IndexError or skips samples on this export")
        return None
    if unbalanced == "trim" and counts.min() > 0:
        m = int(counts.min())
        rows = np.sort(np.concatenate([np.flatnonzero(classes == c)[:m] for c in range(NUM_CLASSES)]))
        if notes is not None:
            notes.append(f"--unbalanced trim: exported the first {m} samples of each class, {NUM_CLASSES * m} of "
                         f"{len(classes)} ({len(classes) - NUM_CLASSES * m} left out)")
        return rows
    if counts[1:].sum() == 0:
        raise ConfigError(f"{path} holds only teapots ({counts[0]}): that is 3DIdent, whose layout is "
                          f"--format 3dident; the original Causal3DIdent layout needs all 7 classes")
    if counts.min() == 0:
        raise ConfigError(f"{path} has no samples of {', '.join(CLASS_NAMES[c] for c in np.flatnonzero(counts == 0))} "
                          f"({listed}); the original layout needs every class equally often: render with "
                          f"--balanced-classes, or pass --unbalanced keep to export it as it is")
    m = int(counts.min())
    raise ConfigError(f"{path} is not balanced over the classes ({listed}); the original training code takes 7 x "
                      f"class 0's count as its length and fails on it: render with --balanced-classes (--n a "
                      f"multiple of 7), or pass --unbalanced trim (the first {m} of each class, "
                      f"{len(classes) - NUM_CLASSES * m} left out) or --unbalanced keep (as it is)")


def _check_target(target: Path, overwrite: bool) -> None:
    if target.exists() and not overwrite and (target.is_file() or any(target.iterdir())):
        raise OutputExistsError(f"{target} already exists; pass --overwrite to replace it or choose another DIR")


def _blocks(images: h5py.Dataset, recorded: np.ndarray | None, bar: Any = None,
            rows: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """The images (only ``rows``, sorted, if given) in blocks, each image checked against its checksum (a damaged
    one stops the export); ``bar`` counts a block once the next one is asked for (written)."""
    for lo in range(0, images.shape[0], BLOCK):
        hi = min(images.shape[0], lo + BLOCK)
        if rows is not None:
            wanted = rows[np.searchsorted(rows, lo):np.searchsorted(rows, hi)]
            if not len(wanted):
                continue
        block = read_checked(images, lo, hi, recorded)
        if rows is not None:
            block = block[wanted - lo]
        yield block
        if bar is not None:
            bar.update(len(block))


def _bar(total: int, desc: str, show: bool) -> Any:
    """A tqdm bar of images on stderr (a silent one when not ``show``)."""
    from causal3dident.progress import ProgressBar

    return ProgressBar(total=total, unit="img", desc=desc, disable=not show, file=sys.stderr)


def _write_csv(path: Path, index: np.ndarray, files: list[str], classes: np.ndarray, latents: np.ndarray) -> None:
    """One row per image: index, file, class, class_name and the ten latents (shortest exact float32 text)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["index", "file", "class", "class_name", *LATENT_NAMES])
        for i, name, c, z in zip(index, files, classes, latents):
            writer.writerow([int(i), name, int(c), CLASS_NAMES[int(c)], *(str(v) for v in z)])
    os.replace(tmp, path)


def _write_parquet(path: Path, index: np.ndarray, files: list[str], classes: np.ndarray, latents: np.ndarray) -> None:
    """The CSV's columns as a Parquet table: int64 index and class, strings, float32 latents (exact)."""
    pa, pq = _pyarrow()
    columns = {"index": pa.array(index, pa.int64()), "file": pa.array(files, pa.string()),
               "class": pa.array(classes, pa.int64()),
               "class_name": pa.array([CLASS_NAMES[int(c)] for c in classes], pa.string()),
               **{name: pa.array(latents[:, k], pa.float32()) for k, name in enumerate(LATENT_NAMES)}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.table(columns), tmp)
    os.replace(tmp, path)


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise ConfigError(f"--format parquet needs pyarrow ({exc}): pip install 'causal3dident[cards]' "
                          f"(or 'pyarrow<26' next to bpy's numpy<2), or use --format csv") from None
    return pyarrow, pyarrow.parquet


COMPRESSION_OPTION = click.option(
    "--compression", type=click.Choice(CODECS), default="gzip", show_default=True,
    help="Images: gzip (any HDF5 reader) or lz4 (decodes several times faster; other HDF5 tools need hdf5plugin).")


QUIET_OPTION = click.option("--quiet", is_flag=True, help="No progress bar.")
_NOTHING_KEPT = ("nothing was kept: the half-written file was removed and {out} is as before; rerunning the same "
                 "command starts over")


COMPRESSION_OPTION = click.option(
    "--compression", type=click.Choice(CODECS), default="gzip", show_default=True,
    help="Images: gzip (any HDF5 reader) or lz4 (decodes several times faster; other HDF5 tools need hdf5plugin).")


@click.command("convert")
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--split", default=None, help="Split to convert when SOURCE holds several (e.g. train for trainset/).")
@click.option("--format", "fmt", type=click.Choice(CONVERT_FORMATS), default=None,
              help="The release's layout (default: detected). citris: CITRIS's <split>.npz, <split>_triplets.npz or "
                   "<split>_triplets_coarse.npz (what c3di export --format citris writes).")
@click.option("--preset", default=None,
              help="With --format citris: the temporal preset the frames follow (default temporal_causal3dident).")
@click.option("--workers", type=int, default=None, help="Threads decoding PNGs (default: up to 8).")
@COMPRESSION_OPTION
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@QUIET_OPTION
def convert_command(source: Path, out: Path, split: str | None, fmt: str | None, preset: str | None,
                    workers: int | None, compression: str, overwrite: bool, quiet: bool) -> None:
    """Convert a release folder (Causal3DIdent or 3DIdent PNGs + .npy, Multimodal3DIdent, CITRIS's .npz) into one
    HDF5 file."""
    on_interrupt(_NOTHING_KEPT.format(out=out))
    convert(source, out, split=split, overwrite=overwrite, workers=workers, compression=compression,
            progress=not quiet, fmt=fmt, preset=preset)
    click.echo(f"wrote {out}")


def repack(path: str | os.PathLike[str], out: str | os.PathLike[str], *, compression: str = "lz4",
           overwrite: bool = False, progress: bool = False) -> Path:
    """Copy a dataset file with every image dataset re-encoded as ``compression``; all else copied as is.
    ``progress``: a bar on stderr."""
    check_output(out, overwrite)
    size = diskspace.estimate_copy([path], compression)
    with open_dataset(path) as src, atomic_h5(out, overwrite, size_hint=size) as dst, \
            _bar(_image_count(src), f"repacking {Path(path).name}", progress) as bar:
        for key, value in src.attrs.items():
            dst.attrs[key] = value

        def copy(name: str, obj: h5py.HDF5Object) -> None:
            if isinstance(obj, h5py.Group):
                group = dst.require_group(name)
                for key, value in obj.attrs.items():
                    group.attrs[key] = value
            elif name.split("/")[-1] == "images" and obj.ndim == 4:
                n, height, width, _ = obj.shape
                parent, _, leaf = name.rpartition("/")
                images = create_image_dataset(dst.require_group(parent) if parent else dst, leaf, n, height,
                                              width, compression)
                for key, value in obj.attrs.items():
                    images.attrs[key] = value
                recorded = stored(src, name)
                for lo in range(0, n, BLOCK):
                    write_images(images, lo, read_checked(obj, lo, min(n, lo + BLOCK), recorded))
                    bar.update(min(BLOCK, n - lo))
            else:
                parent = name.rpartition("/")[0]
                src.copy(obj, dst.require_group(parent) if parent else dst, name=name.split("/")[-1])
        src.visititems(copy)
        seal(dst, source=str(path))  # the copied checksums checked against the re-encoded pixels
    return Path(out)


def _image_count(f: h5py.File) -> int:
    """Images in every image dataset of a file (anchors and pair views)."""
    sizes: list[int] = []
    f.visititems(lambda name, obj: sizes.append(obj.shape[0]) if isinstance(obj, h5py.Dataset)
                 and name.split("/")[-1] == "images" and obj.ndim == 4 else None)
    return sum(sizes)


@click.command("repack")
@click.argument("path", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@COMPRESSION_OPTION
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@QUIET_OPTION
def repack_command(path: Path, out: Path, compression: str, overwrite: bool, quiet: bool) -> None:
    """Copy a dataset file with its images re-compressed (lz4: faster loading; gzip: any HDF5 reader)."""
    on_interrupt(_NOTHING_KEPT.format(out=out))
    repack(path, out, compression=compression, overwrite=overwrite, progress=not quiet)
    click.echo(f"wrote {out} (images: {compression})")


@click.command("export")
@click.argument("path", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="original",
              help="original: <split>set/images_{c}/*.png + raw_latents_{c}.npy (Causal3DIdent's release); "
                   "multimodal3dident: <split>/images/*.png, text/text_raw.txt, latents_image.csv, "
                   "latents_text.csv (Multimodal3DIdent's release); "
                   "3dident: <split>set/images/*.png + raw_latents.npy (3DIdent's, teapot only); "
                   "csv / parquet: images/<split>/*.png + <split>.csv / <split>.parquet (the layout "
                   "croissant.json describes); citris: <split>.npz of a rendered sequence (CITRIS's Causal3DDataset).")
@click.option("--split", default=None,
              help="Split name used in the layout (default: the split the file records; older files: its stem).")
@click.option("--unbalanced", type=click.Choice(UNBALANCED), default="refuse", show_default=True,
              help="--format original with unequal class counts (the original loader fails on them): refuse; "
                   "trim: the first m samples of each class (m = the smallest count); keep: all, as they are.")
@click.option("--workers", type=int, default=None, help="Threads encoding PNGs (default: up to 8).")
@click.option("--overwrite", is_flag=True, help="Replace an earlier export (swapped in once the new one is complete).")
@QUIET_OPTION
def export_command(path: Path, out_dir: Path, fmt: str, split: str | None, unbalanced: str, workers: int | None,
                   overwrite: bool, quiet: bool) -> None:
    """Export an HDF5 dataset file as PNGs with .npy latents (original layouts) or with a CSV or Parquet table."""
    on_interrupt("nothing was kept: the partial export was removed and an earlier export in "
                 f"{out_dir} is as it was; rerunning the same command starts over")
    notes: list[str] = []
    target = export(path, out_dir, fmt=fmt, split=split, overwrite=overwrite, workers=workers, progress=not quiet,
                    unbalanced=unbalanced, notes=notes)
    for note in notes:
        click.echo(f"NOTE: {note}", err=True)
    click.echo(f"wrote {target}")
