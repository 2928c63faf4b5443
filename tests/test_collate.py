"""``channels_last_collate``: the values of ``default_collate``, image batches channels-last in memory."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, default_collate
from torchvision import tv_tensors

from causal3dident import Causal3DIdent, channels_last_collate
from causal3dident.convert import repack


def _same(a, b) -> None:
    """Nested batches hold the same types and values."""
    assert type(a) is type(b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _same(a[key], b[key])
    else:
        assert a == b


def test_same_values_as_default_collate_images_channels_last() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (4, 5, 7, 3), dtype=np.uint8)
    samples = [(torch.from_numpy(p).permute(2, 0, 1).as_subclass(tv_tensors.Image), (torch.full((10,), k / 3), k),
                {"name": f"s{k}", "z": np.full(2, k)}) for k, p in enumerate(pixels)]
    ours, theirs = channels_last_collate(samples), default_collate(samples)
    _same(ours, theirs)
    images = ours[0]
    assert images.shape == (4, 3, 5, 7) and images.is_contiguous(memory_format=torch.channels_last)
    assert not images.is_contiguous()  # ... which default_collate's batch is
    assert ours[1][0].is_contiguous()  # latents collated as default_collate does
    np.testing.assert_array_equal(images.permute(0, 2, 3, 1).numpy(), pixels)


def test_other_tensors_are_collated_as_default_collate_does() -> None:
    planar = [torch.arange(60, dtype=torch.uint8).view(3, 4, 5) + k for k in range(3)]  # contiguous [C, H, W]
    ours = channels_last_collate(planar)
    _same(ours, default_collate(planar))
    assert ours.is_contiguous()
    with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
        channels_last_collate([torch.zeros(4, 4, 3).permute(2, 0, 1), torch.zeros(5, 4, 3).permute(2, 0, 1)])


@pytest.mark.parametrize("codec", ["gzip", "lz4"])
def test_worker_batches_equal_default_collate(synthetic_h5, tmp_path, codec) -> None:
    path = shutil.copy(synthetic_h5, tmp_path / "train.h5")
    if codec == "lz4":
        pytest.importorskip("lz4")
        path = repack(path, tmp_path / "lz4.h5", compression="lz4")
    ds = Causal3DIdent(path, pairs="hues", target_type=["latents", "class"], image_format="tensor")
    assert ds.source.prepare("images").codec == codec  # the raw-chunk reader
    loaders = [DataLoader(ds, batch_size=12, num_workers=2, persistent_workers=True, collate_fn=collate)
               for collate in (channels_last_collate, default_collate)]
    with h5py.File(path) as f:
        truth = f["images"][...]
    seen = 0
    for ours, theirs in zip(*loaders):
        _same(ours, theirs)
        assert ours[0].is_contiguous(memory_format=torch.channels_last) and ours[0].is_shared()
        np.testing.assert_array_equal(ours[0].permute(0, 2, 3, 1).numpy(), truth[seen:seen + len(ours[0])])
        seen += len(ours[0])
    assert seen == len(ds)
