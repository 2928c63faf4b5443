"""Multimodal3DIdent pairs stored in the file: text-only partners (``--pairs phrasing`` / ``palette``) and the text of
image pair views, as ``c3di latents`` / ``render`` write them, the dataset reads them and ``c3di export`` puts
them beside the release layout."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from causal3dident import Multimodal3DIdent
from causal3dident import multimodal_text as mt
from causal3dident.cli import main
from causal3dident.convert import export
from causal3dident.generate import build_config, merge_files, write_latents_file
from causal3dident.multimodal import image_latents
from causal3dident.multimodal_store import pair_text_names, read_pair_text, read_tables
from causal3dident.testing import make_synthetic_dataset

C3DI = str(Path(sys.executable).with_name("c3di"))
PAIRS = ("phrasing", "palette", "positions", "rotations", "hue_obj")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path]:
    """The same 24 samples (seed 5) with every kind of pair stored, and with none."""
    root = tmp_path_factory.mktemp("mmpairs")
    paired = make_synthetic_dataset(root / "paired" / "val.h5", n=24, resolution=16, pairs=PAIRS,
                                    preset="multimodal3dident", seed=5)
    plain = make_synthetic_dataset(root / "plain" / "val.h5", n=24, resolution=16, pairs=(),
                                   preset="multimodal3dident", seed=5)
    return paired, plain


def test_the_dataset_reads_the_stored_partner_and_it_is_what_it_draws(files, tmp_path):
    paired, plain = files
    with h5py.File(paired) as f:
        assert pair_text_names(f) == ["hue_obj", "palette", "phrasing", "positions"]  # rotations: text unchanged
        assert json.loads(f.attrs["config"])["text_pairs"] == ["phrasing", "palette"]
        stored = {c: read_pair_text(f, c)[1] for c in mt.PAIR_CHANGES}
    for change in mt.PAIR_CHANGES:
        drawn = Multimodal3DIdent(plain, split="val", text_pair=change)  # nothing stored: drawn from the seed
        read = Multimodal3DIdent(paired, split="val", text_pair=change)
        assert drawn.pair_sentences == read.pair_sentences == stored[change]
        for i in range(len(read)):
            a, b = read[i], drawn[i]
            assert np.array_equal(np.asarray(a[0]), np.asarray(b[0])) and a[1:3] == b[1:3]
            assert all(np.array_equal(x, y) for x, y in zip(a[3], b[3]))
    # the dataset reads the stored sentences (does not draw them again): a changed copy shows through
    copy = tmp_path / "val.h5"
    shutil.copy(paired, copy)
    with h5py.File(copy, "r+") as f:
        f["multimodal/pairs/phrasing/text"][0] = "changed"
    assert Multimodal3DIdent(copy, split="val", text_pair="phrasing")[0][2] == "changed"


def test_text_pairs_change_only_their_factor_and_parse_back(files):
    paired, _ = files
    with h5py.File(paired) as f:
        image, anchor, sentences = read_tables(f)
        partners = {c: read_pair_text(f, c) for c in mt.PAIR_CHANGES}
    for change, (text, lines) in partners.items():
        assert lines == mt.sentences(text)
        for i, line in enumerate(lines):
            parsed, before = mt.parse_sentence(line), mt.parse_sentence(sentences[i])
            assert parsed == {k: text[k][i] for k in parsed}  # the sentence says its latents
            differs = {k for k in parsed if parsed[k] != before[k]}
            if change == "phrasing":
                assert differs == {"text_phrasing"}
            else:  # another palette, so another name (tab: and xkcd: prefixes keep the three apart)
                assert text["palette"][i] != anchor["palette"][i] and differs == {"object_color_name"}
        unchanged = [c for c in ("object_shape", "object_xpos", "object_ypos", "object_zpos",
                                 "text_phrasing" if change == "palette" else "object_color_name")]
        assert all(np.array_equal(text[c], anchor[c]) for c in unchanged)
        assert np.array_equal(text["object_color_name"], mt.nearest_color_names(image["object_color"], text["palette"]))
        assert np.array_equal(text["object_color_index"], mt.color_index(text["object_color_name"]))


def test_image_pair_views_get_the_text_of_what_they_show(files):
    paired, _ = files
    with h5py.File(paired) as f:
        _, anchor, sentences = read_tables(f)
        classes = f["classes"][...]
        for name in ("positions", "hue_obj"):
            view = image_latents(f[f"pairs/{name}/latents"][...], classes)
            text, lines = read_pair_text(f, name)
            assert f[f"multimodal/pairs/{name}"].attrs["kind"] == "image"
            for i, line in enumerate(lines):
                parsed = mt.parse_sentence(line)
                assert (parsed["object_xpos"], parsed["object_ypos"]) == (view["object_xpos"][i], view["object_ypos"][i])
                assert parsed["text_phrasing"] == anchor["text_phrasing"][i] and text["palette"][i] == anchor["palette"][i]
            assert np.array_equal(text["object_color_name"],
                                  mt.nearest_color_names(view["object_color"], anchor["palette"]))
            changed = sum(a != b for a, b in zip(lines, sentences))
            assert changed > 0  # the views move or recolour the object, and their text says so
        assert np.array_equal(f["multimodal/pairs/positions/latents_text/object_color_name"][...],
                              f["multimodal/latents_text/object_color_name"][...])  # positions keep the colour


def test_pairs_are_seeded_deterministic_and_shards_merge_to_the_whole(tmp_path):
    config = build_config("multimodal3dident", 30, pairs="phrasing,palette,positions")
    whole = write_latents_file(tmp_path / "whole.h5", config, seed=9)
    again = write_latents_file(tmp_path / "again.h5", config, seed=9)
    other = write_latents_file(tmp_path / "other.h5", config, seed=10)
    shards = [write_latents_file(tmp_path / f"s{i}.h5", config, seed=9, shard=i, num_shards=3) for i in range(3)]
    merged = merge_files(shards[::-1], tmp_path / "merged.h5")
    with h5py.File(whole) as a, h5py.File(again) as b, h5py.File(other) as c, h5py.File(merged) as m:
        for name in ("phrasing", "palette", "positions"):
            lines = read_pair_text(a, name)[1]
            assert lines == read_pair_text(b, name)[1] == read_pair_text(m, name)[1]
            assert lines != read_pair_text(c, name)[1]
    assert CliRunner().invoke(main, ["verify", str(merged)]).exit_code == 0
    with h5py.File(merged, "r+") as f:  # as files of earlier versions: image pair views without their text
        del f["multimodal/pairs/positions"]
    assert CliRunner().invoke(main, ["verify", str(merged)]).exit_code == 0
    with h5py.File(whole, "r+") as f:  # a tampered partner is found by verify
        f["multimodal/pairs/palette/text"][3] = "A \"red\" cow is at the top-left of the image."
    result = CliRunner().invoke(main, ["verify", str(whole)])
    assert result.exit_code != 0 and "/multimodal/pairs/palette" in result.output


@pytest.mark.parametrize("args, message", [
    (["--preset", "multimodal3dident", "--pairs", "phrase"], "phrasing, palette"),
    (["--preset", "multimodal3dident", "--pairs", "phrasing+rotations"], "--pairs phrasing,rotations"),
    (["--pairs", "phrasing"], "use --preset multimodal3dident"),
])
def test_bad_pairs_are_one_line_exit_2_and_write_nothing(tmp_path, args, message):
    out = tmp_path / "x.h5"
    result = subprocess.run([C3DI, "latents", "--n", "8", "--out", str(out), *args], capture_output=True, text=True)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr and not out.exists()


def test_export_keeps_the_release_layout_and_adds_the_pairs_beside_it(files, tmp_path):
    paired, plain = files
    export(paired, tmp_path / "a", fmt="multimodal3dident")
    export(plain, tmp_path / "b", fmt="multimodal3dident")
    a, b = tmp_path / "a" / "val", tmp_path / "b" / "val"
    for name in ("text/text_raw.txt", "latents_image.csv", "latents_text.csv", "images/00.png", "images/23.png"):
        assert (a / name).read_bytes() == (b / name).read_bytes()  # the release's files are as without pairs
    assert sorted(p.name for p in a.iterdir()) == ["images", "latents_image.csv", "latents_text.csv", "pairs", "text"]
    with h5py.File(paired) as f:
        for name in pair_text_names(f):
            assert (a / "pairs" / name / "text_raw.txt").read_text().split("\n") == read_pair_text(f, name)[1]
    first = (a / "pairs/phrasing/latents_text.csv").read_text().split("\n")[0]
    assert first == "object_shape,object_xpos,object_ypos,object_zpos,object_color_name,object_color_index,text_phrasing"
    release = Multimodal3DIdent(tmp_path / "a", split="val")
    assert release.sentences == Multimodal3DIdent(plain, split="val").sentences


def _raw(ds: h5py.Dataset) -> bytes | list[bytes]:
    """A dataset's values byte for byte (strings as their stored UTF-8 bytes)."""
    return ds[...].tolist() if ds.dtype == object else ds[...].tobytes()


def _files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_convert_reads_the_pairs_back_and_the_round_trip_is_lossless(files, tmp_path):
    paired, _ = files
    run = lambda *args: subprocess.run([C3DI, *args, "--quiet"], capture_output=True, text=True, timeout=300)
    assert run("export", str(paired), str(tmp_path / "a"), "--format", "multimodal3dident").returncode == 0
    back = tmp_path / "back.h5"
    result = run("convert", str(tmp_path / "a"), str(back))
    assert result.returncode == 0, result.stderr
    assert run("export", str(back), str(tmp_path / "b"), "--format", "multimodal3dident").returncode == 0
    first, again = _files_under(tmp_path / "a" / "val"), _files_under(tmp_path / "b" / "val")
    assert sorted(first) == sorted(again) and "pairs/palette/latents_text.csv" in first
    assert all(first[name] == again[name] for name in first), [n for n in first if first[n] != again[n]]
    with h5py.File(paired) as f, h5py.File(back) as g:
        assert pair_text_names(g) == pair_text_names(f) == ["hue_obj", "palette", "phrasing", "positions"]
        for name in pair_text_names(f):
            a, b = f[f"multimodal/pairs/{name}"], g[f"multimodal/pairs/{name}"]
            assert a.attrs["kind"] == b.attrs["kind"]
            for key in ("text", *(f"latents_text/{c}" for c in a["latents_text"])):
                assert a[key].dtype == b[key].dtype and _raw(a[key]) == _raw(b[key]), (name, key)
            assert json.loads(b.attrs["provenance"])["source"].startswith(f"converted from val/pairs/{name}/")
    assert Multimodal3DIdent(back, split="val", text_pair="palette").pair_sentences == \
        Multimodal3DIdent(paired, split="val", text_pair="palette").pair_sentences
    # the release folder itself gives the exported partners too (its pairs/ read, not drawn from seed 0)
    exported = tmp_path / "a" / "val" / "pairs" / "palette" / "text_raw.txt"
    lines = exported.read_text().splitlines()
    exported.write_text("\n".join(["edited partner", *lines[1:]]) + "\n")
    release = Multimodal3DIdent(tmp_path / "a", split="val", text_pair="palette")
    assert release.pair_sentences[1:] == lines[1:] and release[0][2] == "edited partner"
    result = subprocess.run([C3DI, "verify", str(back)], capture_output=True, text=True)
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr
    assert "cannot be regenerated" in result.stderr and "partner text of hue_obj, palette, phrasing" in result.stderr
    with h5py.File(back, "r+") as f:  # what verify can check of a converted release: /latents against its table
        f["multimodal/latents_image/object_xpos"][0] = (f["multimodal/latents_image/object_xpos"][0] + 1) % 3
    result = CliRunner().invoke(main, ["verify", str(back)])
    assert result.exit_code == 1 and "/multimodal/latents_image" in result.output


def test_convert_refuses_a_broken_pairs_folder_in_one_line(files, tmp_path):
    paired, _ = files
    export(paired, tmp_path / "a", fmt="multimodal3dident")
    lines = (tmp_path / "a/val/pairs/phrasing/text_raw.txt").read_text().split("\n")
    (tmp_path / "a/val/pairs/phrasing/text_raw.txt").write_text("\n".join(lines[:-1]))
    out = tmp_path / "x.h5"
    result = subprocess.run([C3DI, "convert", str(tmp_path / "a"), str(out), "--quiet"], capture_output=True, text=True)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "pairs/phrasing" in result.stderr and "index-aligned" in result.stderr and not out.exists()


@pytest.mark.render
def test_c3di_render_keeps_the_stored_pairs(assets_dir: Path, tmp_path: Path) -> None:
    latents = tmp_path / "latents.h5"
    result = subprocess.run([C3DI, "latents", "--preset", "multimodal3dident", "--n", "3", "--pairs",
                             "phrasing,positions", "--out", str(latents)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "val.h5"
    result = subprocess.run([C3DI, "render", str(latents), "--pairs", "phrasing,positions", "--resolution", "32",
                             "--quality", "preview", "--set", "samples=2", "--assets", str(assets_dir),
                             "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    with h5py.File(latents) as a, h5py.File(out) as b:
        assert pair_text_names(b) == pair_text_names(a) == ["phrasing", "positions"]
        for name in ("phrasing", "positions"):
            assert read_pair_text(a, name)[1] == read_pair_text(b, name)[1]
        assert b["pairs/positions/images"].shape == (3, 32, 32, 3)
    assert subprocess.run([C3DI, "verify", str(out)], capture_output=True).returncode == 0
