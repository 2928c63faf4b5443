"""Counter-based uniforms: the noise for sample i depends only on (seed, stream, i).

Samples are drawn in fixed blocks of ``BLOCK`` indices, each from its own PCG64 stream seeded by
``SeedSequence(seed, spawn_key=(stream, block))``; any index range is cut from the blocks that
cover it, so shard i of k is exactly rows [start, stop) of the unsharded draw.
"""

from __future__ import annotations

import functools
import os
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

BLOCK = 65536
"""Indices per noise block (recorded in every dataset's config as ``noise_block``)."""


def stream_id(name: str) -> int:
    """A stable 32-bit id for a named noise stream (``'scm'``, ``'lt/hues'``, ...)."""
    return zlib.crc32(name.encode("utf-8"))


def uniforms(seed: int, stream: str, start: int, stop: int, width: int, *, key: tuple[int, ...] = ()) -> np.ndarray:
    """Uniforms in [0, 1) of shape [width, stop - start] for indices [start, stop).

    Column-major on purpose: each row feeds one latent, and contiguous rows keep the
    inverse-CDF transforms fast. ``key``: further non-negative integers naming the stream (an epoch, say).
    """
    if not 0 <= start <= stop:
        raise ValueError(f"invalid index range [{start}, {stop})")
    if stop == start:
        return np.empty((width, 0), dtype=np.float64)
    sid = stream_id(stream)
    first, last = start // BLOCK, (stop - 1) // BLOCK
    out = np.empty((width, stop - start), dtype=np.float64)
    for b in range(first, last + 1):
        block = _block(seed, sid, key, b, width)
        lo, hi = max(start, b * BLOCK), min(stop, (b + 1) * BLOCK)
        out[:, lo - start: hi - start] = block[:, lo - b * BLOCK: hi - b * BLOCK]
    return out


def uniforms_at(seed: int, stream: str, indices: np.ndarray, width: int, *, key: tuple[int, ...] = ()) -> np.ndarray:
    """``uniforms`` at any indices (any order, repeats allowed): [width, len(indices)], column k equal to
    index ``indices[k]``'s column of any range draw. The last few blocks drawn are kept (``_recent_block``), so
    random batches from a pool of up to ``RECENT_BLOCKS * BLOCK`` indices draw each block once."""
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if (indices < 0).any():
        raise ValueError("noise indices must be non-negative")
    out = np.empty((width, len(indices)), dtype=np.float64)
    sid = stream_id(stream)
    blocks = indices // BLOCK
    for b in np.unique(blocks).tolist():
        rows = np.flatnonzero(blocks == b)
        out[:, rows] = _recent_block(seed, sid, tuple(int(k) for k in key), b, width)[:, indices[rows] - b * BLOCK]
    return out


RECENT_BLOCKS = 4


@functools.lru_cache(maxsize=RECENT_BLOCKS)
def _recent_block(seed: int, sid: int, key: tuple[int, ...], block: int, width: int) -> np.ndarray:
    """``_block``, read-only and remembered (a few MB each: z~ draws are 3-9 wide)."""
    out = _block(seed, sid, key, block, width)
    out.flags.writeable = False
    return out


def _block(seed: int, sid: int, key: tuple[int, ...], block: int, width: int) -> np.ndarray:
    """The uniforms [width, BLOCK] of one block of a stream."""
    sequence = np.random.SeedSequence(seed, spawn_key=(sid, *(int(k) for k in key), int(block)))
    return np.random.Generator(np.random.PCG64(sequence)).random((width, BLOCK))


def derived_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (run seed, purpose, step, ...)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def map_blocks(fn: Callable[[int, int], None], start: int, stop: int, workers: int | None = None) -> None:
    """Call ``fn(lo, hi)`` for the block-aligned pieces of [start, stop), on a few threads.

    Working block by block keeps arrays in cache, and numpy's ufuncs release the GIL, so the
    pieces run in parallel; results are identical to one call over the whole range.
    """
    pieces = [(max(start, b * BLOCK), min(stop, (b + 1) * BLOCK))
              for b in range(start // BLOCK, (stop - 1) // BLOCK + 1)] if stop > start else []
    workers = min(len(pieces), workers or os.cpu_count() or 1)
    if workers <= 1:
        for lo, hi in pieces:
            fn(lo, hi)
        return
    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(fn, lo, hi) for lo, hi in pieces]:
            future.result()
