"""The Causal3DIdent VisionDataset on HDF5 files: exact round trips through multi-worker DataLoaders."""

from __future__ import annotations

import shutil
import sys
import zlib

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from causal3dident import Causal3DIdent
from causal3dident.errors import ConfigError
from causal3dident.latents import to_scene_units
from causal3dident.neighbours import nearest_same_class
from causal3dident.pairs import rotate

ALL_SINGLE = ["latents", "class", "scene", "index"]
ALL_PAIR = [*ALL_SINGLE, "latents2", "scene2", "index2"]


@pytest.fixture()
def h5(synthetic_h5, tmp_path):
    """A private copy of the session's synthetic file (some tests modify it)."""
    return shutil.copy(synthetic_h5, tmp_path / "train.h5")


@pytest.fixture(scope="module")
def truth(synthetic_h5):
    with h5py.File(synthetic_h5, "r") as f:
        return {"images": f["images"][...], "latents": f["latents"][...], "classes": f["classes"][...],
                "hues": f["pairs/hues/latents"][...], "hues_images": f["pairs/hues/images"][...]}


def _collect(ds, **loader_args):
    """Every sample of ``ds`` through a 2-worker DataLoader, batches concatenated."""
    loader = DataLoader(ds, batch_size=10, num_workers=2, shuffle=True, generator=torch.Generator().manual_seed(0),
                        **loader_args)
    batches = list(loader)
    return [torch.cat([b[k] for b in batches]) if isinstance(batches[0][k], torch.Tensor)
            else [torch.cat([b[k][j] for b in batches]) for j in range(len(batches[0][k]))]
            for k in range(len(batches[0]))]


def _hwc(images: torch.Tensor) -> np.ndarray:
    return images.permute(0, 2, 3, 1).numpy()


def test_single_images_round_trip_every_target_type(h5, truth) -> None:
    ds = Causal3DIdent(h5, target_type=ALL_SINGLE, image_format="tensor")
    images, (latents, classes, scene, index) = _collect(ds)
    i = index.numpy()
    assert sorted(i) == list(range(64))
    np.testing.assert_array_equal(_hwc(images), truth["images"][i])
    np.testing.assert_array_equal(latents.numpy(), truth["latents"][i])
    np.testing.assert_array_equal(classes.numpy(), truth["classes"][i])
    np.testing.assert_array_equal(scene.numpy(), to_scene_units(truth["latents"][i]).astype(np.float32))
    assert latents.dtype == torch.float32


def test_exact_lt_pairs_round_trip(h5, truth) -> None:
    ds = Causal3DIdent(h5, pairs="hues", target_type=[*ALL_PAIR, "z_tilde"], image_format="tensor")
    v1, v2, (latents, classes, scene, index, latents2, scene2, index2, z_tilde) = _collect(ds)
    i = index.numpy()
    np.testing.assert_array_equal(_hwc(v1), truth["images"][i])
    np.testing.assert_array_equal(_hwc(v2), truth["hues_images"][i])
    np.testing.assert_array_equal(z_tilde.numpy(), truth["hues"][i])
    np.testing.assert_array_equal(index2.numpy(), i)
    np.testing.assert_array_equal(latents2.numpy(), truth["latents"][i])
    np.testing.assert_array_equal(scene2.numpy(), scene.numpy())
    assert ds.pair_spec is not None and str(ds.pair_spec) == "exact:hues"


def test_nearest_pairs_are_nearest_same_class_neighbours_of_z_tilde(h5, truth) -> None:
    ds = Causal3DIdent(h5, pairs="nearest:hues", target_type=[*ALL_PAIR, "z_tilde"], image_format="tensor")
    v1, v2, (latents, classes, scene, index, latents2, scene2, index2, z_tilde) = _collect(ds)
    i, j, z = index.numpy(), index2.numpy(), z_tilde.numpy()
    assert (j != i).all(), "an anchor paired with itself"
    np.testing.assert_array_equal(j, nearest_same_class(z, truth["classes"][i], truth["latents"],
                                                        truth["classes"], exclude=i))
    assert (truth["classes"][j] == truth["classes"][i]).all()
    np.testing.assert_array_equal(_hwc(v1), truth["images"][i])
    np.testing.assert_array_equal(_hwc(v2), truth["images"][j])
    np.testing.assert_array_equal(latents2.numpy(), truth["latents"][j])
    np.testing.assert_array_equal(scene2.numpy(), to_scene_units(truth["latents"][j]).astype(np.float32))
    # z~ keeps the non-hue latents and redraws the hues
    np.testing.assert_array_equal(z[:, :7], truth["latents"][i][:, :7])
    assert not np.allclose(z[:, 7:], truth["latents"][i][:, 7:])
    np.testing.assert_array_equal(z, ds.z_tilde(i))


def test_nearest_z_tilde_depends_on_seed_epoch_and_index_only(h5) -> None:
    ds = Causal3DIdent(h5, pairs="nearest:positions", target_type="z_tilde", seed=7)
    batch = ds.z_tilde([5, 1, 9])
    np.testing.assert_array_equal(batch[1], ds.z_tilde([1])[0])
    np.testing.assert_array_equal(batch, Causal3DIdent(h5, pairs="nearest:positions", seed=7).z_tilde([5, 1, 9]))
    assert not np.allclose(batch, ds.z_tilde([5, 1, 9], epoch=1))
    assert not np.allclose(batch, Causal3DIdent(h5, pairs="nearest:positions", seed=8).z_tilde([5, 1, 9]))
    ds.set_epoch(1)
    np.testing.assert_array_equal(ds[5][2].numpy(), ds.z_tilde([5], epoch=1)[0])


def test_epoch_reaches_persistent_spawn_workers(h5) -> None:
    ds = Causal3DIdent(h5, pairs="nearest:hues", target_type=["index", "z_tilde"], image_format="tensor")
    loader = DataLoader(ds, batch_size=16, num_workers=2, persistent_workers=True,
                        multiprocessing_context="spawn")
    for epoch in (0, 3):
        ds.set_epoch(epoch)
        for _, _, (index, z) in loader:
            np.testing.assert_array_equal(z.numpy(), ds.z_tilde(index.numpy(), epoch=epoch))


@pytest.mark.parametrize("setting", ["colour", "crop_small", "rotation_crop_large_colour"])
def test_da_pairs_keep_targets_and_shapes(h5, truth, setting) -> None:
    ds = Causal3DIdent(h5, pairs=setting, target_type=["index", "latents", "latents2", "index2"],
                       image_format="tensor")
    v1, v2, (index, latents, latents2, index2) = _collect(ds)
    i = index.numpy()
    np.testing.assert_array_equal(latents.numpy(), truth["latents"][i])
    np.testing.assert_array_equal(latents2.numpy(), truth["latents"][i])
    np.testing.assert_array_equal(index2.numpy(), i)
    assert v1.shape == v2.shape == (64, 3, 32, 32) and v1.dtype == torch.uint8
    assert not torch.equal(v1, v2), "two views of every image identical: the augmentation did nothing"


def test_rotation_gives_two_distinct_exact_right_angles(h5, truth) -> None:
    ds = Causal3DIdent(h5, pairs="rotation", target_type="index", image_format="tensor")
    v1, v2, index = _collect(ds)
    for a, b, i in zip(v1, v2, index.numpy()):
        image = torch.from_numpy(truth["images"][i]).permute(2, 0, 1)
        k1 = [k for k in range(4) if torch.equal(a, torch.rot90(image, k, (1, 2)))]
        k2 = [k for k in range(4) if torch.equal(b, torch.rot90(image, k, (1, 2)))]
        assert k1 and k2 and set(k1).isdisjoint(k2)


def test_rotate_pil_and_tensor_agree(truth) -> None:
    from PIL import Image

    array = truth["images"][0]
    for angle in (90, 180, 270):
        pil = np.asarray(rotate(Image.fromarray(array), angle))
        tensor = rotate(torch.from_numpy(array).permute(2, 0, 1), angle).permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(pil, tensor)


def test_pil_images_batched_reads_and_in_memory(h5, truth) -> None:
    ds = Causal3DIdent(h5, target_type=["index", "class"])
    image, (index, label) = ds[-1]
    assert image.mode == "RGB" and index == 63 and label == truth["classes"][63]
    np.testing.assert_array_equal(np.asarray(image), truth["images"][63])
    items = ds.__getitems__([7, 3, 7, 0])
    assert [t[1][0] for t in items] == [7, 3, 7, 0]
    for (img, _), i in zip(items, [7, 3, 7, 0]):
        np.testing.assert_array_equal(np.asarray(img), truth["images"][i])
    memory = Causal3DIdent(h5, pairs="hues", target_type="index", in_memory=True, image_format="tensor")
    v1, v2, index = _collect(memory)
    np.testing.assert_array_equal(_hwc(v2), truth["hues_images"][index.numpy()])
    with pytest.raises(IndexError):
        ds[64]


def test_transform_rules(h5, truth) -> None:
    def plus_one(x):
        return x + 1

    ds = Causal3DIdent(h5, pairs="hues", target_type="class", image_format="tensor", transform=plus_one,
                       target_transform=lambda t: t * 10)
    v1, v2, target = ds[2]
    assert torch.equal(v1, torch.from_numpy(truth["images"][2]).permute(2, 0, 1) + 1)
    assert torch.equal(v2, torch.from_numpy(truth["hues_images"][2]).permute(2, 0, 1) + 1)
    assert target == 10 * truth["classes"][2]
    seen = []

    def joint(views, target):
        seen.append((len(views), target))
        return views, target

    Causal3DIdent(h5, pairs="hues", target_type="class", transforms=joint)[2]
    assert seen == [(2, truth["classes"][2])]
    with pytest.raises(ValueError, match="Only transforms or transform"):
        Causal3DIdent(h5, transform=plus_one, transforms=joint)
    with pytest.raises(ConfigError, match="no target to transform"):
        Causal3DIdent(h5, target_type=[], target_transform=plus_one)
    assert Causal3DIdent(h5, target_type=[])[0][1] is None


@pytest.mark.parametrize("kwargs, message", [
    ({"target_type": "colour"}, "unknown target_type 'colour'"),
    ({"target_type": "index2"}, "pass pairs="),
    ({"pairs": "colour", "target_type": "z_tilde"}, "needs an LT pair mode"),
    ({"pairs": "sideways"}, "unknown latent transformation 'sideways'"),
    ({"pairs": "blurry:hues"}, "unknown pair mode 'blurry'"),
    ({"pairs": "da:hues"}, "unknown DA setting 'hues'"),
    ({"image_format": "numpy"}, "image_format must be one of"),
    ({"split": ""}, "split must be a name"),
])
def test_bad_arguments_fail_at_construction(h5, kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        Causal3DIdent(h5, **kwargs)


def test_repr_names_split_source_targets_and_pairs(h5) -> None:
    text = repr(Causal3DIdent(h5.parent, split="train", pairs="nearest:hues", target_type=["class", "latents"]))
    assert "Number of datapoints: 64" in text and "Split: train" in text and "HDF5 file" in text
    assert "Target type: ['class', 'latents']" in text and "Pairs: nearest:hues (seed 3, epoch 0)" in text
    assert "Pair augmentation: DAPair('crop_large'" in repr(Causal3DIdent(h5, pairs="crop_large"))


def test_stats_are_exact_and_stored_in_the_file_by_its_writer(h5, truth, monkeypatch) -> None:
    from causal3dident import stats as stats_module

    with h5py.File(h5, "r") as f:
        assert "stats" in f.attrs  # sealed by make_synthetic_dataset, as by every writer
    monkeypatch.setattr(stats_module, "compute", lambda *a: pytest.fail("recomputed stored stats"))
    stats = Causal3DIdent(h5).stats
    pixels = truth["images"].reshape(-1, 3).astype(np.float64) / 255
    np.testing.assert_allclose(stats.mean, pixels.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.std, pixels.std(0), rtol=1e-9)
    assert stats.class_counts == tuple(np.bincount(truth["classes"], minlength=7))


def test_stats_of_an_older_file_are_cached_in_the_user_folder(h5, truth, tmp_path, monkeypatch) -> None:
    from causal3dident import stats as stats_module

    monkeypatch.setenv("C3DI_CACHE_DIR", str(tmp_path / "cache"))
    with h5py.File(h5, "r+") as f:
        del f.attrs["stats"]  # as files written before writers stored them
    before = h5.read_bytes()
    stats = Causal3DIdent(h5).stats
    np.testing.assert_allclose(stats.mean, truth["images"].reshape(-1, 3).mean(0) / 255, rtol=1e-12)
    assert h5.read_bytes() == before and sorted(p.name for p in h5.parent.iterdir()) == ["cache", "train.h5"]
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [stats_module.cache_path(h5).name]
    monkeypatch.setattr(stats_module, "compute", lambda *a: pytest.fail("recomputed cached stats"))
    assert Causal3DIdent(h5).stats == stats


def test_raw_chunk_reads_match_h5py_with_either_inflater(h5, truth, monkeypatch) -> None:
    import causal3dident.dataset as dataset_module

    order = np.random.default_rng(0).permutation(64)
    ds = Causal3DIdent(h5, image_format="tensor")
    assert ds.source.prepare("images") is not None, "the store's layout should be read chunk by chunk"
    np.testing.assert_array_equal(ds.source.read(order), truth["images"][order])
    monkeypatch.setitem(sys.modules, "deflate", None)  # libdeflate missing: zlib inflates
    assert dataset_module.inflater(10) is zlib.decompress
    np.testing.assert_array_equal(Causal3DIdent(h5).source.read(order), truth["images"][order])


@pytest.mark.parametrize("layout", [{"compression": "lzf", "chunks": (4, 32, 32, 3)}, {"chunks": None}])
def test_other_image_layouts_are_read_by_h5py(h5, truth, layout) -> None:
    with h5py.File(h5, "r+") as f:
        del f["images"]
        f.create_dataset("images", data=truth["images"], **layout)
    ds = Causal3DIdent(h5, target_type="index", image_format="tensor")
    assert ds.source.prepare("images") is None
    images, index = _collect(ds)
    np.testing.assert_array_equal(_hwc(images), truth["images"][index.numpy()])
