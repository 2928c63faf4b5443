"""What the pixel checksums cost: the loader's decode per image with and without the CRC-32 check, and the
writers' sealing pass (decode + CRC-32 of every image) beside writing the file.

The same render-like images as ``loader_throughput.py`` are written as gzip (``c3di convert``'s code) and LZ4
(``c3di repack``). The loader's per-image work (``H5Source.read`` of shuffled batches, what each DataLoader
worker does) is timed in CPU seconds of this process, so that other load on the machine does not enter;
checked and unchecked reads alternate, and each is the best of ``--rounds``. ``seal`` is timed on the file
it sealed when written, against the time ``convert`` and ``repack`` took to write it (sealing included).

    python benchmarks/perf/checksum_cost.py [--n 1024] [--resolutions 64 224] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from causal3dident import Causal3DIdent
from causal3dident.checksums import seal
from causal3dident.chunks import crc32
from causal3dident.convert import convert, repack
from causal3dident.original_layout import write_split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loader_throughput import REFERENCE, make_images  # noqa: E402


def read_cpu(ds: Causal3DIdent, batches: list[np.ndarray]) -> float:
    """CPU microseconds per image of reading ``batches`` (a DataLoader worker's decoding)."""
    out = np.empty((len(batches[0]), *ds.source.image_shape), dtype=np.uint8)
    start = time.process_time()
    for idx in batches:
        ds.source.read(idx, out=out[:len(idx)])
    return (time.process_time() - start) / sum(len(b) for b in batches) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    source = "real" if REFERENCE.is_file() else "synthetic"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for resolution in args.resolutions:
            images, latents, classes = make_images(args.n, resolution, source)
            folder = work / f"r{resolution}" / "trainset"
            folder.mkdir(parents=True)
            write_split(folder, latents, classes, [images], workers=os.cpu_count() or 1)
            start = time.perf_counter()
            files = {"gzip": convert(folder, work / f"r{resolution}.h5", workers=1)}
            written = {"gzip": time.perf_counter() - start}
            start = time.perf_counter()
            files["lz4"] = repack(files["gzip"], work / f"r{resolution}-lz4.h5", compression="lz4")
            written["lz4"] = time.perf_counter() - start
            nbytes = images[0].nbytes
            crc = min(_timed(lambda: [crc32(image) for image in images]) for _ in range(args.rounds)) / args.n * 1e6
            print(f"{resolution} px ({source} images, n={args.n}): CRC-32 of one image {crc:.1f} us "
                  f"({nbytes / crc / 1e3:.1f} GB/s)")
            rng = np.random.default_rng(0)
            batches = [rng.permutation(args.n)[i:i + args.batch] for i in range(0, args.n, args.batch)]
            for codec, path in files.items():
                both = [Causal3DIdent(path, image_format="tensor", verify_checksums=v) for v in (False, True)]
                for ds in both:
                    ds.source.read(batches[0])  # open the file, fill the page cache
                plain, checked = [], []
                for _ in range(args.rounds):  # alternating, so that load on the machine hits both alike
                    plain.append(read_cpu(both[0], batches))
                    checked.append(read_cpu(both[1], batches))
                a, b = min(plain), min(checked)
                for ds in both:
                    ds.source.close()
                with h5py.File(path, "r+") as f:
                    del f["checksums"]  # as a file written before checksums: seal computes them
                    sealing = min(_timed(lambda: _seal_again(f)) for _ in range(3))
                print(f"  {codec:4s}: loader decode {a:6.1f} us/image, with the check {b:6.1f} "
                      f"(+{b - a:.1f} us, +{100 * (b - a) / a:.0f}%); seal {sealing / args.n * 1e6:6.1f} us/image "
                      f"= {100 * sealing / written[codec]:.0f}% of writing the file ({written[codec]:.2f} s)")


def _seal_again(f: h5py.File) -> None:
    if "checksums" in f:
        del f["checksums"]
    seal(f)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
