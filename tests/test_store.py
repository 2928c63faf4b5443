"""The HDF5 dataset file: round trip, atomic writes, clear errors, verify, shard merge."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from causal3dident import CLASS_NAMES, LATENT_NAMES, DatasetFileError, OutputExistsError
from causal3dident.generate import build_config, latents_for_config, merge_files, write_latents_file
from causal3dident.store import SCHEMA_VERSION, atomic_h5, describe, open_dataset, read_config, read_latents, verify


@pytest.fixture(scope="module")
def config():
    return build_config("causal3dident", 3000, pairs="hues,positions_hues", interventions=["hue_bg~uniform(0,1)"])


@pytest.fixture()
def written(tmp_path, config):
    return write_latents_file(tmp_path / "d.h5", config, seed=7)


def test_round_trip(written, config):
    expected = latents_for_config(config, 7, 0, 3000)
    z, c = read_latents(written)
    assert np.array_equal(z, expected["latents"]) and np.array_equal(c, expected["classes"])
    with open_dataset(written) as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION and f.attrs["seed"] == 7
        assert list(f.attrs["class_names"]) == list(CLASS_NAMES)
        assert [n.decode() if isinstance(n, bytes) else n for n in f["latents"].attrs["names"]] == list(LATENT_NAMES)
        assert read_config(f) == config
        for name in ("hues", "positions_hues"):
            assert np.array_equal(f["pairs"][name]["latents"][...], expected["pairs"][name])
    assert (z[:, LATENT_NAMES.index("hue_bg")] >= 0).all()  # the intervention is in effect and recorded
    assert describe(written)["config"]["interventions"] == ["hue_bg~uniform(0,1)"]


def test_file_opens_without_our_code(written):
    with h5py.File(written, "r") as f:
        assert f["latents"].shape == (3000, 10) and f["classes"].dtype == np.int64
        assert f["pairs/hues/latents"].shape == (3000, 10)


def test_truncated_file_is_reported(written, tmp_path):
    cut = tmp_path / "cut.h5"
    data = written.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetFileError, match="truncated"):
        open_dataset(cut)
    assert verify(cut) and "truncated" in verify(cut)[0]


def test_foreign_and_non_hdf5_files_are_reported(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(DatasetFileError, match="not a Causal3DIdent dataset"):
        open_dataset(foreign)
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(DatasetFileError, match="not an HDF5 file"):
        open_dataset(text)
    with pytest.raises(DatasetFileError, match="no such file"):
        open_dataset(tmp_path / "missing.h5")


def test_schema_version_and_incomplete_flag_are_checked(written, tmp_path):
    newer = tmp_path / "newer.h5"
    shutil.copy(written, newer)
    with h5py.File(newer, "r+") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(DatasetFileError, match="upgrade causal3dident"):
        open_dataset(newer)
    with h5py.File(newer, "r+") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["complete"] = False
    with pytest.raises(DatasetFileError, match="incomplete"):
        open_dataset(newer)


def test_failed_write_leaves_nothing_and_keeps_the_old_file(written):
    before = written.read_bytes()
    with pytest.raises(RuntimeError):
        with atomic_h5(written, overwrite=True) as f:
            f["latents"] = np.zeros((2, 10), np.float32)
            raise RuntimeError("crash mid-write")
    assert written.read_bytes() == before
    assert [p.name for p in written.parent.iterdir()] == [written.name]
    with pytest.raises(OutputExistsError, match="--overwrite"):
        with atomic_h5(written):
            pass


def test_verify_finds_tampering(written):
    assert verify(written) == []
    with h5py.File(written, "r+") as f:
        f["latents"][5, 2] = 0.123
    assert any("differ from what the recorded config and seed generate" in p for p in verify(written))
    assert verify(written, regenerate=False) == []
    with h5py.File(written, "r+") as f:
        f["classes"][0] = 9
    assert any("labels outside" in p for p in verify(written, regenerate=False))


def test_shards_merge_to_the_unsharded_file(tmp_path, config):
    whole = write_latents_file(tmp_path / "whole.h5", config, seed=2)
    shards = [write_latents_file(tmp_path / f"s{i}.h5", config, seed=2, shard=i, num_shards=3) for i in range(3)]
    merged = merge_files(shards[::-1], tmp_path / "merged.h5")  # any order
    with open_dataset(whole) as a, open_dataset(merged) as b:
        for key in ("latents", "classes", "index", "pairs/hues/latents", "pairs/positions_hues/latents"):
            assert np.array_equal(a[key][...], b[key][...]), key
    assert verify(merged) == []
    with pytest.raises(DatasetFileError, match="shard 1 of 3 is missing"):
        merge_files([shards[0], shards[2]], tmp_path / "gap.h5")
