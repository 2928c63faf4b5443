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


def test_samples_of_one_batch_buffer_are_batched_without_a_copy(synthetic_h5) -> None:
    ds = Causal3DIdent(synthetic_h5, pairs="hues", target_type=["latents", "class", "z_tilde"], image_format="tensor")
    samples = ds.__getitems__([5, 2, 9, 9])
    ours = channels_last_collate(samples)
    _same(ours, default_collate(samples))
    view1, view2, (latents, classes, z_tilde) = ours
    for batch, sample in ((view1, samples[0][0]), (view2, samples[0][1]), (latents, samples[0][2][0]),
                          (z_tilde, samples[0][2][2])):
        assert batch.data_ptr() == sample.data_ptr()  # the batch is the buffer the samples were read into
    assert view1.is_contiguous(memory_format=torch.channels_last) and latents.is_contiguous()
    assert len({t.untyped_storage().data_ptr() for t in (view1, view2, latents, z_tilde)}) == 1  # one buffer
    with h5py.File(synthetic_h5) as f:
        images, truth = f["images"][...], f["latents"][...]
    np.testing.assert_array_equal(view1.permute(0, 2, 3, 1).numpy(), images[[5, 2, 9, 9]])
    np.testing.assert_array_equal(latents.numpy(), truth[[5, 2, 9, 9]])


def test_samples_out_of_order_or_not_from_a_batch_buffer_are_copied(synthetic_h5) -> None:
    ds = Causal3DIdent(synthetic_h5, target_type="latents", image_format="tensor")
    samples = ds.__getitems__([0, 1, 2, 3])
    for batch in (samples[::-1], samples[:2] + samples[3:], [ds[0], ds[1]]):  # reordered, a gap, two buffers
        ours = channels_last_collate(batch)
        _same(ours, default_collate(batch))
        assert ours[0].data_ptr() != batch[0][0].data_ptr() and ours[1].data_ptr() != batch[0][1].data_ptr()
    rows = list(torch.arange(24.0).view(4, 6))  # back to back, but in a tensor the caller owns: never aliased
    ours = channels_last_collate(rows)
    assert torch.equal(ours, torch.arange(24.0).view(4, 6)) and ours.data_ptr() != rows[0].data_ptr()
    transformed = [(image.flip(-1), target) for image, target in samples]  # new tensors: copied
    _same(channels_last_collate(transformed), default_collate(transformed))


def test_worker_batch_arrives_as_one_shared_buffer(synthetic_h5) -> None:
    ds = Causal3DIdent(synthetic_h5, pairs="exact:positions", target_type=["latents", "latents2", "class"],
                       image_format="tensor")
    loader = DataLoader(ds, batch_size=16, num_workers=2, collate_fn=channels_last_collate)
    with h5py.File(synthetic_h5) as f:
        images, pair_images, latents = f["images"][...], f["pairs/positions/images"][...], f["latents"][...]
    for k, (view1, view2, (z, z2, classes)) in enumerate(loader):
        rows = slice(16 * k, 16 * (k + 1))
        assert view1.is_shared() and len({t.untyped_storage().data_ptr() for t in (view1, view2, z, z2)}) == 1
        np.testing.assert_array_equal(view1.permute(0, 2, 3, 1).numpy(), images[rows])
        np.testing.assert_array_equal(view2.permute(0, 2, 3, 1).numpy(), pair_images[rows])
        np.testing.assert_array_equal(z.numpy(), latents[rows])
        np.testing.assert_array_equal(classes.numpy(), ds.targets[rows])
