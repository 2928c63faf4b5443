"""Image codecs: LZ4 chunks in the HDF5 LZ4 filter's framing, readable by hdf5plugin and by our loader;
``c3di repack`` keeps every value; ``c3di convert --compression lz4``."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from causal3dident import Causal3DIdent
from causal3dident.cli import main
from causal3dident.codecs import codec_of, filter_args, lz4_decode, write_images
from causal3dident.convert import repack
from causal3dident.errors import ConfigError
from causal3dident.testing import make_synthetic_dataset

hdf5plugin = pytest.importorskip("hdf5plugin")


def images(n: int = 6, side: int = 24) -> np.ndarray:
    rng = np.random.default_rng(0)
    smooth = (np.arange(side)[None, :, None, None] * rng.integers(1, 9, (n, 1, 1, 3))) % 256
    out = np.broadcast_to(smooth, (n, side, side, 3)).astype(np.uint8).copy()
    out[1] = rng.integers(0, 256, (side, side, 3))  # incompressible: stored raw inside the frame
    return out


def test_our_lz4_chunks_read_back_through_hdf5plugin(tmp_path):
    pixels = images()
    with h5py.File(tmp_path / "a.h5", "w") as f:
        ds = f.create_dataset("images", shape=pixels.shape, dtype=np.uint8, chunks=(1, *pixels.shape[1:]),
                              **filter_args("lz4"))
        write_images(ds, 0, pixels[:4])
        write_images(ds, 4, pixels[4:])
        assert codec_of(ds) == "lz4"
    with h5py.File(tmp_path / "a.h5") as f:
        assert np.array_equal(f["images"][:], pixels)


def test_we_decode_hdf5plugins_multi_block_chunks(tmp_path):
    pixels = images()
    with h5py.File(tmp_path / "b.h5", "w") as f:
        f.create_dataset("images", data=pixels, chunks=(1, *pixels.shape[1:]), **hdf5plugin.LZ4(nbytes=500))
    with h5py.File(tmp_path / "b.h5") as f:
        for i, image in enumerate(pixels):
            _, raw = f["images"].id.read_direct_chunk((i, 0, 0, 0))
            assert np.array_equal(np.frombuffer(lz4_decode(raw, image.nbytes), np.uint8).reshape(image.shape), image)


def contents(path) -> dict:
    out = {"/": dict(path.attrs)} if isinstance(path, h5py.File) else {}
    with h5py.File(path) as f:
        out["/"] = {k: str(v) for k, v in f.attrs.items()}
        f.visititems(lambda name, obj: out.__setitem__(
            name, (obj[...].tobytes(), obj.dtype.str, obj.shape, sorted(obj.attrs)) if isinstance(obj, h5py.Dataset)
            else {k: str(v) for k, v in obj.attrs.items()}))
    return out


def test_repack_keeps_every_value_and_the_loader_reads_both(tmp_path):
    gz = make_synthetic_dataset(tmp_path / "gz.h5", n=40, resolution=32, pairs=("hues", "positions"), seed=2)
    result = CliRunner().invoke(main, ["repack", str(gz), str(tmp_path / "lz.h5"), "--compression", "lz4"])
    assert result.exit_code == 0, result.output
    lz = tmp_path / "lz.h5"
    assert contents(gz) == contents(lz)
    with h5py.File(lz) as f:
        assert codec_of(f["images"]) == "lz4" and codec_of(f["pairs/hues/images"]) == "lz4"
    assert CliRunner().invoke(main, ["verify", str(lz)]).exit_code == 0
    a = Causal3DIdent(gz, pairs="hues", image_format="tensor")
    b = Causal3DIdent(lz, pairs="hues", image_format="tensor")
    assert b.source.prepare("images").codec == "lz4"  # the raw-chunk reader, not h5py
    for x, y in zip(a.__getitems__([5, 0, 39, 5]), b.__getitems__([5, 0, 39, 5])):
        assert all(np.array_equal(u, v) for u, v in zip(x[:2], y[:2]))
    back = repack(lz, tmp_path / "back.h5", compression="gzip")
    assert contents(back) == contents(gz)
    with h5py.File(back) as f:
        assert codec_of(f["images"]) == "gzip"


def test_convert_writes_lz4_and_unknown_codecs_are_config_errors(tmp_path):
    from causal3dident.convert import export

    gz = make_synthetic_dataset(tmp_path / "gz.h5", n=16, resolution=32, seed=1)
    export(gz, tmp_path / "orig", fmt="original", unbalanced="keep")
    result = CliRunner().invoke(main, ["convert", str(tmp_path / "orig"), str(tmp_path / "c.h5"),
                                       "--compression", "lz4"])
    assert result.exit_code == 0, result.output
    CliRunner().invoke(main, ["convert", str(tmp_path / "orig"), str(tmp_path / "g.h5")])
    with h5py.File(tmp_path / "c.h5") as f, h5py.File(tmp_path / "g.h5") as g:
        assert codec_of(f["images"]) == "lz4" and codec_of(g["images"]) == "gzip"
        assert np.array_equal(f["images"][:], g["images"][:])
    with pytest.raises(ConfigError, match="unknown image compression 'zip'"):
        filter_args("zip")
