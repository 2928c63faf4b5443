"""Our images' normalisation statistics beside the ones the original training code hard-codes.

ssl_identifiability's ``main_3dident.py`` normalises with mean (0.4327, 0.2689, 0.2839) and std (0.1201, 0.1457,
0.1082), computed the way cl-ica's ``tools/3dident/get_mean_std.py`` does: per image and channel the mean and the
(unbiased) standard deviation over its pixels, each averaged over the images. That std is a within-image spread,
smaller than the std over all pixels of the set that ``Causal3DIdent(...).stats`` reports; both are printed.

Sources: our dataset files (``FILE.h5``, every image, checksums checked), and optionally ``--picture PNG``, a
grid of release images separated by white lines (e.g. a figure of the paper), cut into its tiles. Besides the
three statistics, two that say where a scene differs: the background (median over images of the mean of the four
corner patches, 1/8 of the side each: mostly ground plane) and the highlights (median over images of the 99th
percentile of the luminance: the spotlight pool and lit object faces).

    python benchmarks/perf/normalisation_stats.py data/stats.h5 --picture shared/reference/samples.png
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ORIGINAL_MEAN = (0.4327, 0.2689, 0.2839)
ORIGINAL_STD = (0.1201, 0.1457, 0.1082)
BLOCK = 64


def image_stats(images: Iterator[np.ndarray]) -> dict[str, object]:
    """The statistics of uint8 images [B, H, W, 3] fed in blocks (see the module docstring)."""
    means, stds, corners, highs = [], [], [], []
    total, total_sq, pixels = np.zeros(3), np.zeros(3), 0
    for block in images:
        x = block.astype(np.float64) / 255.0
        flat = x.reshape(len(x), -1, 3)
        means.append(flat.mean(axis=1))
        stds.append(flat.std(axis=1, ddof=1))  # torch.std's default, as get_mean_std.py
        total += flat.sum(axis=(0, 1))
        total_sq += (flat ** 2).sum(axis=(0, 1))
        pixels += flat.shape[0] * flat.shape[1]
        k = max(1, x.shape[1] // 8)
        patches = np.concatenate([x[:, :k, :k], x[:, :k, -k:], x[:, -k:, :k], x[:, -k:, -k:]], axis=1)
        corners.append(patches.reshape(len(x), -1, 3).mean(axis=1))
        luminance = flat @ np.array([0.2126, 0.7152, 0.0722])
        highs.append(np.percentile(luminance, 99, axis=1))
    mean_sq = total_sq / pixels
    pooled = np.sqrt(np.maximum(mean_sq - (total / pixels) ** 2, 0.0))
    return {"images": int(sum(len(m) for m in means)), "mean": np.concatenate(means).mean(axis=0),
            "std_within": np.concatenate(stds).mean(axis=0), "std_pooled": pooled,
            "background": np.median(np.concatenate(corners), axis=0), "highlights": float(np.median(np.concatenate(highs)))}


def file_blocks(path: Path) -> Iterator[np.ndarray]:
    """The anchor images of a dataset file in blocks, each checked against its checksum; or, for the work folder
    of a render job still running (``OUT.h5.parts/``), those of its finished chunks."""
    from causal3dident.checksums import read_checked, stored
    from causal3dident.store import open_dataset

    if path.is_dir():
        from causal3dident.render.worker import read_chunk

        for chunk in sorted(path.glob("chunk-*.npz")):
            yield read_chunk(chunk, ["images"])["images"]
        return
    with open_dataset(path) as f:
        images, recorded = f["images"], stored(f, "images")
        for lo in range(0, images.shape[0], BLOCK):
            yield read_checked(images, lo, min(images.shape[0], lo + BLOCK), recorded)


def picture_tiles(path: Path, size: int | None = None, white: float = 245.0, margin: int = 2) -> np.ndarray:
    """The tiles of a grid picture (near-white separator rows and columns), ``margin`` px trimmed from each side
    and resized to ``size`` px (None: cropped to the smallest tile); uint8 [T, S, S, 3]."""
    from PIL import Image

    with Image.open(path) as im:
        pixels = np.asarray(im.convert("RGB"))

    def runs(profile: np.ndarray) -> list[tuple[int, int]]:
        inside = profile < white
        edges = np.flatnonzero(np.diff(np.concatenate([[0], inside.astype(np.int8), [0]])))
        return [(a, b) for a, b in zip(edges[::2], edges[1::2]) if b - a > 16]

    rows, cols = runs(pixels.mean(axis=(1, 2))), runs(pixels.mean(axis=(0, 2)))
    tiles = [pixels[a + margin:b - margin, c + margin:d - margin] for a, b in rows for c, d in cols]
    side = size or min(min(t.shape[:2]) for t in tiles)
    return np.stack([np.asarray(Image.fromarray(t).resize((side, side), Image.BILINEAR)) for t in tiles])


def report(name: str, stats: dict[str, object]) -> str:
    def fmt(values: object) -> str:
        return ", ".join(f"{v:.4f}" for v in np.asarray(values))

    return (f"{name}: {stats['images']} images\n"
            f"  mean             {fmt(stats['mean'])}   (original {fmt(ORIGINAL_MEAN)}; "
            f"difference {fmt(np.asarray(stats['mean']) - ORIGINAL_MEAN)})\n"
            f"  std within image {fmt(stats['std_within'])}   (original {fmt(ORIGINAL_STD)}; "
            f"difference {fmt(np.asarray(stats['std_within']) - ORIGINAL_STD)})\n"
            f"  std pooled       {fmt(stats['std_pooled'])}\n"
            f"  background       {fmt(stats['background'])}   (median of the corner patches)\n"
            f"  highlights       {stats['highlights']:.4f}   (median 99th percentile of luminance)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path,
                        help="Dataset files (or a running render job's OUT.h5.parts folder) whose anchor images to "
                             "measure.")
    parser.add_argument("--picture", type=Path, default=None, help="A grid of release images (white separators).")
    parser.add_argument("--size", type=int, default=224, help="Side the picture's tiles are resized to.")
    args = parser.parse_args()
    if not args.files and args.picture is None:
        parser.error("give dataset files and/or --picture")
    for path in args.files:
        print(report(str(path), image_stats(file_blocks(path))))
    if args.picture is not None:
        tiles = picture_tiles(args.picture, args.size)
        print(report(f"{args.picture} ({len(tiles)} tiles at {args.size} px)", image_stats(iter([tiles]))))


if __name__ == "__main__":
    main()
