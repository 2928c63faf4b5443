"""Size and decode speed of the HDF5 image codecs on offer, on the same images, one image per chunk.

Why the files are gzip (default) or LZ4 (``c3di repack``): each candidate filter is written to its own
HDF5 file with ``store.create_image_dataset``'s chunking, then every image is read back through h5py in
one process (``ds[i]``; the same HDF5 overhead for all, so the differences are the codecs'). Prints the
file size relative to the images as a PNG folder and images/s read. Candidates: gzip 6 (the default),
LZ4-HC as ``c3di repack`` writes it, LZF (h5py's own), and through hdf5plugin: Zstd 3 and 9, Blosc with
LZ4 and with Zstd (byte shuffle).

    python benchmarks/perf/codec_choice.py [--n 512] [--resolutions 64 224]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loader_throughput import REFERENCE, make_images  # noqa: E402

from causal3dident.codecs import filter_args, write_images  # noqa: E402

CANDIDATES: dict[str, dict[str, Any]] = {
    "gzip 6 (default)": filter_args("gzip"),
    "lz4-hc (c3di repack)": filter_args("lz4"),
    "lzf": {"compression": "lzf"},
    "zstd 3": dict(hdf5plugin.Zstd(clevel=3)),
    "zstd 9": dict(hdf5plugin.Zstd(clevel=9)),
    "blosc lz4": dict(hdf5plugin.Blosc(cname="lz4", clevel=9, shuffle=hdf5plugin.Blosc.SHUFFLE)),
    "blosc zstd": dict(hdf5plugin.Blosc(cname="zstd", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE)),
}


def png_bytes(images: np.ndarray) -> int:
    """Total size of the images as PNG files (PIL, default settings, as the original release)."""
    total = 0
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        total += buffer.tell()
    return total


def measure(path: Path, images: np.ndarray, args: dict[str, Any]) -> tuple[int, float]:
    """(file bytes, images/s read back one by one through h5py); checks every value."""
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("images", shape=images.shape, dtype=np.uint8, chunks=(1, *images.shape[1:]), **args)
        write_images(ds, 0, images)
    with h5py.File(path, "r") as f:
        ds = f["images"]
        start = time.perf_counter()
        for i in range(len(images)):
            if not np.array_equal(ds[i], images[i]):
                raise AssertionError(f"{path.name}: image {i} does not read back")
        rate = len(images) / (time.perf_counter() - start)
    return path.stat().st_size, rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 224])
    args = parser.parse_args(argv)
    source = "real" if REFERENCE.is_file() else "synthetic"
    with tempfile.TemporaryDirectory(prefix="c3di-codecs-") as tmp:
        for resolution in args.resolutions:
            images, _, _ = make_images(args.n, resolution, source)
            png = png_bytes(images)
            print(f"{resolution} px, {args.n} images ({source}); PNG folder {png / 2**20:.2f} MiB:")
            for k, (name, filter_kwargs) in enumerate(CANDIDATES.items()):
                size, rate = measure(Path(tmp) / f"{resolution}-{k}.h5", images, filter_kwargs)
                print(f"    {name:22s} size {size / png:5.2f}x PNG   {rate:8.0f} images/s (h5py, 1 process)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
