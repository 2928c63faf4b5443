"""--balanced-classes: exactly equal counts per class, shuffled and seeded, latents still drawn from their
mechanisms given the class, sharded jobs balanced together; the split files record; the original-layout
export's refusal of unbalanced files (and its trim / keep)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from causal3dident import Causal3DIdent
from causal3dident.cli import main
from causal3dident.convert import export
from causal3dident.errors import ConfigError
from causal3dident.generate import build_config, latents_for_config, merge_files, scm_from_config
from causal3dident.original_layout import OriginalSplit
from causal3dident.store import verify
from causal3dident.testing import make_synthetic_dataset

C3DI = str(Path(sys.executable).with_name("c3di"))


def c3di(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([C3DI, *map(str, args)], capture_output=True, text=True, timeout=120)


def read(path: Path) -> dict:
    with h5py.File(path) as f:
        return {"latents": f["latents"][...], "classes": f["classes"][...], "index": f["index"][...],
                "config": json.loads(f.attrs["config"]), "split": f.attrs.get("split")}


def test_balanced_draw_has_equal_counts_in_a_seeded_shuffled_order() -> None:
    config = build_config("causal3dident", 700, balanced_classes=True)
    assert config["balanced_classes"] is True
    first = latents_for_config(config, 3, 0, 700)["classes"]
    assert np.bincount(first, minlength=7).tolist() == [100] * 7
    assert np.array_equal(first, latents_for_config(config, 3, 0, 700)["classes"])  # seeded
    other = latents_for_config(config, 4, 0, 700)["classes"]
    assert np.bincount(other, minlength=7).tolist() == [100] * 7 and not np.array_equal(first, other)
    runs = np.count_nonzero(np.diff(first)) + 1  # shuffled: about 6/7 of neighbours differ, not 7 blocks
    assert 500 < runs < 700
    assert "balanced_classes" not in build_config("causal3dident", 700)  # usual configs (and job ids) unchanged


def test_the_other_latents_follow_their_mechanisms_given_the_class() -> None:
    """Same noise as the usual draw: where the balanced class equals the drawn one, every latent is identical;
    where it differs, the class's own mechanism is used (rotation means differ per class)."""
    n, seed = 7000, 11
    balanced = latents_for_config(build_config("causal3dident", n, balanced_classes=True), seed, 0, n)
    usual = latents_for_config(build_config("causal3dident", n), seed, 0, n)
    same = balanced["classes"] == usual["classes"]
    assert 0.08 < same.mean() < 0.22  # about 1 in 7
    assert np.array_equal(balanced["latents"][same], usual["latents"][same])
    independent = [6, 8, 9]  # spot_pos, hue_spot, hue_bg: no parents, so the class does not matter
    assert np.array_equal(balanced["latents"][:, independent], usual["latents"][:, independent])
    scm = scm_from_config(build_config("causal3dident", n))
    signs = np.sign([[float(scm.mechanisms[k].mean[c].source) for k in ("rot_alpha", "rot_beta", "rot_gamma")]
                     for c in range(7)])  # rotation means: +-0.35 per axis and class, from the same uniforms
    flip = signs[balanced["classes"]] * signs[usual["classes"]]  # the mirrored truncnorm: -1 where signs differ
    assert np.array_equal(balanced["latents"][:, 3:6], usual["latents"][:, 3:6] * flip)
    assert (flip[~same] < 0).any(axis=1).all()  # every row of another class has some other rotation
    for c in range(7):  # each class's rotations centre on its own mean (spec: +-0.35 per axis)
        expected = np.sign([float(m.source) for m in (scm.mechanisms[k].mean[c] for k in
                                                      ("rot_alpha", "rot_beta", "rot_gamma"))])
        got = balanced["latents"][balanced["classes"] == c][:, 3:6].mean(axis=0)
        assert np.array_equal(np.sign(got), expected) and (np.abs(got) > 0.15).all(), (c, got)


def test_remainders_and_unequal_weights_are_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"divisible by the 7 classes .* 250000 is not: use --n 249998 or 250005"):
        build_config("causal3dident", 250000, balanced_classes=True)
    with pytest.raises(ConfigError, match=r"use --n 7$"):
        build_config("causal3dident", 3, balanced_classes=True)
    result = c3di("latents", "--n", "50", "--balanced-classes", "--out", tmp_path / "x.h5")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "use --n 49 or 56" in result.stderr
    assert list(tmp_path.iterdir()) == []
    weights = tmp_path / "weights.yaml"
    result = c3di("presets", "show", "causal3dident")
    weights.write_text(result.stdout.replace("weights: [1, 1, 1, 1, 1, 1, 1]", "weights: [2, 1, 1, 1, 1, 1, 1]"))
    assert weights.read_text() != result.stdout
    with pytest.raises(ConfigError, match=r"class weights differ \(teapot 0.25, hare 0.125"):
        build_config(weights, 70, balanced_classes=True)


def test_class_interventions_balance_over_the_classes_they_leave() -> None:
    two = build_config("causal3dident", 10, interventions=["class~weights(1,1,0,0,0,0,0)"], balanced_classes=True)
    assert np.bincount(latents_for_config(two, 0, 0, 10)["classes"], minlength=7).tolist() == [5, 5, 0, 0, 0, 0, 0]
    one = build_config("causal3dident", 5, interventions=["class=dragon"], balanced_classes=True)
    assert latents_for_config(one, 0, 0, 5)["classes"].tolist() == [2] * 5
    with pytest.raises(ConfigError, match=r"divisible by the 2 classes drawn \(teapot, hare\)"):
        build_config("causal3dident", 11, interventions=["class~weights(1,1,0,0,0,0,0)"], balanced_classes=True)


def test_shards_of_a_balanced_job_merge_to_the_unsharded_file(tmp_path: Path) -> None:
    runner = CliRunner()
    common = ["latents", "--n", "70", "--seed", "9", "--pairs", "hues", "--balanced-classes"]
    whole = tmp_path / "whole.h5"
    assert runner.invoke(main, [*common, "--out", str(whole)]).exit_code == 0
    shards = []
    for i in range(3):
        shards.append(tmp_path / f"shard{i}.h5")
        result = runner.invoke(main, [*common, "--out", str(shards[i]), "--shard", str(i), "--num-shards", "3"])
        assert result.exit_code == 0, result.output
    parts = [read(s)["classes"] for s in shards]
    assert [len(p) for p in parts] == [23, 23, 24] and len(set(map(tuple, parts))) == 3
    merged = merge_files(shards[::-1], tmp_path / "merged.h5")
    a, b = read(whole), read(merged)
    for key in ("latents", "classes", "index"):
        assert np.array_equal(a[key], b[key]), key
    assert np.bincount(b["classes"], minlength=7).tolist() == [10] * 7
    assert a["config"] == b["config"] and a["config"]["balanced_classes"] is True
    assert verify(whole) == [] and verify(merged) == []  # regenerated from the recorded config: balanced again


def test_verify_notices_classes_that_are_not_the_recorded_balanced_draw(tmp_path: Path) -> None:
    path = tmp_path / "train.h5"
    CliRunner().invoke(main, ["latents", "--n", "14", "--balanced-classes", "--out", str(path)])
    with h5py.File(path, "r+") as f:
        classes = f["classes"][...]
        f["classes"][...] = np.roll(classes, 1)  # still 2 of each, but not the recorded draw
    assert any("classes" in problem or "latents" in problem for problem in verify(path))


# -- the split a file records -----------------------------------------------------------------------------------
def test_the_split_is_recorded_from_the_option_or_the_file_name(tmp_path: Path) -> None:
    runner = CliRunner()
    for name, extra, split in (("train.h5", [], "train"), ("test.h5", [], "test"), ("test-lz4.h5", [], "test"),
                               ("mine.h5", [], "train"), ("mine2.h5", ["--split", "val"], "val"),
                               ("train2.h5", ["--split", "test"], "test")):
        result = runner.invoke(main, ["latents", "--n", "7", "--out", str(tmp_path / name), *extra])
        assert result.exit_code == 0 and f"split {split}" in result.output, result.output
        assert read(tmp_path / name)["split"] == split
        assert f"split:     {split}" in runner.invoke(main, ["info", str(tmp_path / name)]).output
    result = c3di("latents", "--n", "7", "--split", "../x", "--out", tmp_path / "bad.h5")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "a split is a simple name" in result.stderr
    assert not (tmp_path / "bad.h5").exists()


def test_shards_of_different_splits_do_not_merge(tmp_path: Path) -> None:
    runner = CliRunner()
    for i, split in enumerate(("train", "test")):
        runner.invoke(main, ["latents", "--n", "8", "--shard", str(i), "--num-shards", "2", "--split", split,
                             "--out", str(tmp_path / f"s{i}.h5")])
    result = c3di("merge", tmp_path / "s0.h5", tmp_path / "s1.h5", "--out", tmp_path / "m.h5")
    assert result.returncode == 2 and "differ in split (train vs test)" in result.stderr


# -- the original layout's export: balanced, refused, trimmed, kept -----------------------------------------------
def test_export_names_the_folder_after_the_recorded_split(tmp_path: Path) -> None:
    path = make_synthetic_dataset(tmp_path / "data" / "mytest.h5", n=14, resolution=16, pairs=(), seed=1,
                                  balanced_classes=True)
    with h5py.File(path, "r+") as f:
        assert f.attrs["split"] == "train"  # the name says nothing: train
        f.attrs["split"] = "test"
    result = c3di("export", path, tmp_path / "out", "--quiet")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["testset"]
    assert len(Causal3DIdent(tmp_path / "out", split="test")) == 14


def test_a_file_without_a_split_is_exported_under_its_stem_with_a_note(tmp_path: Path) -> None:
    path = make_synthetic_dataset(tmp_path / "old.h5", n=14, resolution=16, pairs=(), seed=1, balanced_classes=True)
    with h5py.File(path, "r+") as f:
        del f.attrs["split"]  # as files written before splits were recorded
    result = c3di("export", path, tmp_path / "out", "--quiet")
    assert result.returncode == 0 and (tmp_path / "out" / "oldset").is_dir()
    assert result.stderr.startswith("NOTE: old.h5 records no split") and "--split train" in result.stderr


def test_export_refuses_an_unbalanced_file_in_one_line_and_writes_nothing(synthetic_h5: Path, tmp_path: Path) -> None:
    result = c3di("export", synthetic_h5, tmp_path / "out")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "is not balanced over the classes (teapot 5, hare 11" in result.stderr
    assert "render with --balanced-classes" in result.stderr and "--unbalanced trim" in result.stderr
    assert not (tmp_path / "out").exists()


def test_unbalanced_trim_keeps_the_first_m_of_each_class_and_keep_keeps_all(synthetic_h5: Path,
                                                                             tmp_path: Path) -> None:
    result = c3di("export", synthetic_h5, tmp_path / "trim", "--unbalanced", "trim", "--quiet")
    assert result.returncode == 0 and "first 5 samples of each class, 35 of 64 (29 left out)" in result.stderr
    with h5py.File(synthetic_h5) as f:
        latents, classes, images = f["latents"][...], f["classes"][...], f["images"][...]
    split = OriginalSplit.open(tmp_path / "trim" / "trainset")
    assert np.bincount(split.classes).tolist() == [5] * 7
    rows = np.concatenate([np.flatnonzero(classes == c)[:5] for c in range(7)])
    assert np.array_equal(split.latents, latents[rows])
    assert np.array_equal(split.read(range(35)), images[rows])
    result = c3di("export", synthetic_h5, tmp_path / "keep", "--unbalanced", "keep", "--quiet")
    assert result.returncode == 0 and "fails with IndexError or skips samples" in result.stderr
    assert len(OriginalSplit.open(tmp_path / "keep" / "trainset").classes) == 64
    result = c3di("export", synthetic_h5, tmp_path / "csv", "--format", "csv", "--unbalanced", "trim")
    assert result.returncode == 2 and "--unbalanced is for --format original" in result.stderr


def test_teapot_only_and_missing_classes_name_the_right_fix(tmp_path: Path) -> None:
    teapots = make_synthetic_dataset(tmp_path / "teapots.h5", n=6, resolution=16, pairs=(), preset="3dident")
    with pytest.raises(ConfigError, match="holds only teapots .* --format 3dident"):
        export(teapots, tmp_path / "a")
    path = tmp_path / "two.h5"
    make_synthetic_dataset(path, n=4, resolution=16, pairs=(), seed=2)
    with h5py.File(path) as f:
        missing = 7 - len(np.unique(f["classes"][...]))
    assert missing >= 3
    with pytest.raises(ConfigError, match="has no samples of .* --unbalanced keep"):
        export(path, tmp_path / "b", unbalanced="trim")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.render
def test_render_balanced_shards_merge_to_the_unsharded_render(assets_dir: Path, tmp_path: Path) -> None:
    """A real (tiny) render job: --balanced-classes and the split reach the file, shards merge to it exactly."""
    common = ["render", "--n", "7", "--seed", "2", "--balanced-classes", "--resolution", "32", "--quality",
              "preview", "--device", "cpu", "--quiet", "--assets", str(assets_dir)]
    runner = CliRunner()
    result = runner.invoke(main, [*common, "--out", str(tmp_path / "test.h5")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for i in range(2):
        result = runner.invoke(main, [*common, "--out", str(tmp_path / "shards"), "--shard", str(i), "--num-shards",
                                      "2", "--split", "test"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    merged = merge_files(sorted((tmp_path / "shards").glob("*.h5")), tmp_path / "merged.h5")
    whole = read(tmp_path / "test.h5")
    assert whole["split"] == "test" and whole["config"]["balanced_classes"] is True
    assert np.bincount(whole["classes"], minlength=7).tolist() == [1] * 7
    with h5py.File(tmp_path / "test.h5") as a, h5py.File(merged) as b:
        assert b.attrs["split"] == "test"
        for key in ("latents", "classes", "index", "images"):
            assert np.array_equal(a[key][...], b[key][...]), key
    assert runner.invoke(main, ["render", "--n", "8", "--balanced-classes", "--out", str(tmp_path / "x.h5"),
                                "--assets", str(assets_dir)]).exit_code == 2  # refused before any rendering
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "x.h5.parts").exists()
