"""Decoding stored images chunk by chunk, as the loader, ``c3di verify`` and the writers' checksum pass all do.

Images are stored one per chunk (``store.create_image_dataset``), deflate (gzip), LZ4 or unfiltered. Reading a
chunk's bytes and decoding them here, rather than through HDF5's filter pipeline, is faster (the loader) and
turns every failure into an error that names the file, the dataset and the sample. Each decoded image can be
checked against the CRC-32 of its pixels recorded when the file was written (``causal3dident.checksums``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from . import codecs
from .errors import DamagedFileError, DatasetFileError

Buffer = bytes | bytearray | memoryview


def crc32(data: Buffer | np.ndarray) -> int:
    """CRC-32 (the zlib/gzip polynomial) of the bytes of ``data``: libdeflate's (about 10 GB/s) if installed,
    else zlib's (about 1 GB/s); both give the same value."""
    return _crc32(data)


def _pick_crc32() -> Callable[[Any], int]:
    try:
        import deflate
    except ImportError:
        return zlib.crc32
    return deflate.crc32


_crc32 = _pick_crc32()


def inflater(size: int) -> Callable[[Buffer], Buffer]:
    """A function inflating a zlib stream to ``size`` bytes: libdeflate's if installed, else zlib's."""
    try:
        import deflate
    except ImportError:
        return zlib.decompress

    def inflate(raw: Buffer) -> bytearray:
        return deflate.zlib_decompress(raw, size)

    return inflate


def decoder(codec: str, size: int) -> Callable[[Buffer], Buffer] | None:
    """The function decoding a chunk of ``codec`` ('gzip', 'lz4', 'none') to ``size`` bytes; None for 'none'."""
    if codec == "none":
        return None
    if codec == "gzip":
        return inflater(size)
    if codec == "lz4":
        return lambda raw: codecs.lz4_decode(raw, size)
    raise ValueError(f"no decoder for codec {codec!r}")


def damaged(path: str | Path, dataset: str, row: int, reason: str) -> DamagedFileError:
    """The one-line error of a damaged image: file, dataset, sample and what to do."""
    return DamagedFileError(f"{path}: sample {row} of /{dataset} is damaged: it {reason}; run 'c3di verify {path}' "
                            f"to list the damage, then copy the file again or re-create it")


def describe_failure(exc: BaseException) -> str:
    """What a decoder's exception says, as a clause for ``damaged``."""
    return f"does not decode ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no details'})"


MISMATCH = "decodes to other pixels than were written (its CRC-32 differs from the one recorded)"


@dataclass(frozen=True)
class RawChunks:
    """Where each image's compressed bytes lie in the file, so a read is one inflate from the mapped file.

    Applies to the layout ``store.create_image_dataset`` writes: one image per chunk, deflate (gzip), LZ4
    or no filter, every chunk written. Reading the bytes directly skips HDF5's per-read machinery, which
    costs more than inflating a small image; inflating uses libdeflate (the ``deflate`` package, about
    twice as fast as zlib) when installed, else zlib; LZ4 chunks are decoded with the ``lz4`` package.
    A chunk that does not decode, or (with ``checksums``) decodes to other pixels than were written,
    raises ``DamagedFileError`` naming the file, the dataset and the sample.
    """

    table: np.ndarray  # [N, 3] int64: byte offset, size, filter mask (bit 0: the filter was skipped)
    shape: tuple[int, ...]
    dtype: np.dtype
    codec: str  # 'gzip', 'lz4' or 'none' (causal3dident.codecs.codec_of)
    path: str = ""
    dataset: str = "images"
    checksums: np.ndarray | None = None  # uint32 [N]: CRC-32 of each image's pixels, checked on every read

    @classmethod
    def locate(cls, ds: h5py.Dataset, path: Path, checksums: np.ndarray | None = None) -> RawChunks | None:
        """The chunk table of ``ds`` in the file at ``path``, or None if its layout is another (then h5py reads it).

        Raises ``DatasetFileError`` if a chunk lies past the end of the file (a truncated copy): found now,
        not as a crash in a worker.
        """
        codec = codecs.codec_of(ds)
        if ds.chunks != (1, *ds.shape[1:]) or codec is None:
            return None
        table = np.full((ds.shape[0], 3), -1, dtype=np.int64)

        def visit(info: Any) -> None:
            table[info.chunk_offset[0]] = (info.byte_offset, info.size, info.filter_mask)

        try:
            ds.id.chunk_iter(visit)
        except (AttributeError, NotImplementedError, RuntimeError):  # HDF5 older than 1.14: no chunk_iter
            return None
        if (table[:, 0] < 0).any():
            return None  # unwritten chunks: h5py returns their fill value
        end, size = int((table[:, 0] + table[:, 1]).max()), path.stat().st_size
        if end > size:
            raise DatasetFileError(f"{path} is truncated: its images need {end} bytes, the file has {size}; it was "
                                   f"cut short while copying or writing: copy it again or re-run the command that "
                                   f"made it")
        return cls(table, tuple(ds.shape[1:]), ds.dtype, codec, str(path), ds.name.lstrip("/"), checksums)

    def read(self, data: memoryview, indices: np.ndarray, out: np.ndarray) -> None:
        """Decode the images at ``indices`` from the mapped file ``data`` into ``out`` [B, H, W, C], in order."""
        nbytes = int(np.prod(self.shape)) * self.dtype.itemsize
        if out.shape != (len(indices), *self.shape) or out.dtype != self.dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous {self.dtype} array of shape {(len(indices), *self.shape)}")
        decode = decoder(self.codec, nbytes)
        expected = None if self.checksums is None else self.checksums[indices].tolist()
        target = memoryview(out).cast("B")
        for k, (offset, size, mask) in enumerate(self.table[indices].tolist()):
            raw = data[offset:offset + size]
            image = target[k * nbytes:(k + 1) * nbytes]
            try:
                image[:] = raw if mask & 1 or decode is None else decode(raw)
            except Exception as exc:  # zlib, libdeflate, lz4 or a size mismatch: the stored bytes are damaged
                raise damaged(self.path, self.dataset, int(indices[k]), describe_failure(exc)) from None
            if expected is not None and _crc32(image) != expected[k]:
                raise damaged(self.path, self.dataset, int(indices[k]), MISMATCH)


def image_reader(ds: h5py.Dataset) -> Callable[[int, np.ndarray], None]:
    """A function decoding image ``i`` of ``ds`` into ``out`` [H, W, 3] (C-contiguous); it raises whatever the
    decoder or HDF5 raises when the stored bytes are damaged.

    For the layout the writers use, each chunk's bytes are read with ``read_direct_chunk`` (this works on a
    file still open for writing) and decoded as the loader decodes them; other layouts go through h5py.
    """
    codec = codecs.codec_of(ds)
    if ds.chunks != (1, *ds.shape[1:]) or codec is None:
        def read_h5(i: int, out: np.ndarray) -> None:
            ds.read_direct(out, np.s_[i])

        return read_h5
    nbytes = int(np.prod(ds.shape[1:])) * ds.dtype.itemsize
    decode = decoder(codec, nbytes)
    dsid, zeros = ds.id, (0,) * (len(ds.shape) - 1)

    def read_chunk(i: int, out: np.ndarray) -> None:
        mask, raw = dsid.read_direct_chunk((i, *zeros))
        data = raw if mask & 1 or decode is None else decode(raw)
        if len(data) != nbytes:
            raise ValueError(f"decoded to {len(data)} bytes, expected {nbytes}")
        memoryview(out).cast("B")[:] = data

    return read_chunk
