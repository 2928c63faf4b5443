"""Multimodal3DIdent's text side: colour names from three palettes, the five sentence templates, the text latents.

Facts of the release (github.com/imantdaunhawer/Multimodal3DIdent, generate_latents.py and generate_text.py):
the object hue h in [0, 1] becomes RGB = hsv_to_rgb(h, 1, 1); one of matplotlib's TABLEAU, CSS4 and XKCD
palettes is drawn uniformly per sample and the colour is named after the palette entry nearest in RGB
(Euclidean; entries sharing an RGB value answer with the last of their names, ties go to the first entry, as
the original's loop does); ``object_color_index`` is the name's position in the sorted union of all names.
The phrasing picks one of five templates. Palettes are data (``palettes.json``), so no matplotlib is needed.

Our draws come from counter-based noise (``causal3dident.noise``), stream ``TEXT_STREAM``: column 0 picks the
palette, column 1 the phrasing, so sample i's text depends only on (seed, i) and shards agree with whole runs.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from . import noise

SHAPES: tuple[str, ...] = ("teapot", "hare", "dragon", "cow", "armadillo", "horse", "head")
"""object_shape -> word (the same order as our classes)."""
XPOS: tuple[str, ...] = ("left", "center", "right")
"""object_xpos {0, 1, 2} -> word."""
YPOS: tuple[str, ...] = ("top", "mid", "bottom")
"""object_ypos {0, 1, 2} -> word."""
PHRASES: tuple[str, ...] = (
    'A {SHAPE} of "{COLOR}" color is visible, positioned at the {YPOS}-{XPOS} of the image.',
    'A "{COLOR}" {SHAPE} is at the {YPOS}-{XPOS} of the image.',
    'The {YPOS}-{XPOS} of the image shows a "{COLOR}" colored {SHAPE}.',
    'At the {YPOS}-{XPOS} of the picture is a {SHAPE} in "{COLOR}" color.',
    'At the {YPOS}-{XPOS} of the image, there is a "{COLOR}" object in the form of a {SHAPE}.',
)
"""text_phrasing {0..4} -> template, verbatim from generate_text.py."""
PALETTES: tuple[str, ...] = ("tableau", "css4", "xkcd")
"""The palettes, in the original's order (the index a sample's palette is recorded as)."""
TEXT_STREAM = "multimodal/text"
"""Noise stream of the text latents: column 0 the palette, column 1 the phrasing."""
TEXT_NOISE_WIDTH = 2


@dataclass(frozen=True)
class Palette:
    """One palette as the original's ``ColorPalette`` searches it: distinct RGB values in first-seen order, each
    named by the last name that has it."""

    name: str
    names: tuple[str, ...]
    rgb: np.ndarray  # float64 [K, 3], hex / 255 as matplotlib.colors.to_rgb gives

    def nearest(self, rgb: np.ndarray) -> np.ndarray:
        """Index into ``names`` of the nearest entry to each row of ``rgb`` [N, 3] (first entry on ties)."""
        rgb = np.asarray(rgb, dtype=np.float64).reshape(-1, 3)
        out = np.empty(len(rgb), dtype=np.int64)
        for lo in range(0, len(rgb), 4096):  # [4096, K, 3] at a time: a few hundred MB at most for XKCD
            d = self.rgb[None, :, :] - rgb[lo:lo + 4096, None, :]
            out[lo:lo + 4096] = np.argmin(np.sqrt((d * d).sum(axis=2)), axis=1)
        return out


def _hex_to_rgb(value: str) -> tuple[float, float, float]:
    return tuple(int(value[k:k + 2], 16) / 255 for k in (1, 3, 5))  # type: ignore[return-value]


@functools.lru_cache(maxsize=1)
def _palettes_file() -> dict[str, Any]:
    return json.loads(resources.files("causal3dident").joinpath("palettes.json").read_text(encoding="utf-8"))


def palette_data() -> dict[str, dict[str, str]]:
    """The three palettes as name -> hex mappings, in matplotlib's order (from ``palettes.json``)."""
    return {name: dict(_palettes_file()["palettes"][name]) for name in PALETTES}


def palette_source() -> str:
    """Where ``palettes.json`` came from (matplotlib's version and dicts)."""
    return str(_palettes_file()["source"])


@functools.lru_cache(maxsize=1)
def palettes() -> tuple[Palette, ...]:
    """The three palettes, searchable."""
    out = []
    for name, colours in palette_data().items():
        by_rgb: dict[tuple[float, float, float], str] = {}
        for colour, hex_value in colours.items():
            by_rgb[_hex_to_rgb(hex_value)] = colour  # the original's dict: first position, last name
        out.append(Palette(name, tuple(by_rgb.values()), np.array(list(by_rgb), dtype=np.float64)))
    return tuple(out)


@functools.lru_cache(maxsize=1)
def color_names() -> tuple[str, ...]:
    """Every colour name of the three palettes, sorted: ``object_color_index`` is a position in it."""
    return tuple(sorted({n for colours in palette_data().values() for n in colours}))


@functools.lru_cache(maxsize=1)
def _color_index() -> dict[str, int]:
    return {name: k for k, name in enumerate(color_names())}


def color_index(names: Any) -> np.ndarray:
    """``object_color_index`` of colour names (int64); an unknown name is a KeyError naming it."""
    table = _color_index()
    return np.array([table[str(n)] for n in np.asarray(names).reshape(-1)], dtype=np.int64)


def palette_of(name: str) -> int:
    """The palette a colour name comes from, told by its prefix (``tab:``, ``xkcd:``, else CSS4)."""
    return 0 if name.startswith("tab:") else 2 if name.startswith("xkcd:") else 1


def hue_to_rgb(hue: np.ndarray) -> np.ndarray:
    """``colorsys.hsv_to_rgb(h, 1, 1)`` for each hue in [0, 1], vectorised with the same float operations."""
    h = np.asarray(hue, dtype=np.float64).reshape(-1)
    scaled = h * 6.0
    i = np.trunc(scaled)
    f = scaled - i
    q = 1.0 - f
    t = 1.0 - (1.0 - f)
    one, zero = np.ones_like(h), np.zeros_like(h)
    sector = i.astype(np.int64) % 6
    rgb = np.select([sector[:, None] == k for k in range(6)],
                    [np.stack(c, axis=1) for c in ((one, t, zero), (q, one, zero), (zero, one, t),
                                                   (zero, q, one), (t, zero, one), (one, zero, q))])
    return rgb


def nearest_color_names(hue: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """The colour name of each object hue in its sample's palette (0 tableau, 1 css4, 2 xkcd): an object array."""
    hue, palette = np.asarray(hue, dtype=np.float64).reshape(-1), np.asarray(palette).reshape(-1)
    rgb = hue_to_rgb(hue)
    out = np.empty(len(hue), dtype=object)
    for k, pal in enumerate(palettes()):
        rows = np.flatnonzero(palette == k)
        if len(rows):
            out[rows] = np.asarray(pal.names, dtype=object)[pal.nearest(rgb[rows])]
    return out


def text_noise(seed: int, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Palette (0..2) and phrasing (0..4) of samples ``indices``, drawn uniformly from stream ``TEXT_STREAM``."""
    u = noise.uniforms_at(seed, TEXT_STREAM, np.asarray(indices, dtype=np.int64), TEXT_NOISE_WIDTH)
    palette = np.minimum((u[0] * len(PALETTES)).astype(np.int64), len(PALETTES) - 1)
    phrasing = np.minimum((u[1] * len(PHRASES)).astype(np.int64), len(PHRASES) - 1)
    return palette, phrasing


def sentence(shape: int, xpos: int, ypos: int, color: str, phrasing: int) -> str:
    """One sentence, as generate_text.py writes it."""
    return PHRASES[int(phrasing)].format(SHAPE=SHAPES[int(shape)], YPOS=YPOS[int(ypos)], XPOS=XPOS[int(xpos)],
                                         COLOR=color)


def sentences(text_latents: Mapping[str, Any]) -> list[str]:
    """The sentence of every row of a text-latents table (columns as ``latents_text.csv``)."""
    columns = [np.asarray(text_latents[k]).reshape(-1) for k in
               ("object_shape", "object_xpos", "object_ypos", "object_color_name", "text_phrasing")]
    return [sentence(s, x, y, str(c), p) for s, x, y, c, p in zip(*columns)]


def _pattern(template: str) -> re.Pattern[str]:
    fields = {"SHAPE": "(?P<shape>{})".format("|".join(SHAPES)), "XPOS": "(?P<xpos>{})".format("|".join(XPOS)),
              "YPOS": "(?P<ypos>{})".format("|".join(YPOS)), "COLOR": '(?P<color>[^"]+)'}
    parts = re.split(r"(\{[A-Z]+\})", template)
    return re.compile("".join(fields[p[1:-1]] if p.startswith("{") else re.escape(p) for p in parts) + r"\Z")


_PATTERNS = tuple(_pattern(t) for t in PHRASES)


def parse_sentence(text: str) -> dict[str, Any]:
    """Shape, x and y position (indices), colour name and phrasing of a sentence; ValueError if no template fits."""
    for phrasing, pattern in enumerate(_PATTERNS):
        match = pattern.match(text)
        if match:
            return {"object_shape": SHAPES.index(match["shape"]), "object_xpos": XPOS.index(match["xpos"]),
                    "object_ypos": YPOS.index(match["ypos"]), "object_color_name": match["color"],
                    "text_phrasing": phrasing}
    raise ValueError(f"not a Multimodal3DIdent sentence: {text!r}")


def text_latents(image_latents: Mapping[str, Any], seed: int, start: int = 0,
                 indices: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The text-latents table of samples [start, start + N) (or ``indices``) given their image-latents table
    (release columns): shape and positions shared, the colour named in a palette drawn per sample, the phrasing
    drawn; plus ``palette`` (0 tableau, 1 css4, 2 xkcd), which the release does not write but we record."""
    n = len(np.asarray(image_latents["object_shape"]))
    palette, phrasing = text_noise(seed, np.arange(start, start + n) if indices is None else indices)
    names = nearest_color_names(image_latents["object_color"], palette)
    return {
        "object_shape": np.asarray(image_latents["object_shape"], dtype=np.int64),
        "object_xpos": np.asarray(image_latents["object_xpos"], dtype=np.int64),
        "object_ypos": np.asarray(image_latents["object_ypos"], dtype=np.int64),
        "object_zpos": np.asarray(image_latents["object_zpos"], dtype=np.float64),
        "object_color_name": names,
        "object_color_index": color_index(names),
        "text_phrasing": phrasing,
        "palette": palette,
    }


PAIR_CHANGES: tuple[str, ...] = ("phrasing", "palette")
"""Text-only counterfactuals: the same image (and image latents), another sentence."""


def counterfactual_text(image_latents: Mapping[str, Any], text: Mapping[str, Any], seed: int, indices: np.ndarray,
                        change: str) -> dict[str, np.ndarray]:
    """The text table of each sample's text-only counterfactual: ``phrasing`` (another of the five templates,
    uniformly) or ``palette`` (another palette, uniformly, and the colour's name in it); all else is kept. Drawn
    from the stream ``multimodal/pairs/<change>``, so it depends only on (seed, index)."""
    if change not in PAIR_CHANGES:
        raise ValueError(f"unknown text change {change!r}; choose {' or '.join(PAIR_CHANGES)}")
    u = noise.uniforms_at(seed, f"multimodal/pairs/{change}", np.asarray(indices, dtype=np.int64), 1)[0]
    out = {k: np.asarray(v).copy() for k, v in text.items()}
    if change == "phrasing":
        step = 1 + np.minimum((u * (len(PHRASES) - 1)).astype(np.int64), len(PHRASES) - 2)
        out["text_phrasing"] = (np.asarray(text["text_phrasing"], dtype=np.int64) + step) % len(PHRASES)
        return out
    step = 1 + np.minimum((u * (len(PALETTES) - 1)).astype(np.int64), len(PALETTES) - 2)
    out["palette"] = (np.asarray(text["palette"], dtype=np.int64) + step) % len(PALETTES)
    out["object_color_name"] = nearest_color_names(image_latents["object_color"], out["palette"])
    out["object_color_index"] = color_index(out["object_color_name"])
    return out
