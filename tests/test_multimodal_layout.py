"""Multimodal3DIdent's release layout: ``c3di export --format multimodal3dident`` and ``c3di convert`` of it.

Always: the layout facts read from the generator (file names, zero padding, CSV columns and format, the text
file), the round trip HDF5 -> release -> HDF5 -> release (same bytes), a Zenodo-like folder (float64 values)
converted and exported losslessly, one-line errors. With their code: ``C3DI_MULTIMODAL3DIDENT`` (a checkout of
imantdaunhawer/Multimodal3DIdent) and ``C3DI_MULTIMODAL_CONTRASTIVE`` (imantdaunhawer/multimodal-contrastive-
learning) run their ``datasets.py`` Multimodal3DIdent class, unmodified, on our export in a subprocess (it needs
nltk 3.8.1 and pandas; the punkt tokenizer is read from the checkout's ``tokenizers/``). Their code is never
copied here.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from causal3dident import multimodal_text as mt
from causal3dident.convert import convert, export
from causal3dident.multimodal import IMAGE_COLUMNS, TEXT_COLUMNS
from causal3dident.multimodal_layout import csv_text, read_csv, write_text
from causal3dident.multimodal_store import read_tables
from causal3dident.testing import make_synthetic_dataset

C3DI = str(Path(sys.executable).with_name("c3di"))


def _c3di(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([C3DI, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("mm") / "train.h5", n=12, resolution=16, pairs=(),
                                  preset="multimodal3dident", seed=3)


def test_export_writes_the_release_layout(dataset: Path, tmp_path: Path) -> None:
    root = export(dataset, tmp_path / "m3di", fmt="multimodal3dident")
    assert root == tmp_path / "m3di" / "train"
    assert sorted(p.name for p in root.iterdir()) == ["images", "latents_image.csv", "latents_text.csv", "text"]
    digits = math.ceil(math.log10(12))  # generate_images.py: str(ix).zfill(ceil(log10(num_samples)))
    assert sorted(p.name for p in (root / "images").iterdir()) == [f"{str(i).zfill(digits)}.png" for i in range(12)]
    raw = (root / "text" / "text_raw.txt").read_text()
    assert not raw.endswith("\n") and len(raw.split("\n")) == 12  # generate_text.py: no newline after the last
    image_csv, text_csv = (root / "latents_image.csv").read_text(), (root / "latents_text.csv").read_text()
    assert image_csv.splitlines()[0] == ",".join(IMAGE_COLUMNS) and text_csv.splitlines()[0] == ",".join(TEXT_COLUMNS)
    image, text = read_csv(root / "latents_image.csv", IMAGE_COLUMNS), read_csv(root / "latents_text.csv", TEXT_COLUMNS)
    with h5py.File(dataset) as f:
        pixels, latents = f["images"][...], f["latents"][...]
        ours_image, ours_text, sentences = read_tables(f)
    assert raw.split("\n") == sentences
    for i, sentence in enumerate(sentences):  # index-aligned: sentence, both tables and image i
        parsed = mt.parse_sentence(sentence)
        assert all(parsed[k] == text[k][i] for k in parsed)
        assert text["object_color_index"][i] == mt.color_index([text["object_color_name"][i]])[0]
        assert np.array_equal(np.asarray(Image.open(root / "images" / f"{i:02d}.png")), pixels[i])
    for k in IMAGE_COLUMNS:
        assert np.array_equal(image[k], ours_image[k]), k
    assert np.array_equal(image["object_xpos"], latents[:, 0] + 1) and image["object_zpos"].tolist() == [0.0] * 12
    np.testing.assert_array_equal(image["object_color"], (latents[:, 7].astype(np.float64) + 1) / 2)


def test_cli_round_trip_is_lossless(dataset: Path, tmp_path: Path) -> None:
    first = _c3di("export", str(dataset), str(tmp_path / "a"), "--format", "multimodal3dident", "--quiet")
    assert first.returncode == 0, first.stderr
    back = tmp_path / "back.h5"
    assert _c3di("convert", str(tmp_path / "a"), str(back), "--quiet").returncode == 0
    assert "12 sentences (Multimodal3DIdent; converted from the release folder train/" in _c3di("info", str(back)).stdout
    assert "12 sentences (Multimodal3DIdent; drawn from the seed)" in _c3di("info", str(dataset)).stdout
    again = _c3di("export", str(back), str(tmp_path / "b"), "--format", "multimodal3dident", "--quiet")
    assert again.returncode == 0, again.stderr
    for name in ("latents_image.csv", "latents_text.csv", "text/text_raw.txt"):
        assert (tmp_path / "a/train" / name).read_bytes() == (tmp_path / "b/train" / name).read_bytes(), name
    with h5py.File(dataset) as f, h5py.File(back) as g:
        for key in ("latents", "classes", "images"):
            assert np.array_equal(f[key][...], g[key][...]), key
        assert g.attrs["split"] == "train"
        a, b = read_tables(f), read_tables(g)
        assert a[2] == b[2] and all(np.array_equal(a[1][k], b[1][k]) for k in a[1])
        assert json.loads(g["multimodal"].attrs["provenance"])["source"].startswith("converted from")


def _zenodo_like_split(folder: Path, n: int = 9, seed: int = 0) -> None:
    """A split as the generator writes it: float64 values in [0, 1] (not float32 ones), its own colour names."""
    rng = np.random.default_rng(seed)
    image = {"object_shape": rng.integers(0, 7, n), "object_xpos": rng.integers(0, 3, n),
             "object_ypos": rng.integers(0, 3, n), "object_zpos": np.zeros(n),
             **{c: rng.random(n) for c in IMAGE_COLUMNS[4:]}}
    palette = rng.integers(0, 3, n)
    names = mt.nearest_color_names(image["object_color"], palette)
    text = {**{c: image[c] for c in TEXT_COLUMNS[:4]}, "object_color_name": names,
            "object_color_index": mt.color_index(names), "text_phrasing": rng.integers(0, 5, n)}
    (folder / "images").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / "images" / f"{i}.png")
    write_text(folder / "text" / "text_raw.txt", mt.sentences(text))
    (folder / "latents_image.csv").write_text(csv_text(image, IMAGE_COLUMNS))
    (folder / "latents_text.csv").write_text(csv_text(text, TEXT_COLUMNS))


def test_a_release_split_converts_and_exports_back_byte_for_byte(tmp_path: Path) -> None:
    _zenodo_like_split(tmp_path / "m3di" / "val")
    out = convert(tmp_path / "m3di", tmp_path / "val.h5")
    with h5py.File(out) as f:
        assert f.attrs["split"] == "val" and f["images"].shape == (9, 8, 8, 3)
        assert json.loads(f.attrs["config"])["scene"] == "multimodal3dident"
        assert sorted(f["multimodal"]) == ["latents_image", "latents_text", "text"]  # no pairs/: no /multimodal/pairs
    root = export(out, tmp_path / "again", fmt="multimodal3dident")
    assert root.name == "val"
    for name in ("latents_image.csv", "latents_text.csv", "text/text_raw.txt", *(f"images/{i}.png" for i in range(9))):
        ours, theirs = root / name, tmp_path / "m3di" / "val" / name
        if name.endswith(".png"):
            assert np.array_equal(np.asarray(Image.open(ours)), np.asarray(Image.open(theirs)))
        else:
            assert ours.read_bytes() == theirs.read_bytes(), name


def test_bad_release_folders_and_files_are_one_line(dataset: Path, tmp_path: Path) -> None:
    _zenodo_like_split(tmp_path / "m3di" / "train")
    lines = (tmp_path / "m3di/train/text/text_raw.txt").read_text().split("\n")
    write_text(tmp_path / "m3di/train/text/text_raw.txt", lines[:-1])
    result = _c3di("convert", str(tmp_path / "m3di"), str(tmp_path / "x.h5"), "--quiet")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "index-aligned" in result.stderr and not (tmp_path / "x.h5").exists()
    _zenodo_like_split(tmp_path / "m3di" / "val")
    result = _c3di("convert", str(tmp_path / "m3di"), str(tmp_path / "x.h5"), "--quiet")
    assert result.returncode == 2 and "several splits (train, val); choose one with --split" in result.stderr
    assert _c3di("convert", str(tmp_path / "m3di"), str(tmp_path / "x.h5"), "--split", "val", "--quiet").returncode == 0
    plain = make_synthetic_dataset(tmp_path / "plain.h5", n=7, resolution=16, pairs=(), seed=1)
    result = _c3di("export", str(plain), str(tmp_path / "out"), "--format", "multimodal3dident", "--quiet")
    assert result.returncode == 2 and "--preset multimodal3dident" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out" / "train").exists()


THEIR_DRIVER = """
import json, sys
import numpy as np
from datasets import Multimodal3DIdent

root, expected = sys.argv[1], np.load(sys.argv[2], allow_pickle=True)
ds = Multimodal3DIdent(root, mode="train")
assert len(ds) == len(expected["images"]), len(ds)
for i in range(len(ds)):
    s = ds[i]
    assert np.array_equal(np.asarray(s["image"]), expected["images"][i]), i
    assert ds.text_in_sentences[i] == expected["sentences"][i], (i, ds.text_in_sentences[i])
    words = [ds.i2w[k] for k in s["text"].argmax(1).tolist()]
    assert words[:len(ds.text_in_words[i]) + 1] == ds.text_in_words[i] + ["{eos}"], words
    for table in ("image", "text"):
        for key, value in s["z_" + table].items():
            want = expected[table + "_" + key][i]
            if isinstance(want, float):  # pandas' default (fast) float parser keeps about 16 decimals, not all 17
                assert abs(value - want) <= 1e-15, (i, key, value, want)
            else:
                assert value == want, (i, key, value, want)
print(json.dumps({"items": len(ds), "vocab": ds.vocab_size}))
"""


@pytest.mark.parametrize("env_var", ["C3DI_MULTIMODAL3DIDENT", "C3DI_MULTIMODAL_CONTRASTIVE"])
def test_their_loader_reads_our_export_sample_for_sample(env_var: str, dataset: Path, tmp_path: Path) -> None:
    checkout = os.environ.get(env_var)
    if not checkout or not Path(checkout, "datasets.py").is_file():
        pytest.skip(f"set {env_var} to a checkout of the original code to run its loader on our export")
    for module in ("nltk", "pandas", "torchvision"):
        pytest.importorskip(module, reason="their datasets.py imports nltk (3.8.1), pandas and torchvision")
    export(dataset, tmp_path / "m3di", fmt="multimodal3dident")
    with h5py.File(dataset) as f:
        image, text, sentences = read_tables(f)
        expected = {"images": f["images"][...], "sentences": np.array(sentences, dtype=object),
                    **{f"image_{k}": v for k, v in image.items()}, **{f"text_{k}": v for k, v in text.items()}}
    np.savez(tmp_path / "expected.npz", **expected)
    env = dict(os.environ, PYTHONPATH=checkout, NLTK_DATA=checkout)  # punkt ships in the checkout's tokenizers/
    result = subprocess.run([sys.executable, "-c", THEIR_DRIVER, str(tmp_path / "m3di"), str(tmp_path / "expected.npz")],
                            cwd=checkout, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["items"] == 12


def test_verify_regenerates_the_text_and_finds_an_edit(dataset: Path, tmp_path: Path) -> None:
    assert _c3di("verify", str(dataset)).returncode == 0
    edited = tmp_path / "edited.h5"
    shutil.copy(dataset, edited)
    with h5py.File(edited, "r+") as f:
        f["multimodal/latents_text/text_phrasing"][0] = (f["multimodal/latents_text/text_phrasing"][0] + 1) % 5
    result = _c3di("verify", str(edited))
    assert result.returncode == 1 and "/multimodal" in result.stderr
