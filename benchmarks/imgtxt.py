"""Image-text contrastive methods for Multimodal3DIdent (Daunhawer et al., ICLR 2023) and their plug-ins.

A method is an image encoder, a text encoder and a loss on the two modalities' final embeddings. The default,
``imgtxt``, is their main_imgtxt.py: the tier's image encoder (ResNet-18 -> hidden -> LeakyReLU -> encoding, or
the tier's small conv net on a CPU), their ``TextEncoder2D`` on one-hot tokens, and the symmetric InfoNCE with
cosine similarity (temperature 1.0), gradients clipped to norm 2.0. Plug-ins work as for SimCLR
(``benchmarks/methods.py``): ``register_imgtxt_method(name, factory)`` or ``--method module:function``, the
factory's keyword-only arguments being its parameters (tier ``method:`` section, ``--set method.<param>=...``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from causal3dident import multimodal_vocab as vocab
from causal3dident.errors import ConfigError
from causal3dident.schema import PositiveFloat, PositiveInt, validate

from .losses import infonce
from .methods import lookup_factory, params_schema
from .models import build_encoder
from .tiers import Tier


class TextEncoder2D(nn.Module):
    """Their text encoder (encoders.py): one-hot tokens [B, L, V] -> linear embedding -> three stride-2 4x4
    conv blocks (BatchNorm, ReLU) over the L x embedding plane -> linear to the encoding."""

    def __init__(self, input_size: int, output_size: int, sequence_length: int, embedding_dim: int = 128,
                 fbase: int = 25) -> None:
        super().__init__()
        self.embedding = nn.Linear(input_size, embedding_dim)
        self.convnet = nn.Sequential(
            nn.Conv2d(1, fbase, 4, 2, 1, bias=True), nn.BatchNorm2d(fbase), nn.ReLU(True),
            nn.Conv2d(fbase, fbase * 2, 4, 2, 1, bias=True), nn.BatchNorm2d(fbase * 2), nn.ReLU(True),
            nn.Conv2d(fbase * 2, fbase * 4, 4, 2, 1, bias=True), nn.BatchNorm2d(fbase * 4), nn.ReLU(True))
        # theirs hard-codes fbase * 4 * 3 * 16 (sequence length 24..31, embedding 128); the same for those sizes
        self.ldim = fbase * 4 * (sequence_length // 8) * (embedding_dim // 8)
        self.linear = nn.Linear(self.ldim, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embedding(x).unsqueeze(1)
        x = self.convnet(x)
        return self.linear(x.reshape(-1, self.ldim))


def symmetric_infonce(z_image: torch.Tensor, z_text: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Their symmetrised InfoNCE: the mean of the loss from images to texts and from texts to images, each
    NT-Xent with cosine similarity over the 2B embeddings (same-modality pairs are negatives too)."""
    return 0.5 * (infonce(z_image, z_text, temperature) + infonce(z_text, z_image, temperature))


class ImageTextMethod:
    """An image encoder, a text encoder and a loss on their final embeddings; subclass to add yours."""

    name = "imgtxt"
    max_grad_norm: float | None = None

    def build_encoder(self, tier: Tier) -> nn.Module:
        """The image encoder: returns ``(hidden, final)`` (or ``final``) for normalised images."""
        return build_encoder(tier.model, tier.resolution)

    def build_text_encoder(self, tier: Tier) -> nn.Module:
        """The text encoder: one-hot tokens [B, ``vocab.max_length()``, ``len(vocab.words())``] -> final."""
        raise NotImplementedError

    def loss(self, z_image: torch.Tensor, z_text: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class ImgTxt(ImageTextMethod):
    """main_imgtxt.py's method (see the module doc)."""

    def __init__(self, temperature: float = 1.0, max_grad_norm: float = 2.0, text_embedding_dim: int = 128,
                 text_fbase: int = 25) -> None:
        self.temperature, self.max_grad_norm = temperature, max_grad_norm
        self.text_embedding_dim, self.text_fbase = text_embedding_dim, text_fbase

    def build_text_encoder(self, tier: Tier) -> nn.Module:
        return TextEncoder2D(len(vocab.words()), tier.model.content_dim, vocab.max_length(),
                             self.text_embedding_dim, self.text_fbase)

    def loss(self, z_image: torch.Tensor, z_text: torch.Tensor) -> torch.Tensor:
        return symmetric_infonce(z_image, z_text, self.temperature)


def imgtxt(tier: Tier, *, temperature: PositiveFloat = 1.0, max_grad_norm: PositiveFloat = 2.0,
           text_embedding_dim: PositiveInt = 128, text_fbase: PositiveInt = 25) -> ImageTextMethod:
    """Their method; ``temperature`` divides the cosine similarities (theirs: 1.0), ``max_grad_norm`` clips
    the gradients of both encoders (theirs: 2.0), the text encoder's sizes as theirs."""
    return ImgTxt(temperature, max_grad_norm, text_embedding_dim, text_fbase)


ImageTextFactory = Callable[..., ImageTextMethod]
_REGISTRY: dict[str, ImageTextFactory] = {"imgtxt": imgtxt}


def register_imgtxt_method(name: str, factory: ImageTextFactory) -> None:
    """Make ``--dataset multimodal3dident --method NAME`` build ``factory(tier, **params)``."""
    _REGISTRY[name] = factory


def _factory(spec: str) -> ImageTextFactory:
    return lookup_factory(spec, _REGISTRY, "image-text method", "causal3dident.benchmarks.imgtxt.ImageTextMethod")


def imgtxt_params(spec: str, tier: Tier) -> dict[str, Any]:
    """The validated parameters of image-text method ``spec`` for ``tier``, defaults filled in."""
    schema = params_schema(_factory(spec))
    params = validate(schema, tier.method.get(spec, {}), source=f"tier {tier.name!r}, --method {spec}",
                      hint="fix the tier's method section or the --set value", prefix=("method",))
    return {name: getattr(params, name) for name in schema.model_fields}


def resolve_imgtxt_method(spec: str, tier: Tier) -> ImageTextMethod:
    """A registered name or ``module:function`` returning an image-text method, built with its parameters."""
    method = _factory(spec)(tier, **imgtxt_params(spec, tier))
    needed = ("build_encoder", "build_text_encoder", "loss")
    if not all(callable(getattr(method, k, None)) for k in needed):
        raise ConfigError(f"--method {spec}: the function must return an object with build_encoder(tier), "
                          f"build_text_encoder(tier) and loss(z_image, z_text), e.g. a subclass of "
                          f"causal3dident.benchmarks.imgtxt.ImageTextMethod")
    return method
