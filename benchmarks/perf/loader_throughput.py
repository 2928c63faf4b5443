"""Images/s through a 4-worker DataLoader: our HDF5 dataset vs a PNG folder read like the original's.

One run, the same images both ways, at 64 and 224 px: the images are written as an original-layout
PNG folder (``original_layout.write_split``), converted to HDF5 with ``c3di convert``'s code (so the
file has ``store.create_image_dataset``'s chunking and compression), and both are read for whole epochs:

- ``png``: the original loader's work per item (open the PNG, PIL decode, to an RGB uint8 tensor) with
  the DataLoader's default collate; the baseline of every ratio. ``png folder + cl`` is the same with
  ``channels_last_collate``, printed to show what the collate alone gives the baseline;
- ``hdf5 gzip``: ``Causal3DIdent(file, image_format="tensor")`` (batched ``__getitems__`` reads) on the file
  as ``c3di convert`` and ``c3di render`` write it (gzip, readable by any HDF5 tool), default collate;
- ``hdf5 lz4``: the same on that file after ``c3di repack --compression lz4`` (LZ4-HC chunks);
- ``+ cl``: the same with ``collate_fn=causal3dident.channels_last_collate`` (the batch is the shared
  buffer ``__getitems__`` decoded it into, channels-last, instead of a transposing copy; for the PNG
  folder, whose items are separate tensors, a plain copy);
- ``hdf5 in memory + cl``: the gzip file with ``in_memory=True`` and ``channels_last_collate``.

All yield uint8 [B, 3, H, W] batches with their latents. Each reader's images/s is the best of
``--rounds`` timings of at least ``--seconds`` each (whole epochs, persistent workers, after a
warm-up epoch). Images per CPU-second of all processes is printed too: it does not depend on what
else runs on the machine. The targets are checked on each from-disk reader's images/s. Images: tiles
of the real renders in ``shared/reference/causal3dident_samples_paper.png`` when present (rotated,
flipped, hue-shifted), else ``causal3dident.testing.draw_images`` upscaled, shaded and blurred to look
like renders. Targets: >= 5x the PNG images/s, and a file no bigger than 1.5x the PNG folder.

    python benchmarks/perf/loader_throughput.py [--n 2048] [--resolutions 64 224] [--workers 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter
from torch.utils.data import DataLoader, Dataset, RandomSampler, default_collate

from causal3dident import Causal3DIdent, channels_last_collate
from causal3dident.convert import convert, repack
from causal3dident.original_layout import OriginalSplit, read_png, write_split
from causal3dident.scm import load_preset
from causal3dident.testing import draw_images

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "causal3dident_samples_paper.png"
SPEED_TARGET = 5.0
SIZE_TARGET = 1.5


def real_tiles(path: Path) -> list[Image.Image]:
    """The 14 renders of the paper's sample figure (2 rows of 7), margins trimmed."""
    sheet = Image.open(path).convert("RGB")
    w, h = sheet.width / 7, sheet.height / 2
    return [sheet.crop((int(c * w) + 6, int(r * h) + 6, int((c + 1) * w) - 14, int((r + 1) * h) - 8))
            for r in range(2) for c in range(7)]


def make_images(n: int, resolution: int, source: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images uint8 [n, R, R, 3], latents, classes): render-like images, all different."""
    rng = np.random.default_rng(seed)
    latents, classes = load_preset("causal3dident").sample(n, seed)
    if source == "real":
        tiles = real_tiles(REFERENCE)
        images = []
        for i in range(n):
            tile = tiles[int(classes[i]) + 7 * int(rng.integers(2))]
            scale = rng.uniform(0.85, 1.0)
            side = int(min(tile.size) * scale)
            x, y = rng.integers(0, tile.width - side + 1), rng.integers(0, tile.height - side + 1)
            im = tile.crop((x, y, x + side, y + side)).resize((resolution, resolution), Image.BICUBIC)
            hsv = np.asarray(im.convert("HSV")).copy()
            hsv[..., 0] += np.uint8(rng.integers(256))  # hue shift, wraps
            im = Image.fromarray(hsv, "HSV").convert("RGB").rotate(90 * int(rng.integers(4)))
            images.append(np.asarray(im.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else im))
        return np.stack(images), latents, classes
    base = draw_images(latents, classes, 64)
    yy, xx = np.mgrid[0:resolution, 0:resolution] / resolution
    images = []
    for i in range(n):
        im = Image.fromarray(base[i]).resize((resolution, resolution), Image.BICUBIC)
        im = np.asarray(im.filter(ImageFilter.GaussianBlur(resolution / 64)), dtype=np.float64)
        cx, cy = rng.uniform(0.2, 0.8, 2)
        light = 0.75 + 0.35 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.15)  # soft lighting falloff
        images.append(np.clip(im * light[..., None], 0, 255).astype(np.uint8))
    return np.stack(images), latents, classes


class PNGFolder(Dataset):
    """The original loader's per-item work: one PNG opened and decoded with PIL, as an RGB uint8 tensor."""

    def __init__(self, split: OriginalSplit) -> None:
        self.files = [split.folder / f for f in split.files]
        self.latents = split.latents

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = torch.from_numpy(read_png(self.files[i]).copy()).permute(2, 0, 1)
        return image, torch.from_numpy(self.latents[i])


def cpu_seconds() -> float:
    """CPU time of this process and its child processes (the DataLoader workers), from /proc (Linux)."""
    total = time.process_time()
    ticks = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():  # fields after the name: state, ppid, ..., utime (12), stime (13)
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def throughput(dataset: Dataset, args: argparse.Namespace, batch_size: int,
               collate: Callable = default_collate) -> tuple[float, float]:
    """Best images/s over ``args.rounds`` timings of whole shuffled epochs lasting >= ``args.seconds`` each, and
    images per CPU-second (all processes) in that timing.

    An epoch draws at least 32 batches (permutations of the images, concatenated), so that the workers'
    idle time at the end of an epoch weighs no more than in training on a large dataset. Persistent
    workers; one warm-up epoch is not timed. Images per CPU-second does not depend on what else runs on
    the machine, so it compares the loaders fairly on a busy machine too.
    """
    sampler = RandomSampler(dataset, num_samples=max(len(dataset), 32 * batch_size),
                            generator=torch.Generator().manual_seed(0))
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=args.workers,
                        persistent_workers=args.workers > 0, collate_fn=collate)
    for _ in loader:  # warm-up: start the workers, fill the page cache
        pass
    best = (0.0, 0.0)
    for _ in range(args.rounds):
        start, cpu, count = time.perf_counter(), cpu_seconds(), 0
        while count == 0 or time.perf_counter() - start < args.seconds:
            for images, _ in loader:
                count += len(images)
        rate = count / (time.perf_counter() - start)
        if rate > best[0]:
            best = (rate, count / (cpu_seconds() - cpu))
    return best


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


READERS = {  # name -> (label, file, Causal3DIdent keyword arguments, collate)
    "gzip": ("hdf5 gzip", "gzip", {}, default_collate),
    "gzip_cl": ("hdf5 gzip + cl", "gzip", {}, channels_last_collate),
    "lz4": ("hdf5 lz4", "lz4", {}, default_collate),
    "lz4_cl": ("hdf5 lz4 + cl", "lz4", {}, channels_last_collate),
    "lz4_cl_unchecked": ("hdf5 lz4 + cl, no CRC", "lz4", {"verify_checksums": False}, channels_last_collate),
    "memory": ("hdf5 in memory + cl", "gzip", {"in_memory": True}, channels_last_collate),
}


def run(args: argparse.Namespace, work: Path) -> list[dict[str, float]]:
    source = args.images if args.images != "auto" else ("real" if REFERENCE.is_file() else "synthetic")
    rows = []
    for resolution in args.resolutions:
        images, latents, classes = make_images(args.n, resolution, source)
        folder = work / f"r{resolution}" / "trainset"
        folder.mkdir(parents=True)
        write_split(folder, latents, classes, [images], workers=os.cpu_count() or 1)
        files = {"gzip": convert(folder, work / f"r{resolution}.h5")}
        files["lz4"] = repack(files["gzip"], work / f"r{resolution}-lz4.h5", compression="lz4")
        sizes = {"png_bytes": folder_size(folder), **{f"{codec}_bytes": path.stat().st_size
                                                       for codec, path in files.items()}}
        png = PNGFolder(OriginalSplit.open(folder))
        datasets = {name: Causal3DIdent(files[codec], image_format="tensor", **kwargs)
                    for name, (_, codec, kwargs, _) in READERS.items()}
        for batch_size in args.batch_sizes:
            row: dict[str, float] = {"resolution": resolution, "batch_size": batch_size, **sizes}
            row["png"], row["png_cpu"] = throughput(png, args, batch_size)
            row["png_cl"], row["png_cl_cpu"] = throughput(png, args, batch_size, channels_last_collate)
            for name, dataset in datasets.items():
                row[name], row[f"{name}_cpu"] = throughput(dataset, args, batch_size, READERS[name][3])
            rows.append(row)
            print_row(row)
    print(f"images: {source}, n={args.n}, workers={args.workers}, cpus={os.cpu_count()}; "
          f"cl = collate_fn=channels_last_collate")
    return rows


def print_row(row: dict[str, float]) -> None:
    png, png_cpu = row["png"], row["png_cpu"]
    print(f"{row['resolution']:>4} px, batch {row['batch_size']}: images/s (x PNG), images/CPU-s (x PNG), "
          f"size (x PNG folder of {row['png_bytes'] / 2**20:.2f} MiB):", flush=True)
    print(f"        {'png folder':22s} {png:7.0f}          {png_cpu:7.0f}", flush=True)
    lines = [("png_cl", "png folder + cl", "")]
    lines += [(name, label, f"{row[codec + '_bytes'] / row['png_bytes']:.2f}x" if name != "memory" else "(RAM)")
              for name, (label, codec, _, _) in READERS.items()]
    for name, label, size in lines:
        print(f"        {label:22s} {row[name]:7.0f} ({row[name] / png:4.1f}x)  {row[name + '_cpu']:7.0f} "
              f"({row[name + '_cpu'] / png_cpu:4.1f}x)  {size}", flush=True)


def targets_met(rows: list[dict[str, float]], reader: str, batch_size: int) -> bool:
    """Both targets, from disk, at every resolution, for one of our readers (a key of ``READERS``)."""
    codec = READERS[reader][1]
    return all(r[reader] >= SPEED_TARGET * r["png"] and r[f"{codec}_bytes"] <= SIZE_TARGET * r["png_bytes"]
               for r in rows if r["batch_size"] == batch_size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048, help="images per resolution")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 512],
                        help="DataLoader batch sizes (512: the paper's and the benchmark's training batch)")
    parser.add_argument("--rounds", type=int, default=3, help="timings per reader (the best is reported)")
    parser.add_argument("--seconds", type=float, default=1.0, help="least duration of one timing (whole epochs)")
    parser.add_argument("--images", choices=["auto", "real", "synthetic"], default="auto")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the files here (default: a temp folder)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="This DataLoader will create")  # more workers than CPUs: on purpose
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=False)
        rows = run(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="c3di-perf-") as tmp:
            rows = run(args, Path(tmp))
    met = {(name, batch): targets_met(rows, name, batch) for batch in args.batch_sizes
           for name in READERS if name != "memory"}
    for batch in args.batch_sizes:
        print(f"targets at batch {batch} (>= {SPEED_TARGET}x images/s from disk, <= {SIZE_TARGET}x size): "
              + ", ".join(f"{READERS[name][0]} {'met' if met[name, b] else 'NOT met'}"
                          for name, b in met if b == batch))
    return 0 if any(met.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
