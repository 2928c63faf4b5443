"""Data cards: factors.yaml from the preset, per-file facts, and Croissant that mlcroissant validates and loads."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from causal3dident.cards import factors_yaml, write_cards
from causal3dident.cli import main
from causal3dident.dataset_facts import factor_table, facts_from_file, meshes, sha256_of
from causal3dident.generate import build_config, write_latents_file
from causal3dident.latents import CLASS_NAMES, LATENT_NAMES
from causal3dident.scm import SCM, Intervention, load_preset, load_preset_dict

REPO = Path(__file__).resolve().parents[1]
CARDS = REPO / "data_cards"


def export_csv(h5: Path, root: Path, split: str) -> int:
    """The export layout croissant.json assumes: images/<split>/<index:06d>.png and <split>.csv."""
    with h5py.File(h5) as f:
        images = f["images"][...] if "images" in f else None
        z, c, index = f["latents"][...], f["classes"][...], f["index"][...]
    with open(root / f"{split}.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["index", "file", "class", "class_name", *LATENT_NAMES])
        for i, k in enumerate(index):
            rel = f"images/{split}/{int(k):06d}.png"
            if images is not None:
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(images[i]).save(root / rel)
            writer.writerow([int(k), rel, int(c[i]), CLASS_NAMES[c[i]], *(repr(float(v)) for v in z[i])])
    return len(index)


def load_records(jsonld: Path, record_set: str = "samples") -> list[dict]:
    mlc = pytest.importorskip("mlcroissant")
    dataset = mlc.Dataset(jsonld=str(jsonld))  # raises ValidationError on any error
    assert not dataset.metadata.ctx.issues.warnings, dataset.metadata.ctx.issues.report()
    return list(dataset.records(record_set))


def text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- factors ---------------------------------------------------------------------------------------
def test_committed_factors_yaml_is_a_fresh_generation_from_the_preset():
    assert (CARDS / "factors.yaml").read_text(encoding="utf-8") == factors_yaml(load_preset("causal3dident"))


def test_factor_table_follows_an_edited_preset_and_interventions():
    config = load_preset_dict("causal3dident")
    config["latents"]["pos_z"] = {"distribution": "truncnorm", "sigma": 0.2, "parents": ["hue_bg"],
                                  "mean": "0.5 * hue_bg", "low": -0.5, "high": 1.0}
    rows = {r["name"]: r for r in factor_table(SCM.from_dict(config))}
    assert rows["pos_z"]["parents"] == ["hue_bg"] and rows["pos_z"]["range"] == [-0.5, 1.0]
    assert rows["pos_z"]["scene_range"] == [-1.5, 3.0]
    assert rows["pos_z"]["structural_equation"] == "pos_z := TruncNormal(mean = 0.5 * hue_bg, sigma = 0.2, [-0.5, 1])"
    assert rows["hue_obj"]["parents"] == ["class", "hue_bg", "hue_spot"]
    assert rows["hue_obj"]["mean"]["dragon"] == "-(hue_bg + hue_spot) / 2"
    assert [r["index"] for r in rows.values()] == [None, *range(10)]
    assert {r["type"] for r in rows.values()} == {"discrete", "continuous"}  # angles and hues span half a turn
    intervened = load_preset("causal3dident").intervene([Intervention.parse("do(pos_x=0.25)")])
    assert {r["name"]: r for r in factor_table(intervened)}["pos_x"]["structural_equation"] == "pos_x := 0.25"


def test_card_meshes_match_the_asset_manifest(assets_dir):
    manifest = json.loads((assets_dir / "manifest.json").read_text())["meshes"]
    fields = ("class_index", "name", "origin", "license", "url", "sha256")
    assert [{k: m[k] for k in fields} for m in manifest] == meshes()
    assert [m["name"] for m in meshes()] == list(CLASS_NAMES)


# -- per-file cards --------------------------------------------------------------------------------
def test_card_of_a_file_states_its_size_checksum_counts_and_config(synthetic_h5, tmp_path):
    h5 = tmp_path / "train.h5"
    shutil.copy(synthetic_h5, h5)
    facts = facts_from_file(h5)
    written = write_cards(facts, tmp_path, figures=False)
    assert sorted(p.name for p in written) == ["README.md", "croissant.json", "datasheet.md", "factors.yaml"]
    readme = (tmp_path / "README.md").read_text()
    header = yaml.safe_load(readme.split("---\n")[1])
    assert header["dataset_info"]["splits"] == [{"name": "train", "num_examples": 64, "num_bytes": h5.stat().st_size}]
    assert header["size_categories"] == ["n<1K"] and header["annotations_creators"] == ["machine-generated"]
    assert [f["name"] for f in header["dataset_info"]["features"]] == ["image", "index", "class", "class_name",
                                                                      *LATENT_NAMES]
    assert sha256_of(h5) in readme and "seed 3" in readme and "hues (independent, sigma 1)" in readme
    counts = np.bincount(h5py.File(h5)["classes"][...], minlength=7)
    assert "| samples | " + " | ".join(f"{k:,}" for k in counts) + " |" in readme
    datasheet = (tmp_path / "datasheet.md").read_text()
    assert [line for line in datasheet.splitlines() if line.startswith("## ")] == [
        "## 1. Motivation", "## 2. Composition", "## 3. Collection process", "## 4. Preprocessing, cleaning, labelling",
        "## 5. Uses", "## 6. Distribution", "## 7. Maintenance"]
    distribution = json.loads((tmp_path / "croissant.json").read_text())["distribution"]
    hdf5 = next(d for d in distribution if d["@id"] == "hdf5-train")
    assert hdf5["sha256"] == sha256_of(h5) and hdf5["contentSize"] == f"{h5.stat().st_size} B"


def test_croissant_of_a_file_validates_and_loads_the_export(synthetic_h5, tmp_path):
    h5 = tmp_path / "train.h5"
    shutil.copy(synthetic_h5, h5)
    n = export_csv(h5, tmp_path, "train")
    write_cards(facts_from_file(h5), tmp_path, figures=False)
    records = load_records(tmp_path / "croissant.json")
    assert len(records) == n
    with h5py.File(h5) as f:
        images, z, c = f["images"][...], f["latents"][...], f["classes"][...]
    for r in records:
        i = int(r["samples/index"])
        assert text(r["samples/file"]) == f"images/train/{i:06d}.png" and text(r["samples/split"]) == "train"
        assert np.array_equal(np.asarray(r["samples/image"]), images[i])
        assert r["samples/class"] == c[i] and text(r["samples/class_name"]) == CLASS_NAMES[c[i]]
        assert np.allclose([r[f"samples/{k}"] for k in LATENT_NAMES], z[i], atol=1e-7)
    names = load_records(tmp_path / "croissant.json", "class_names")
    assert [text(r["class_names/name"]) for r in names] == list(CLASS_NAMES)


def test_card_cli_for_a_latents_only_file_and_its_errors(tmp_path):
    config = build_config("causal3dident", 40, interventions=["hue_bg~uniform(0.5,1)"])
    h5 = write_latents_file(tmp_path / "ood.h5", config, seed=5)
    runner = CliRunner()
    result = runner.invoke(main, ["card", str(h5), "--out", str(tmp_path), "--no-figures"])
    assert result.exit_code == 0, result.output
    readme = (tmp_path / "README.md").read_text()
    assert "not rendered yet" in readme and "hue_bg~uniform(0.5,1)" in readme
    assert "hue_bg := Uniform[0.5, 1]" in (tmp_path / "factors.yaml").read_text()
    export_csv(h5, tmp_path, "ood")
    records = load_records(tmp_path / "croissant.json")
    assert len(records) == 40 and all(text(r["samples/split"]) == "ood" and r["samples/hue_bg"] >= 0.5 for r in records)
    again = runner.invoke(main, ["card", str(h5), "--out", str(tmp_path), "--no-figures"])
    assert again.exit_code == 2 and "--overwrite" in again.output
    neither = runner.invoke(main, ["card", "--out", str(tmp_path)])
    assert neither.exit_code == 2 and "--preset" in neither.output


# -- the committed cards ---------------------------------------------------------------------------
def test_committed_cards_describe_the_canonical_release():
    header = yaml.safe_load((CARDS / "README.md").read_text(encoding="utf-8").split("---\n")[1])
    assert header["dataset_info"]["splits"] == [{"name": "train", "num_examples": 250000},
                                               {"name": "test", "num_examples": 25000}]
    assert header["pretty_name"] == "Causal3DIdent" and header["size_categories"] == ["100K<n<1M"]
    for name in ("datasheet.md", "causal_graph.png", "latent_histograms.png", "dependence.png"):
        assert (CARDS / name).is_file(), name
    doc = json.loads((CARDS / "croissant.json").read_text())
    assert {"rai:dataCollection", "rai:dataBiases", "rai:dataLimitations", "rai:personalSensitiveInformation",
            "rai:dataUseCases"} <= set(doc)


def test_committed_croissant_loads_a_two_split_export(synthetic_h5, tmp_path):
    shutil.copy(CARDS / "croissant.json", tmp_path)
    for split, seed in (("train", 1), ("test", 2)):
        config = build_config("causal3dident", 6 if split == "train" else 4)
        h5 = write_latents_file(tmp_path / f"{split}.h5", config, seed=seed)
        with h5py.File(h5, "r+") as f:
            f["images"] = h5py.File(synthetic_h5)["images"][: len(f["latents"])]
        export_csv(h5, tmp_path, split)
    records = load_records(tmp_path / "croissant.json")
    assert sorted(text(r["samples/split"]) for r in records) == ["test"] * 4 + ["train"] * 6
    assert all(np.asarray(r["samples/image"]).shape == (32, 32, 3) for r in records)


@pytest.mark.parametrize("table", ["csv", "parquet"])
def test_croissant_loads_the_real_export(synthetic_h5, tmp_path, table):
    """`c3di export --format csv|parquet` writes the layout that `c3di card --table` describes, values exact."""
    if table == "parquet":
        pytest.importorskip("pyarrow.parquet")
    h5 = tmp_path / "train.h5"
    shutil.copy(synthetic_h5, h5)
    out = tmp_path / "export"
    for command in (["export", str(h5), str(out), "--format", table],
                    ["card", str(h5), "--out", str(out), "--no-figures", "--table", table]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 0, result.output
    distribution = json.loads((out / "croissant.json").read_text())["distribution"]
    formats = {d["@id"]: d["encodingFormat"] for d in distribution}
    assert formats[f"{table}-files"] == {"csv": "text/csv", "parquet": "application/x-parquet"}[table]
    assert {"csv": "parquet-files", "parquet": "csv-files"}[table] not in formats  # the other table's set
    records = load_records(out / "croissant.json")
    with h5py.File(h5) as f:
        images, z, c = f["images"][...], f["latents"][...], f["classes"][...]
    assert sorted(int(r["samples/index"]) for r in records) == list(range(64))
    for r in records:
        i = int(r["samples/index"])
        assert text(r["samples/split"]) == "train" and r["samples/class"] == c[i]
        assert np.array_equal(np.asarray(r["samples/image"]), images[i])
        assert np.array_equal(np.array([r[f"samples/{k}"] for k in LATENT_NAMES], dtype=np.float32), z[i])


def test_card_shows_the_leaderboard_heatmap(synthetic_h5, tmp_path):
    from test_bench_leaderboard import rows_like_the_paper

    from causal3dident.benchmarks.leaderboard import write_leaderboard
    from causal3dident.benchmarks.runner import write_results

    (tmp_path / "runs").mkdir()
    write_results(tmp_path / "runs" / "results.csv", rows_like_the_paper({0: 0.0}))
    board, pictures = write_leaderboard([tmp_path / "runs"], tmp_path / "board" / "LEADERBOARD.md")
    grid = tmp_path / "traversals.png"
    Image.new("RGB", (8, 8)).save(grid)
    written = write_cards(facts_from_file(synthetic_h5), tmp_path / "card", figures=False, leaderboard=board,
                          extra_pictures=[grid])
    assert (tmp_path / "card" / "traversals.png").read_bytes() == grid.read_bytes()
    copied = [p for p in written if p.name.startswith("leaderboard_")]
    assert [p.name for p in copied] == ["leaderboard" + p.name[len("LEADERBOARD"):] for p in pictures]
    assert copied[0].read_bytes() == pictures[0].read_bytes()
    text = (tmp_path / "card" / "README.md").read_text()
    assert f"![Benchmark heatmap: {copied[0].name}]({copied[0].name})" in text
    assert "![Latent traversals: one latent varied" in text
    missing = CliRunner().invoke(main, ["card", str(synthetic_h5), "--out", str(tmp_path / "c2"), "--no-figures",
                                        "--leaderboard", str(tmp_path / "nope.md")])
    assert missing.exit_code == 2 and "no such file" in missing.output
