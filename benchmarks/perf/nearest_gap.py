"""How far a nearest LT partner is from its anchor, per latent: what the two views of a pair share.

For each LT, the partner of every anchor (``causal3dident.pairs.NearestPairs``, epoch 0) is compared
with the anchor on the raw latents: the mean absolute difference on the latents the LT keeps
(content) and on those it changes (style). An exact rendered view differs by 0 on the kept ones.

    python benchmarks/perf/nearest_gap.py data/mini/train.h5 --anchors 4000,24000
"""

from __future__ import annotations

import argparse

import h5py
import numpy as np

from causal3dident.pairs import NearestPairs
from causal3dident.transformations import LatentTransformation


def gaps(latents: np.ndarray, classes: np.ndarray, lt_name: str, seed: int) -> tuple[float, float]:
    """Mean |partner - anchor| over the kept and over the changed latents."""
    lt = LatentTransformation.parse(lt_name)
    partners = NearestPairs(lt, latents, classes, seed).partners(0)
    diff = np.abs(latents[partners] - latents)
    changed = np.zeros(latents.shape[1], bool)
    changed[lt.columns] = True
    return float(diff[:, ~changed].mean()), float(diff[:, changed].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="An HDF5 file with at least the largest --anchors samples.")
    parser.add_argument("--anchors", default="4000", help="Comma-separated pool sizes (first rows of the file).")
    parser.add_argument("--lt", default="hues,positions,rotations,positions+hues,rotations+hues")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with h5py.File(args.file, "r") as fh:
        latents, classes = fh["/latents"][:], fh["/classes"][:]
    print(f"{'anchors':>8} {'lt':<16} {'kept':>6} {'changed':>8}")
    for n in (int(a) for a in args.anchors.split(",")):
        if n > len(latents):
            parser.error(f"--anchors {n}: the file has {len(latents)} samples")
        for lt in args.lt.split(","):
            kept, changed = gaps(latents[:n], classes[:n], lt, args.seed)
            print(f"{n:>8} {lt:<16} {kept:6.3f} {changed:8.3f}")


if __name__ == "__main__":
    main()
