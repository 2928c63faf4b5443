"""Image compression of dataset files: gzip (the default, every HDF5 reader) or LZ4 (about 8x faster to decode).

Images are stored one per chunk. ``gzip`` is HDF5's built-in deflate filter. ``lz4`` is the registered HDF5 LZ4
filter (id 32004, the one ``hdf5plugin`` ships): each chunk holds an LZ4-HC compressed image in that filter's
framing, so any HDF5 reader with the filter plugin decodes it, and this package's loader decodes the chunks
itself with the ``lz4`` package. LZ4-HC files are 1.2-1.5x the size of the same images as PNG, gzip's 1.1-1.3x
(measured by benchmarks/perf/loader_throughput.py), and decode several times faster.
"""

from __future__ import annotations

import struct
from typing import Any

import h5py
import numpy as np

from .errors import ConfigError

LZ4_FILTER = 32004
"""HDF5 filter id of LZ4 (registered with The HDF Group; implemented by hdf5plugin)."""
CODECS = ("gzip", "lz4")
GZIP_ARGS: dict[str, Any] = {"compression": "gzip", "compression_opts": 6}
LZ4_BLOCK = 1 << 30
"""Block size the LZ4 filter records: larger than any image, so a chunk is one block (hdf5plugin's default)."""
_LZ4_HEAD = struct.Struct(">QII")  # original size, block size, size of the first compressed block


def load_filter_plugins() -> bool:
    """Register hdf5plugin's filters with h5py if it is installed (needed for h5py to read LZ4 chunks)."""
    try:
        import hdf5plugin  # noqa: F401
    except ImportError:
        return False
    return True


def filter_args(codec: str) -> dict[str, Any]:
    """h5py ``create_dataset`` arguments for images compressed with ``codec``."""
    if codec == "gzip":
        return dict(GZIP_ARGS)
    if codec == "lz4":
        _lz4()
        return {"compression": LZ4_FILTER, "compression_opts": (0,), "allow_unknown_filter": True}
    raise ConfigError(f"unknown image compression {codec!r}; choose one of {', '.join(CODECS)}")


def codec_of(ds: h5py.Dataset) -> str | None:
    """'gzip', 'lz4', 'none', or None for a filter pipeline this package does not write."""
    plist = ds.id.get_create_plist()
    filters = [plist.get_filter(j)[0] for j in range(plist.get_nfilters())]
    return {(): "none", (h5py.h5z.FILTER_DEFLATE,): "gzip", (LZ4_FILTER,): "lz4"}.get(tuple(filters))


def lz4_encode(raw: bytes) -> bytes:
    """One chunk in the HDF5 LZ4 filter's framing: original size (u64 BE), block size (u32 BE), then per block
    its compressed size (u32 BE) and bytes; a block that does not shrink is stored as is."""
    block = _lz4().compress(raw, mode="high_compression", compression=9, store_size=False)
    if len(block) >= len(raw):
        block = raw
    return struct.pack(">QI", len(raw), LZ4_BLOCK) + struct.pack(">I", len(block)) + block


def lz4_decode(data: bytes | memoryview, size: int) -> bytes | memoryview:
    """The ``size`` bytes of a chunk in the LZ4 filter's framing (any block size, as hdf5plugin writes it)."""
    lz4_block = _lz4()
    total, block_size, n = _LZ4_HEAD.unpack_from(data, 0)
    if total != size:
        raise ValueError(f"LZ4 chunk holds {total} bytes, expected {size}")
    if n == len(data) - 16 and n < total:  # one compressed block, as this package writes every image
        return lz4_block.decompress(data[16:], uncompressed_size=total)
    out, pos, done = [], 12, 0
    while done < total:
        n = struct.unpack_from(">I", data, pos)[0]
        expect = min(block_size, total - done)
        piece = data[pos + 4: pos + 4 + n]
        out.append(piece if n == expect else lz4_block.decompress(piece, uncompressed_size=expect))
        pos, done = pos + 4 + n, done + expect
    return out[0] if len(out) == 1 else b"".join(out)


def write_images(ds: h5py.Dataset, start: int, images: np.ndarray) -> None:
    """Write ``images`` [B, H, W, 3] at rows ``start``...: through h5py's filters, or, for LZ4, as LZ4-HC chunks
    written directly (h5py would need the plugin, and the plugin compresses with plain LZ4)."""
    if codec_of(ds) != "lz4":
        ds[start:start + len(images)] = images
        return
    for k, image in enumerate(np.ascontiguousarray(images, dtype=ds.dtype)):
        ds.id.write_direct_chunk((start + k, 0, 0, 0), lz4_encode(image.tobytes()))


def _lz4() -> Any:
    try:
        import lz4.block
    except ImportError:
        raise ConfigError("LZ4-compressed images need the 'lz4' package: pip install 'causal3dident[load]'") from None
    return lz4.block
