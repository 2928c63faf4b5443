"""c3di convert / c3di export: original layout <-> HDF5 <-> PNG + CSV or Parquet, values exact both ways."""

from __future__ import annotations

import csv
import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from test_dataset_original import COUNTS, make_original

from causal3dident import Causal3DIdent
from causal3dident.cli import main
from causal3dident.convert import convert, export
from causal3dident.errors import ConfigError, DatasetFileError
from causal3dident.latents import CLASS_NAMES, LATENT_NAMES
from causal3dident.original_layout import ORIGINAL_LATENT_SCALE
from causal3dident.store import verify


def _read(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][...] for k in ("images", "latents", "classes", "index")}, json.loads(f.attrs["stats"])


def test_convert_original_to_hdf5_keeps_order_values_and_stats(tmp_path) -> None:
    truth = make_original(tmp_path / "orig")
    out = convert(tmp_path / "orig", tmp_path / "train.h5", workers=2)
    data, stats = _read(out)
    for key in ("images", "latents", "classes"):
        np.testing.assert_array_equal(data[key], truth[key])
    np.testing.assert_array_equal(data["index"], np.arange(sum(COUNTS)))
    assert verify(out) == []
    ds = Causal3DIdent(out)
    assert ds.stats.num_images == sum(COUNTS) and ds.stats.class_counts == COUNTS
    np.testing.assert_allclose(ds.stats.mean, truth["images"].reshape(-1, 3).mean(0) / 255, rtol=1e-12)
    assert stats["mean"] == list(ds.stats.mean)  # read from the file, as convert stored it


def test_export_original_then_convert_back_is_identical(synthetic_h5, tmp_path) -> None:
    export(synthetic_h5, tmp_path / "out", fmt="original", unbalanced="keep")
    folder = tmp_path / "out" / "trainset"
    with h5py.File(synthetic_h5, "r") as f:
        images, latents, classes = f["images"][...], f["latents"][...], f["classes"][...]
    for c in range(7):
        members = np.flatnonzero(classes == c)
        raw = np.load(folder / f"raw_latents_{c}.npy")
        np.testing.assert_array_equal(raw, latents[members])
        np.testing.assert_array_equal(np.load(folder / f"latents_{c}.npy"), raw * ORIGINAL_LATENT_SCALE)
    order = np.argsort(classes, kind="stable")  # the original layout stores class by class
    back, _ = _read(convert(tmp_path / "out", tmp_path / "back.h5"))
    np.testing.assert_array_equal(back["images"], images[order])
    np.testing.assert_array_equal(back["latents"], latents[order])
    np.testing.assert_array_equal(back["classes"], classes[order])


def test_export_csv_is_the_layout_croissant_describes(synthetic_h5, tmp_path) -> None:
    export(synthetic_h5, tmp_path, fmt="csv", split="test")
    with h5py.File(synthetic_h5, "r") as f:
        images, latents, classes, index = f["images"][...], f["latents"][...], f["classes"][...], f["index"][...]
    with open(tmp_path / "test.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["index", "file", "class", "class_name", *LATENT_NAMES]
    for k, row in enumerate(rows):
        assert int(row["index"]) == index[k] and row["file"] == f"images/test/{index[k]:06d}.png"
        assert int(row["class"]) == classes[k] and row["class_name"] == CLASS_NAMES[classes[k]]
        np.testing.assert_array_equal(np.array([row[n] for n in LATENT_NAMES], dtype=np.float32), latents[k])
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / row["file"])), images[k])


def test_export_parquet_has_the_csv_columns_with_exact_values(synthetic_h5, tmp_path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    result = CliRunner().invoke(main, ["export", str(synthetic_h5), str(tmp_path / "pq"), "--format", "parquet",
                                       "--split", "test"])
    assert result.exit_code == 0, result.output
    export(synthetic_h5, tmp_path / "csv", fmt="csv", split="test")
    with open(tmp_path / "csv" / "test.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    table = pq.read_table(tmp_path / "pq" / "test.parquet")
    assert table.column_names == list(rows[0])
    with h5py.File(synthetic_h5, "r") as f:
        images, latents, classes, index = f["images"][...], f["latents"][...], f["classes"][...], f["index"][...]
    assert table["index"].to_pylist() == index.tolist() and table["class"].to_pylist() == classes.tolist()
    assert table["file"].to_pylist() == [row["file"] for row in rows]
    assert table["class_name"].to_pylist() == [CLASS_NAMES[c] for c in classes]
    stored = np.stack([table[name].to_numpy() for name in LATENT_NAMES], axis=1)
    assert stored.dtype == np.float32
    np.testing.assert_array_equal(stored, latents)  # exact: float32 in, float32 out
    for k in (0, len(rows) - 1):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "pq" / rows[k]["file"])), images[k])
    again = CliRunner().invoke(main, ["export", str(synthetic_h5), str(tmp_path / "pq"), "--format", "parquet",
                                      "--split", "test"])
    assert again.exit_code == 2 and "test.parquet already exists; pass --overwrite" in again.output


def test_refusals(synthetic_h5, tmp_path) -> None:
    make_original(tmp_path / "two", "train")
    make_original(tmp_path / "two", "test")
    with pytest.raises(ConfigError, match=r"several splits \(test, train\); choose one with --split"):
        convert(tmp_path / "two", tmp_path / "x.h5")
    with pytest.raises(DatasetFileError, match="has no split 'valid'"):
        convert(tmp_path / "two", tmp_path / "x.h5", split="valid")
    convert(tmp_path / "two", tmp_path / "test.h5", split="test")
    assert len(Causal3DIdent(tmp_path, split="test")) == sum(COUNTS)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetFileError, match="holds no original-layout data"):
        convert(tmp_path / "empty", tmp_path / "y.h5")
    with pytest.raises(ConfigError, match="unknown export format"):
        export(synthetic_h5, tmp_path / "z", fmt="feather")


def test_cli_commands_and_one_line_errors(synthetic_h5, tmp_path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["export", str(synthetic_h5), str(tmp_path / "exp"), "--workers", "2",
                                   "--unbalanced", "keep"])
    assert result.exit_code == 0, result.output
    again = runner.invoke(main, ["export", str(synthetic_h5), str(tmp_path / "exp"), "--unbalanced", "keep"])
    assert again.exit_code == 2 and "already exists; pass --overwrite" in again.output
    result = runner.invoke(main, ["convert", str(tmp_path / "exp"), str(tmp_path / "train.h5")])
    assert result.exit_code == 0, result.output
    info = runner.invoke(main, ["info", str(tmp_path / "train.h5")])
    assert "original causal3dident layout" in info.output and "64 of 64 rendered" in info.output
    result = runner.invoke(main, ["convert", str(tmp_path / "exp"), str(tmp_path / "train.h5")])
    assert result.exit_code == 2 and "already exists" in result.output


def test_latents_only_file_exports_its_table(tmp_path) -> None:
    from causal3dident.generate import build_config, write_latents_file

    path = write_latents_file(tmp_path / "train.h5", build_config("causal3dident", 5), 0)
    export(path, tmp_path / "out", fmt="csv")
    with open(tmp_path / "out" / "train.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 5
    assert not (tmp_path / "out" / "images").exists()
    with pytest.raises(DatasetFileError, match="has no images; the original layout needs them"):
        export(path, tmp_path / "orig", fmt="original")
