"""A fixed vocabulary for Multimodal3DIdent's sentences: token ids and one-hot codes, the same for every split.

Tokens: the words and punctuation of the five templates, the shapes and positions, and each colour name of
the three palettes as one token (the quotes around it are tokens of their own). Ids: ``{pad}`` 0, ``{eos}`` 1,
``{unk}`` 2 (as the original datasets.py numbers them), then the template tokens in sorted order, then the 1,107
colour names in ``multimodal_text.color_names()`` order. Unlike the original loader (nltk's word_tokenize and a
vocabulary built from the training text and written to ``vocab.json`` beside the data), nothing is learnt from
data or written, and a colour name is one token.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from . import multimodal_text as mt

SPECIALS: tuple[str, ...] = ("{pad}", "{eos}", "{unk}")
PAD, EOS, UNK = 0, 1, 2
_TOKEN = re.compile(r'"[^"]*"|[A-Za-z]+|[^\sA-Za-z]')


def tokenize(sentence: str) -> list[str]:
    """Words, punctuation and quotes; a quoted colour name is ``'"'``, the name, ``'"'``."""
    tokens: list[str] = []
    for token in _TOKEN.findall(sentence):
        tokens += ['"', token[1:-1], '"'] if token.startswith('"') else [token]
    return tokens


@functools.lru_cache(maxsize=1)
def words() -> tuple[str, ...]:
    """Every token, in id order."""
    filled = [t.format(SHAPE=" ".join(mt.SHAPES), XPOS=" ".join(mt.XPOS), YPOS=" ".join(mt.YPOS), COLOR="x")
              for t in mt.PHRASES]
    template = sorted({w for s in filled for w in tokenize(s)} - {"x"})
    return (*SPECIALS, *template, *mt.color_names())


@functools.lru_cache(maxsize=1)
def _ids() -> dict[str, int]:
    return {w: k for k, w in enumerate(words())}


@functools.lru_cache(maxsize=1)
def max_length() -> int:
    """Tokens of the longest template's sentences, plus ``{eos}``: the padded length (each template makes
    sentences of one length, as every field is one token)."""
    return 1 + max(len(tokenize(mt.sentence(0, 0, 0, "red", p))) for p in range(len(mt.PHRASES)))


def encode(sentence: str, length: int | None = None) -> list[int]:
    """Token ids of ``sentence``, then ``{eos}``, padded with ``{pad}`` to ``length`` (default ``max_length()``)."""
    table = _ids()
    ids = [table.get(t, UNK) for t in tokenize(sentence)] + [EOS]
    length = max_length() if length is None else length
    if len(ids) > length:
        raise ValueError(f"sentence of {len(ids)} tokens (with {{eos}}) is longer than {length}")
    return ids + [PAD] * (length - len(ids))


def decode(ids: Any) -> list[str]:
    """Tokens of ids up to (not including) the first ``{eos}``."""
    out = []
    for k in list(ids):
        if int(k) == EOS:
            break
        out.append(words()[int(k)])
    return out


class TokenIds:
    """A ``text_transform``: a sentence -> int64 tensor [max_length()] of token ids."""

    def __call__(self, sentence: str) -> Any:
        import torch

        return torch.tensor(encode(sentence), dtype=torch.int64)


class OneHot:
    """A ``text_transform``: a sentence -> float32 tensor [max_length(), len(words())], as the original's ``text``."""

    def __call__(self, sentence: str) -> Any:
        import torch

        return torch.nn.functional.one_hot(torch.tensor(encode(sentence)), len(words())).float()
