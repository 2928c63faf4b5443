"""Bad input fails at construction with one line naming the problem and the fix."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from causal3dident import Causal3DIdent
from causal3dident.dataset import RawChunks
from causal3dident.errors import DatasetFileError
from causal3dident.generate import build_config, write_latents_file
from causal3dident.testing import make_synthetic_dataset


def _raises(match: str, *args, **kwargs) -> str:
    with pytest.raises(DatasetFileError, match=match) as info:
        Causal3DIdent(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_missing_path_and_empty_folder(tmp_path) -> None:
    _raises("no such file or folder", tmp_path / "nope.h5")
    message = _raises("holds no Causal3DIdent data", tmp_path)
    assert "train.h5" in message and "images_0..6" in message and "raw_latents.npy" in message


def test_missing_split_names_the_splits_found(synthetic_h5, tmp_path) -> None:
    shutil.copy(synthetic_h5, tmp_path / "test.h5")
    _raises(r"has no split 'train' \(found: test\); pass split=", tmp_path)
    assert len(Causal3DIdent(tmp_path, split="test")) == 64


def test_foreign_truncated_and_incomplete_files(synthetic_h5, tmp_path) -> None:
    (tmp_path / "notes.h5").write_text("hello")
    _raises("not an HDF5 file", tmp_path / "notes.h5")
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["x"] = np.zeros(3)
    _raises("not a Causal3DIdent dataset", tmp_path / "foreign.h5")
    data = synthetic_h5.read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    _raises("truncated|damaged", tmp_path / "cut.h5")
    shutil.copy(synthetic_h5, tmp_path / "half.h5")
    with h5py.File(tmp_path / "half.h5", "r+") as f:
        f.attrs["complete"] = False
    _raises("incomplete", tmp_path / "half.h5")


def test_chunks_past_the_end_of_the_file_are_reported(synthetic_h5, tmp_path) -> None:
    short = tmp_path / "short.h5"
    short.write_bytes(b"\0" * 1000)
    with h5py.File(synthetic_h5) as f:
        assert RawChunks.locate(f["images"], synthetic_h5) is not None
        with pytest.raises(DatasetFileError, match="short.h5 is truncated: its images need .* the file has 1000;"):
            RawChunks.locate(f["images"], short)


def test_file_without_images_or_with_a_partial_render(synthetic_h5, tmp_path) -> None:
    write_latents_file(tmp_path / "latents.h5", build_config("causal3dident", 8), 0)
    _raises("has latents but no images; render them first", tmp_path / "latents.h5")
    shutil.copy(synthetic_h5, tmp_path / "partial.h5")
    with h5py.File(tmp_path / "partial.h5", "r+") as f:
        f.attrs["num_rendered"] = 10
    _raises("only 10 of 64 images are rendered; resume", tmp_path / "partial.h5")


def test_lt_pairs_the_file_lacks(tmp_path) -> None:
    path = make_synthetic_dataset(tmp_path / "train.h5", n=64, resolution=8, pairs=("hues",))
    message = _raises("has no rendered 'rotations' pairs", path, pairs="rotations")
    assert "pairs='nearest:rotations'" in message and "rendered pairs: hues" in message
    with h5py.File(path, "r+") as f:
        del f["pairs/hues/images"]
    _raises("has the z~ latents of 'hues' pairs but not their images", path, pairs="exact:hues")
    assert len(Causal3DIdent(path, pairs="nearest:hues")) == 64  # the paper's way needs no pair images


def test_original_layout_errors(tmp_path) -> None:
    from PIL import Image

    split = tmp_path / "trainset"
    for c in range(7):
        (split / f"images_{c}").mkdir(parents=True)
        np.save(split / f"raw_latents_{c}.npy", np.zeros((3, 10), np.float32))
        for j in range(3):
            Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(split / f"images_{c}" / f"{j}.png")
    assert len(Causal3DIdent(tmp_path)) == 21
    (split / "images_4" / "1.png").unlink()
    _raises(r"images_4 lacks 1 of the 3 PNGs that raw_latents_4.npy lists \(first: 1.png\); re-extract", tmp_path)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(split / "images_4" / "1.png")
    (split / "raw_latents_6.npy").write_bytes(b"garbage")
    _raises("raw_latents_6.npy is not a readable .npy file", tmp_path)
    np.save(split / "raw_latents_6.npy", np.zeros((3, 9), np.float32))
    _raises(r"raw_latents_6.npy has shape \(3, 9\), expected \[N, 10\]", tmp_path)
    (split / "raw_latents_6.npy").unlink()
    _raises("raw_latents_6.npy is missing", tmp_path)
    np.save(split / "raw_latents_6.npy", np.zeros((3, 10), np.float32))
    _raises("has no rendered pairs; use pairs='nearest:hues'", split.parent, pairs="hues")
