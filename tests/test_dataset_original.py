"""The original releases' folder layouts load with the right images, latents and classes, in order."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from causal3dident import Causal3DIdent
from causal3dident.errors import DatasetFileError
from causal3dident.testing import draw_images

COUNTS = (3, 12, 1, 5, 2, 10, 4)  # uneven, so names are padded to 1 or 2 digits as in the release


def make_original(root: Path, split: str = "train", counts: tuple[int, ...] = COUNTS, resolution: int = 16,
                  seed: int = 0, width: int | None = None) -> dict[str, np.ndarray]:
    """An original-layout split ``root/<split>set`` of ``draw_images`` PNGs; returns what it wrote, in order.

    Names follow ssl_identifiability (``str(j).zfill(ceil(log10(n)))``) unless ``width`` forces a padding.
    """
    rng = np.random.default_rng(seed)
    folder = root / f"{split}set"
    latents, classes, images = [], [], []
    for c, n in enumerate(counts):
        z = rng.uniform(-1, 1, (n, 10)).astype(np.float32)
        pics = draw_images(z, np.full(n, c), resolution)
        (folder / f"images_{c}").mkdir(parents=True)
        np.save(folder / f"raw_latents_{c}.npy", z)
        np.save(folder / f"latents_{c}.npy", z * 2)
        pad = width if width is not None else (math.ceil(math.log10(n)) if n > 1 else 0)
        for j in range(n):
            Image.fromarray(pics[j]).save(folder / f"images_{c}" / f"{str(j).zfill(pad)}.png")
        latents.append(z)
        classes.append(np.full(n, c))
        images.append(pics)
    return {"latents": np.concatenate(latents), "classes": np.concatenate(classes), "images": np.concatenate(images)}


@pytest.mark.parametrize("width", [None, 6])
def test_original_layout_loads_in_the_original_order(tmp_path, width) -> None:
    truth = make_original(tmp_path, width=width)
    ds = Causal3DIdent(tmp_path, target_type=["latents", "class", "index"], image_format="tensor")
    assert len(ds) == sum(COUNTS) and "original causal3dident layout" in repr(ds)
    for k in range(len(ds)):
        image, (latents, label, index) = ds[k]
        np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), truth["images"][k])
        np.testing.assert_array_equal(latents.numpy(), truth["latents"][k])
        assert label == truth["classes"][k] and index == k
    assert list(ds.targets[:4]) == [0, 0, 0, 1]


def test_split_selection_and_pil_output(tmp_path) -> None:
    make_original(tmp_path, "train")
    test = make_original(tmp_path, "test", counts=(2,) * 7, seed=1)
    ds = Causal3DIdent(tmp_path, split="test", target_type="latents")
    assert len(ds) == 14
    image, latents = ds[13]
    np.testing.assert_array_equal(np.asarray(image), test["images"][13])
    np.testing.assert_array_equal(latents.numpy(), test["latents"][13])
    assert len(Causal3DIdent(tmp_path / "testset")) == 14  # the split folder itself works too


def test_3dident_layout_is_one_class(tmp_path) -> None:
    folder = tmp_path / "trainset"
    (folder / "images").mkdir(parents=True)
    z = np.random.default_rng(0).uniform(-1, 1, (11, 10)).astype(np.float32)
    pics = draw_images(z, np.zeros(11, int), 8)
    np.save(folder / "raw_latents.npy", z)
    for j in range(11):
        Image.fromarray(pics[j]).save(folder / "images" / f"{j:02d}.png")
    ds = Causal3DIdent(tmp_path, target_type=["latents", "class"], image_format="tensor")
    assert "3dident layout" in repr(ds)
    image, (latents, label) = ds[10]
    np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), pics[10])
    np.testing.assert_array_equal(latents.numpy(), z[10])
    assert label == 0 and set(ds.targets) == {0}


def test_original_layout_nearest_pairs_and_stats_cached_outside_the_data(tmp_path, monkeypatch) -> None:
    from causal3dident.stats import cache_path

    monkeypatch.setenv("C3DI_CACHE_DIR", str(tmp_path / "cache"))
    make_original(tmp_path / "lonely")  # class 2 (dragon) has one image: fail now, not mid-epoch
    with pytest.raises(DatasetFileError, match="class dragon has a single sample"):
        Causal3DIdent(tmp_path / "lonely", pairs="nearest:hues")
    counts = (3, 12, 2, 5, 2, 10, 4)
    truth = make_original(tmp_path, counts=counts)
    ds = Causal3DIdent(tmp_path, pairs="nearest:rotations", target_type=["index", "index2"], image_format="tensor")
    for k in range(len(ds)):
        _, view2, (i, j) = ds[k]
        assert j != i and truth["classes"][j] == truth["classes"][i]
        np.testing.assert_array_equal(view2.permute(1, 2, 0).numpy(), truth["images"][j])
    stats = ds.stats
    np.testing.assert_allclose(stats.mean, truth["images"].reshape(-1, 3).mean(0) / 255, rtol=1e-12)
    assert stats.class_counts == counts
    assert cache_path(tmp_path / "trainset" / "raw_latents").is_file()
    assert not [p for p in (tmp_path / "trainset").iterdir() if p.name.startswith(".")]
