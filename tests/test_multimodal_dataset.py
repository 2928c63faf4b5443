"""``Multimodal3DIdent``: the same items from our HDF5 and from the release layout; the vocabulary; loaders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from causal3dident import ConfigError, DatasetFileError, Multimodal3DIdent
from causal3dident import multimodal_text as mt
from causal3dident import multimodal_vocab as vocab
from causal3dident.convert import export
from causal3dident.testing import make_synthetic_dataset


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("mmds")
    h5 = make_synthetic_dataset(root / "val.h5", n=20, resolution=16, pairs=(), preset="multimodal3dident", seed=4)
    export(h5, root / "m3di", fmt="multimodal3dident")
    return h5, root / "m3di"


def test_hdf5_and_release_layout_give_the_same_items(files):
    h5, release = files
    a = Multimodal3DIdent(h5.parent, split="val", target_type=["z_image", "z_text", "latents", "class", "color_name"])
    b = Multimodal3DIdent(release, split="val", target_type=["z_image", "z_text", "latents", "class", "color_name"])
    assert len(a) == len(b) == 20
    for i in range(20):
        (ia, ta, za), (ib, tb, zb) = a[i], b[i]
        assert np.array_equal(np.asarray(ia), np.asarray(ib)) and ta == tb and isinstance(ta, str)
        parsed = mt.parse_sentence(ta)
        assert za[3] == zb[3] == parsed["object_shape"] and za[4] == parsed["object_color_name"] == zb[4]
        assert za[0].shape == (11,) and za[1].shape == (6,) and za[2].dtype == np.float32
        for x, y in zip(za[:3], zb[:3]):
            assert np.array_equal(x, y)
        assert za[1].tolist()[:3] == [parsed["object_shape"], parsed["object_xpos"], parsed["object_ypos"]]
        assert za[1][4] == mt.color_index([parsed["object_color_name"]])[0] and za[1][5] == parsed["text_phrasing"]
    assert sorted(p.name for p in (release / "val").iterdir()) == ["images", "latents_image.csv", "latents_text.csv",
                                                                  "text"]  # no vocab.json written


def test_the_vocabulary_is_fixed_and_encodes_every_sentence():
    words = vocab.words()
    assert len(set(words)) == len(words) and words[:3] == ("{pad}", "{eos}", "{unk}")
    assert set(mt.color_names()) <= set(words) and len(words) == 3 + 36 + 1107
    for p in range(5):
        sentence = mt.sentence(p % 7, p % 3, (p + 1) % 3, mt.color_names()[p * 200], p)
        ids = vocab.encode(sentence)
        assert len(ids) == vocab.max_length() and vocab.decode(ids) == vocab.tokenize(sentence)
        assert ids[len(vocab.tokenize(sentence))] == vocab.EOS and vocab.UNK not in ids
    assert vocab.encode("A qqq unicorn.")[1:3] == [vocab.UNK, vocab.UNK]  # unknown words
    assert vocab.encode("A purple unicorn.")[1] == vocab.words().index("purple")  # a bare colour name is known


def test_text_transforms_and_a_multi_worker_loader(files):
    h5, _ = files
    ds = Multimodal3DIdent(h5, split="val", text_transform=vocab.OneHot(), image_format="tensor")
    image, onehot, (z_image, z_text) = ds[3]
    assert image.shape == (3, 16, 16) and image.dtype == torch.uint8
    assert onehot.shape == (vocab.max_length(), len(vocab.words())) and (onehot.sum(1) == 1).all()
    assert vocab.decode(onehot.argmax(1).tolist()) == vocab.tokenize(ds.sentences[3])
    ids = Multimodal3DIdent(h5, split="val", text_transform=vocab.TokenIds(), image_format="tensor",
                            target_type="z_text")
    batches = list(DataLoader(ids, batch_size=8, num_workers=2))
    assert [b[0].shape[0] for b in batches] == [8, 8, 4] and batches[0][1].shape == (8, vocab.max_length())
    assert torch.equal(torch.cat([b[2] for b in batches]), torch.from_numpy(ids.z_text))


def test_bad_arguments_are_one_line(files, tmp_path):
    h5, _ = files
    with pytest.raises(ConfigError, match="target_type"):
        Multimodal3DIdent(h5, target_type="colour")
    with pytest.raises(DatasetFileError, match="no train.h5"):
        Multimodal3DIdent(tmp_path, split="train")
    plain = make_synthetic_dataset(tmp_path / "plain.h5", n=7, resolution=16, pairs=(), seed=1)
    with pytest.raises(DatasetFileError, match="multimodal3dident"):
        Multimodal3DIdent(plain)
    with pytest.raises(IndexError):
        Multimodal3DIdent(h5)[20]


def test_text_pairs_share_the_image_and_differ_in_one_text_factor(files):
    h5, release = files
    for change in ("phrasing", "palette"):
        ds = Multimodal3DIdent(h5, split="val", text_pair=change, target_type="class")
        same = Multimodal3DIdent(release, split="val", text_pair=change, target_type="class")
        for i in range(len(ds)):
            image, text, text2, cls = ds[i]
            a, b = mt.parse_sentence(text), mt.parse_sentence(text2)
            differs = {k for k in a if a[k] != b[k]}
            assert differs == ({"text_phrasing"} if change == "phrasing" else {"object_color_name"})
            assert a["object_shape"] == cls
        assert len(ds[0]) == 4 and len(same[0]) == 4
    with pytest.raises(ConfigError, match="text_pair"):
        Multimodal3DIdent(h5, text_pair="shape")


def test_the_image_text_picture_is_drawn_for_multimodal_files_only(files, tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image

    from causal3dident.figures import draw_image_text_pairs

    h5, _ = files
    path = draw_image_text_pairs(h5, tmp_path / "pairs.png")
    assert path is not None and Image.open(path).size[0] > 400
    plain = make_synthetic_dataset(tmp_path / "plain.h5", n=7, resolution=16, pairs=(), seed=1)
    assert draw_image_text_pairs(plain, tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()


def test_the_card_of_a_multimodal_variant_describes_its_text(tmp_path):
    from causal3dident.card_text import variant
    from causal3dident.cards import facts_for

    text = variant(facts_for(None, "multimodal3dident")).section()
    assert "### Text (Multimodal3DIdent)" in text and "daunhawer2023multimodal" in text
    assert all(f"`{t}`" in text for t in mt.PHRASES) and "1,107 names" in text
    assert variant(facts_for(None, "causal3dident")).section() == ""


@pytest.mark.parametrize("source", ["file", "preset"])
def test_the_card_of_a_multimodal_file_or_preset_leads_with_multimodal3dident(files, tmp_path, source):
    from click.testing import CliRunner

    from causal3dident.cli import main

    h5, _ = files
    args = [str(h5)] if source == "file" else ["--preset", "multimodal3dident"]
    result = CliRunner().invoke(main, ["card", *args, "--out", str(tmp_path), "--no-figures"])
    assert result.exit_code == 0, result.output
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    title, summary = readme.split("\n# ", 1)[1].split("\n\n")[:2]
    assert title.startswith("Multimodal3DIdent") and summary.startswith("Image/text pairs")
    lead = summary.index('Multimodal3DIdent was introduced by Daunhawer et al. (ICLR 2023, "Identifiability Results '
                         'for Multimodal Contrastive Learning", arXiv:2303.09166)')
    assert lead < summary.index("causal3dident package") < summary.index("Causal3DIdent (von Kügelgen et al.")
    citation = readme.split("## Citation", 1)[1]
    keys = [citation.index(k) for k in ("daunhawer2023multimodal", "causal3dident_generator", "vonkugelgen2021self")]
    assert keys == sorted(keys) and citation.startswith("\n\nCite the paper that introduced Multimodal3DIdent")
    assert "https://arxiv.org/abs/2303.09166" in readme.split("## Dataset details", 1)[1].split("##", 1)[0]
    croissant = json.loads((tmp_path / "croissant.json").read_text())
    assert croissant["name"].startswith("Multimodal3DIdent") and croissant["citeAs"].startswith(
        "@inproceedings{daunhawer2023multimodal") and croissant["url"] == "https://arxiv.org/abs/2303.09166"
    datasheet = (tmp_path / "datasheet.md").read_text(encoding="utf-8")
    assert datasheet.startswith("# Datasheet: Multimodal3DIdent") and "designed by Daunhawer" in datasheet
    assert "greens, cyans and blues never occur" not in readme  # Causal3DIdent's hue range is not claimed here
    if source == "preset":
        assert "125,000 train, 10,000 val, 10,000 test images" in summary  # the release's splits


def test_the_causal3dident_card_still_leads_with_causal3dident(tmp_path):
    from causal3dident.card_text import readme
    from causal3dident.cards import facts_for

    text = readme(facts_for(None, "causal3dident"), [], "2026-01-01")
    assert "\n# Causal3DIdent\n" in text and "daunhawer2023multimodal" not in text and "Multimodal3DIdent" not in text
    citation = text.split("## Citation", 1)[1]
    assert citation.index("vonkugelgen2021self") < citation.index("causal3dident_generator")
