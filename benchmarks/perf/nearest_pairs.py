"""Time the nearest-pair path: z~ for a whole pool per epoch (the benchmark), the exact search, a dataset batch.

Compares the counter-based z~ draw (``causal3dident.pairs.sample_z_tilde``: one vectorised draw per noise
block) with the scheme it replaced in the dataset (one ``SeedSequence`` and generator per index). Whole-pool
timings start without remembered noise blocks (a new epoch); the batch timing is a later batch of an epoch.

    python benchmarks/perf/nearest_pairs.py [--sizes 4000 50000] [--lt positions+hues]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from causal3dident import noise
from causal3dident.distributions import truncnorm_ppf
from causal3dident.neighbours import NeighbourIndex
from causal3dident.pairs import Z_TILDE_STREAM, NearestPairs, sample_z_tilde
from causal3dident.transformations import LatentTransformation


def per_index_z_tilde(lt: LatentTransformation, latents: np.ndarray, indices: np.ndarray, seed: int,
                      epoch: int) -> np.ndarray:
    """The dataset's former scheme (version 1): one SeedSequence-seeded generator per index."""
    stream = noise.stream_id(f"{Z_TILDE_STREAM}/{lt.name}/{lt.sigma!r}")
    u = np.stack([np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(stream, epoch, int(i)))))
                  .random(len(lt.columns)) for i in indices])
    out = latents.copy()
    for j, col in enumerate(lt.columns):
        out[:, col] = truncnorm_ppf(u[:, j], latents[:, col].astype(np.float64), lt.sigma, -1.0, 1.0)
    return out


def best_of(fn: Callable[[], object], repeats: int, cold: bool = True) -> float:
    times = []
    for _ in range(repeats):
        if cold:
            noise._recent_block.cache_clear()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4000, 50000], help="pool sizes (anchors)")
    parser.add_argument("--lt", default="positions+hues")
    parser.add_argument("--batch", type=int, default=256, help="dataset batch size for the per-batch timing")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    lt = LatentTransformation.parse(args.lt)
    rng = np.random.default_rng(0)
    print(f"LT {lt.name} ({len(lt.columns)} latents), best of {args.repeats}")
    for n in args.sizes:
        latents = rng.uniform(-1, 1, (n, 10)).astype(np.float32)
        classes = rng.integers(0, 7, n)
        every = np.arange(n)
        old = best_of(lambda: per_index_z_tilde(lt, latents, every, 0, 1), 1)
        new = best_of(lambda: sample_z_tilde(lt, latents, every, seed=0, epoch=1), args.repeats)
        build = best_of(lambda: NeighbourIndex.build(latents, classes), args.repeats)
        pairs = NearestPairs(lt, latents, classes, seed=0)
        pairs.index  # built once, as the benchmark and the dataset do
        epoch = best_of(lambda: pairs.pairs(1), args.repeats)
        batch = rng.choice(n, min(args.batch, n), replace=False)
        pairs.pairs(1, batch)
        one_batch = best_of(lambda: pairs.pairs(1, batch), args.repeats, cold=False)
        print(f"{n:>7,} anchors: z~ of all {new * 1e3:8.1f} ms (per-index scheme {old * 1e3:8.1f} ms, "
              f"{old / new:5.0f}x); index build {build:.2f} s; z~ + exact search of all {epoch:.2f} s; "
              f"a batch of {len(batch)} {one_batch * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
