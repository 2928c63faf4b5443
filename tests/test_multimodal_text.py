"""Multimodal3DIdent's text: palettes as data, colour names nearest in RGB, the five templates, the sampler.

With ``C3DI_MULTIMODAL3DIDENT`` pointing at a checkout of imantdaunhawer/Multimodal3DIdent (and matplotlib
installed), the colour names are also compared with its own ``ColorPalette.nearest_neighbor``, unmodified.
"""

from __future__ import annotations

import colorsys
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from causal3dident import DatasetFileError
from causal3dident import multimodal_text as mt
from causal3dident.multimodal import IMAGE_COLUMNS, image_latents, raw_latents
from causal3dident.scm import load_preset


@pytest.fixture(scope="module")
def tables():
    z, c = load_preset("multimodal3dident").sample(30_000, seed=7)
    image = image_latents(z, c)
    return z, c, image, mt.text_latents(image, seed=7)


def test_palettes_file_is_matplotlibs_dicts_in_order():
    colors = pytest.importorskip("matplotlib.colors")
    data = mt.palette_data()
    for ours, theirs in zip(data.values(), (colors.TABLEAU_COLORS, colors.CSS4_COLORS, colors.XKCD_COLORS)):
        assert list(ours.items()) == list(theirs.items())
    assert [len(v) for v in data.values()] == [10, 148, 949]


def test_loading_the_text_module_does_not_import_matplotlib():
    import subprocess
    code = ("import sys, causal3dident.multimodal_text as m; m.nearest_color_names([0.3], [2]); "
            "assert 'matplotlib' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_hue_to_rgb_is_colorsys_exactly():
    hues = np.concatenate([np.random.default_rng(0).random(5000), np.arange(13) / 12, [np.nextafter(1, 0)]])
    expected = np.array([colorsys.hsv_to_rgb(h, 1.0, 1.0) for h in hues])
    assert np.array_equal(mt.hue_to_rgb(hues), expected)


def test_colour_names_are_the_nearest_entries_of_the_drawn_palette(tables):
    _, _, image, text = tables
    rgb = mt.hue_to_rgb(image["object_color"][:3000])
    for k, (name, colours) in enumerate(mt.palette_data().items()):
        assert mt.PALETTES[k] == name
        entries = {n: np.array([int(h[i:i + 2], 16) / 255 for i in (1, 3, 5)]) for n, h in colours.items()}
        table = np.array(list(entries.values()))
        for row in np.flatnonzero(text["palette"][:3000] == k)[:300]:
            chosen = text["object_color_name"][row]
            assert chosen in entries and mt.palette_of(chosen) == k
            best = np.sqrt(((table - rgb[row]) ** 2).sum(axis=1)).min()
            assert np.sqrt(((entries[chosen] - rgb[row]) ** 2).sum()) == pytest.approx(best, abs=1e-12)
    assert mt.nearest_color_names([0.0, 1 / 3, 2 / 3, 1.0], [1, 1, 1, 1]).tolist() == ["red", "lime", "blue", "red"]


def test_colour_names_match_the_original_code():
    root = os.environ.get("C3DI_MULTIMODAL3DIDENT")
    if not root or not (Path(root) / "generate_latents.py").is_file():
        pytest.skip("set C3DI_MULTIMODAL3DIDENT to a checkout of imantdaunhawer/Multimodal3DIdent")
    colors = pytest.importorskip("matplotlib.colors")
    pytest.importorskip("pandas")
    sys.path.insert(0, root)
    try:
        import generate_latents as original
    finally:
        sys.path.remove(root)
    hues = np.concatenate([np.random.default_rng(1).random(400), np.linspace(0, 1, 401)])
    for k, palette in enumerate((colors.TABLEAU_COLORS, colors.CSS4_COLORS, colors.XKCD_COLORS)):
        cp = original.ColorPalette(palette)
        theirs = [cp.nearest_neighbor(cp.hue_to_rgb(h)) for h in hues]
        assert mt.nearest_color_names(hues, np.full(len(hues), k)).tolist() == theirs


def test_colour_index_is_the_position_in_the_sorted_union():
    names = mt.color_names()
    assert len(names) == 1107 and list(names) == sorted(set(names))
    assert mt.color_index(["tab:blue", "xkcd:red", names[0], names[-1]]).tolist() == \
        [names.index("tab:blue"), names.index("xkcd:red"), 0, 1106]
    with pytest.raises(KeyError):
        mt.color_index(["not a colour"])


def test_every_sentence_parses_back_to_its_latents(tables):
    _, _, image, text = tables
    for sentence, row in zip(mt.sentences(text), range(len(text["object_shape"]))):
        parsed = mt.parse_sentence(sentence)
        for key, value in parsed.items():
            assert value == text[key][row], (sentence, key)
        assert parsed["object_shape"] == image["object_shape"][row]
        assert parsed["object_xpos"] == image["object_xpos"][row]
    assert mt.sentence(0, 0, 2, "xkcd:robin's egg", 4) == \
        'At the bottom-left of the image, there is a "xkcd:robin\'s egg" object in the form of a teapot.'
    with pytest.raises(ValueError, match="not a Multimodal3DIdent sentence"):
        mt.parse_sentence("A teapot.")


def test_palette_and_phrasing_are_uniform_and_independent(tables):
    _, c, _, text = tables
    palette, phrasing = text["palette"], text["text_phrasing"]
    assert stats.chisquare(np.bincount(palette, minlength=3)).pvalue > 1e-3
    assert stats.chisquare(np.bincount(phrasing, minlength=5)).pvalue > 1e-3
    joint = np.zeros((3, 5, 7))
    np.add.at(joint, (palette, phrasing, c), 1)
    assert stats.chi2_contingency(joint.reshape(15, 7)).pvalue > 1e-3
    assert stats.chi2_contingency(joint.sum(axis=2)).pvalue > 1e-3


def test_colour_depends_on_the_hue_but_not_one_to_one(tables):
    _, _, image, text = tables
    hue = image["object_color"]
    red = (hue < 0.02) | (hue > 0.98)
    names = set(text["object_color_name"][red])
    assert len(names) > 3 and all("red" in n or "scarlet" in n or "tomato" in n or "vermillion" in n
                                  or "crimson" in n or "fire" in n or "cherry" in n or n.startswith("xkcd:")
                                  for n in names)
    assert text["object_color_name"][red].tolist().count("red") > 0


def test_text_latents_depend_only_on_seed_and_index(tables):
    _, _, image, text = tables
    part = {k: v[1000:1500] for k, v in image.items()}
    shard = mt.text_latents(part, seed=7, start=1000)
    scattered = mt.text_latents({k: v[[1400, 1001]] for k, v in image.items()}, seed=7, indices=np.array([1400, 1001]))
    for key in ("text_phrasing", "palette", "object_color_name"):
        assert scattered[key].tolist() == text[key][[1400, 1001]].tolist(), key
    for key in text:
        assert np.array_equal(shard[key], text[key][1000:1500]), key
    other = mt.text_latents(image, seed=8)
    assert not np.array_equal(other["text_phrasing"], text["text_phrasing"])


def test_image_table_round_trips_to_raw_latents_exactly(tables):
    z, c, image, _ = tables
    assert list(image) == list(IMAGE_COLUMNS)
    assert set(np.unique(image["object_xpos"])) == {0, 1, 2}
    for name in ("object_alpharot", "object_color", "spotlight_pos", "background_color"):
        assert 0 <= image[name].min() and image[name].max() <= 1
    back_z, back_c = raw_latents(image)
    assert np.array_equal(back_z, z) and np.array_equal(back_c, c)
    with pytest.raises(DatasetFileError, match="3 x 3 grid"):
        image_latents(load_preset("causal3dident").sample(10, seed=0)[0], c[:10])


def test_text_only_counterfactuals_change_only_phrasing_or_palette(tables):
    _, _, image, text = tables
    idx = np.arange(len(text["object_shape"]))
    phr = mt.counterfactual_text(image, text, 7, idx, "phrasing")
    step = (phr["text_phrasing"] - text["text_phrasing"]) % 5
    assert stats.chisquare(np.bincount(step, minlength=5)[1:]).pvalue > 1e-3 and (step > 0).all()
    for key in ("object_color_name", "palette", "object_shape", "object_xpos"):
        assert np.array_equal(phr[key], text[key])
    pal = mt.counterfactual_text(image, text, 7, idx, "palette")
    step = (pal["palette"] - text["palette"]) % 3
    assert stats.chisquare(np.bincount(step, minlength=3)[1:]).pvalue > 1e-3 and (step > 0).all()
    assert np.array_equal(pal["text_phrasing"], text["text_phrasing"])
    assert (pal["object_color_name"] != text["object_color_name"]).all()  # names of two palettes never coincide
    assert pal["object_color_name"].tolist() == mt.nearest_color_names(image["object_color"], pal["palette"]).tolist()
    for original, changed in zip(mt.sentences(text)[:200], mt.sentences(pal)[:200]):
        a, b = mt.parse_sentence(original), mt.parse_sentence(changed)
        assert {k: v for k, v in a.items() if k != "object_color_name"} == \
            {k: v for k, v in b.items() if k != "object_color_name"}
    again = mt.counterfactual_text({k: v[5:9] for k, v in image.items()}, {k: v[5:9] for k, v in text.items()}, 7,
                                   idx[5:9], "palette")
    assert again["object_color_name"].tolist() == pal["object_color_name"][5:9].tolist()
