"""Batched data augmentations with an independent random draw per sample, on CPU or GPU tensors.

torchvision's batched tensor transforms draw one set of parameters for a whole batch, which
weakens the augmentation; here every image gets its own crop box, flip, jitter factors, jitter
order, grayscale coin and rotation. The numbers come from ``causal3dident.augmentations``.
Images are float tensors [B, 3, H, W] in [0, 1]; sampling and applying are separate so that
tests can check the parameters. Parameters are drawn on the generator's device (the trainer's is
always the CPU, so a GPU run draws the CPU run's parameters) and reach the images' device through
pinned, non-blocking copies: choosing the samples an op applies to happens on the host, and no op
waits for the GPU. Crops resample like PIL (the original's backend): separable
bicubic (a = -0.5), antialiased when shrinking, as two batched matrix products.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch

from causal3dident.augmentations import AUGMENTATIONS, NORMALIZE_MEAN, NORMALIZE_STD, ColourDistortion, Crop

from .device import to_device

_GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


# -- crop + flip -----------------------------------------------------------------------------------
@dataclass
class CropParams:
    """Per-sample crop boxes in pixels (top, left, height, width) and horizontal flips."""

    boxes: torch.Tensor  # float [B, 4]
    flip: torch.Tensor  # bool [B]


def sample_crop(n: int, height: int, width: int, crop: Crop, generator: torch.Generator,
                device: torch.device) -> CropParams:
    """torchvision's RandomResizedCrop.get_params, vectorised: 10 tries per sample, centre-crop fallback."""
    tries = 10
    area = height * width

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device=device)

    target = area * (crop.scale[0] + (crop.scale[1] - crop.scale[0]) * rand(n, tries))
    log_lo, log_hi = math.log(crop.ratio[0]), math.log(crop.ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * rand(n, tries))
    w = torch.round(torch.sqrt(target * aspect))
    h = torch.round(torch.sqrt(target / aspect))
    valid = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = torch.argmax(valid.int(), dim=1)
    rows = torch.arange(n, device=device)
    h, w = h[rows, first], w[rows, first]
    top = torch.floor(rand(n) * (height - h + 1))
    left = torch.floor(rand(n) * (width - w + 1))
    # Fallback (no valid try): the largest centred box whose aspect ratio lies within crop.ratio.
    in_ratio = width / height
    if in_ratio < crop.ratio[0]:
        fw, fh = float(width), float(round(width / crop.ratio[0]))
    elif in_ratio > crop.ratio[1]:
        fh, fw = float(height), float(round(height * crop.ratio[1]))
    else:
        fw, fh = float(width), float(height)
    none = ~valid.any(dim=1)
    h = torch.where(none, torch.full_like(h, fh), h)
    w = torch.where(none, torch.full_like(w, fw), w)
    top = torch.where(none, torch.full_like(top, (height - fh) // 2), top)
    left = torch.where(none, torch.full_like(left, (width - fw) // 2), left)
    flip = rand(n) < crop.flip_p
    return CropParams(torch.stack([top, left, h, w], dim=1), flip)


def apply_crop(x: torch.Tensor, params: CropParams, size: int, mode: str = "bicubic") -> torch.Tensor:
    """Resize each image's box to ``size`` x ``size`` (mirrored where asked) as PIL's ``crop().resize()``:
    separable, antialiased when shrinking, bicubic with a = -0.5 or bilinear; two batched matmuls,
    horizontal pass first, clipped in between (Pillow 13 may order the passes the other way round;
    that changes only overshoots clipped at hard edges)."""
    top, left, h, w = to_device(params.boxes, x.device).to(x.dtype).unbind(1)
    rows = _resize_weights(top, h, x.shape[2], size, mode)  # [B, size, H]
    cols = _resize_weights(left, w, x.shape[3], size, mode)  # [B, size, W]
    cols = torch.where(to_device(params.flip, x.device).view(-1, 1, 1), cols.flip(1), cols)
    across = (x @ cols.unsqueeze(1).transpose(2, 3)).clamp_(0.0, 1.0)  # PIL: horizontal pass, clipped
    return (rows.unsqueeze(1) @ across).clamp_(0.0, 1.0)


def _resize_weights(start: torch.Tensor, length: torch.Tensor, extent: int, size: int, mode: str) -> torch.Tensor:
    """[B, size, extent] interpolation weights of PIL's resampling of [start, start + length) to ``size``."""
    if mode not in ("bicubic", "bilinear"):
        raise ValueError(f"crop interpolation must be bicubic or bilinear, got {mode!r}")
    scale = (length / size).view(-1, 1, 1)
    stretch = scale.clamp(min=1.0)  # widen the filter when shrinking (antialias), as PIL does
    out_pixel = torch.arange(size, dtype=start.dtype, device=start.device).view(1, -1, 1) + 0.5
    centre = start.view(-1, 1, 1) + out_pixel * scale
    pixel = torch.arange(extent, dtype=start.dtype, device=start.device).view(1, 1, -1) + 0.5
    t = ((pixel - centre) / stretch).abs()
    if mode == "bicubic":
        a = -0.5
        weight = torch.where(t < 1, ((a + 2) * t - (a + 3)) * t * t + 1,
                             torch.where(t < 2, (((t - 5) * t + 8) * t - 4) * a, torch.zeros_like(t)))
    else:
        weight = (1 - t).clamp(min=0.0)
    inside = (pixel > start.view(-1, 1, 1)) & (pixel < (start + length).view(-1, 1, 1))  # PIL crops first
    weight = weight * inside
    return weight / weight.sum(dim=2, keepdim=True)


# -- colour distortion -----------------------------------------------------------------------------
@dataclass
class ColourParams:
    """Per-sample jitter factors, the order of the four jitter ops, and the two coins."""

    jitter: torch.Tensor  # bool [B]: ColorJitter applied (RandomApply p)
    order: torch.Tensor  # long [B, 4]: op index (0 brightness, 1 contrast, 2 saturation, 3 hue) per step
    brightness: torch.Tensor  # [B]
    contrast: torch.Tensor  # [B]
    saturation: torch.Tensor  # [B]
    hue: torch.Tensor  # [B]
    grayscale: torch.Tensor  # bool [B]


def sample_colour(n: int, colour: ColourDistortion, generator: torch.Generator, device: torch.device) -> ColourParams:
    """ColorJitter(b, c, s, h) with probability p, then RandomGrayscale, drawn per sample."""

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device=device)

    def factor(strength: float) -> torch.Tensor:
        lo, hi = max(0.0, 1.0 - strength), 1.0 + strength
        return lo + (hi - lo) * rand(n)

    return ColourParams(
        jitter=rand(n) < colour.p,
        order=torch.argsort(rand(n, 4), dim=1),
        brightness=factor(colour.brightness), contrast=factor(colour.contrast),
        saturation=factor(colour.saturation), hue=(2 * rand(n) - 1) * colour.hue,
        grayscale=rand(n) < colour.grayscale_p)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma [B, 1, H, W] with torchvision's weights."""
    r, g, b = x.unbind(1)
    return (_GRAY[0] * r + _GRAY[1] * g + _GRAY[2] * b).unsqueeze(1)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = factor.view(-1, 1, 1, 1)
    return (f * x + (1 - f) * other).clamp_(0.0, 1.0)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (x * factor.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, grayscale(x).mean(dim=(1, 2, 3), keepdim=True), factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, grayscale(x), factor)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate each image's hue by its own ``shift`` (fraction of the circle), as torchvision does."""
    r, g, b = x.unbind(1)
    v, _ = x.max(dim=1)
    delta = v - x.min(dim=1).values
    s = delta / torch.where(v > 0, v, 1.0)
    safe = torch.where(delta > 0, delta, 1.0)
    h = torch.where(v == r, (g - b) / safe, torch.where(v == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    h6 = torch.remainder(h + 6.0 * shift.view(-1, 1, 1), 6.0)  # hue in sextants, shifted
    vs = v * s
    # HSV -> RGB without branches: channel n is v - v s clamp(min(k, 4 - k), 0, 1), k = (n + h6) mod 6
    channels = []
    for n in (5.0, 3.0, 1.0):
        k = torch.remainder(h6 + n, 6.0)
        channels.append(v - vs * torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0))
    return torch.stack(channels, dim=1).clamp_(0.0, 1.0)


_JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def apply_colour(x: torch.Tensor, params: ColourParams) -> torch.Tensor:
    """Each sample's jitter ops in its own order (on the samples that draw them), then grayscale. The samples are
    chosen where the parameters live (the host, in training), so a GPU never has to report back."""
    x = x.clone()
    factors = (params.brightness, params.contrast, params.saturation, params.hue)
    for step in range(4):
        for op_index, op in enumerate(_JITTER_OPS):
            chosen = (params.jitter & (params.order[:, step] == op_index)).nonzero().squeeze(1)
            if chosen.numel():
                rows = to_device(chosen, x.device)
                x[rows] = op(x[rows], to_device(factors[op_index][chosen], x.device))
    gray = to_device(params.grayscale, x.device).view(-1, 1, 1, 1)
    return torch.where(gray, grayscale(x).expand_as(x), x)


# -- rotation --------------------------------------------------------------------------------------
def sample_rotation_pair(n: int, num_angles: int, generator: torch.Generator,
                         device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Two distinct angle indices per sample: the first uniform, the second uniform among the rest."""
    first = torch.randint(num_angles, (n,), generator=generator, device=device)
    offset = torch.randint(1, num_angles, (n,), generator=generator, device=device)
    return first, (first + offset) % num_angles


def apply_rotation(x: torch.Tensor, quarter_turns: torch.Tensor) -> torch.Tensor:
    """Rotate each image by its own multiple of 90 degrees (counter-clockwise, as PIL's rotate)."""
    out = x.clone()
    for k in range(1, 4):
        chosen = (quarter_turns % 4 == k).nonzero().squeeze(1)
        if chosen.numel():
            rows = to_device(chosen, x.device)
            out[rows] = torch.rot90(x[rows], k, dims=(2, 3))
    return out


# -- pipelines -------------------------------------------------------------------------------------
def normalize(x: torch.Tensor) -> torch.Tensor:
    """The original's per-channel normalisation."""
    mean, std = _mean_std(x.dtype, x.device)
    return (x - mean) / std


@lru_cache(maxsize=None)
def _mean_std(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalisation constants [1, 3, 1, 1], made once per dtype and device (making a GPU tensor from Python
    numbers waits for the GPU)."""
    return (torch.tensor(NORMALIZE_MEAN, dtype=dtype, device=device).view(1, 3, 1, 1),
            torch.tensor(NORMALIZE_STD, dtype=dtype, device=device).view(1, 3, 1, 1))


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 [B, 3, H, W] -> float32 in [0, 1]."""
    return x.to(torch.float32).div_(255.0)


class PairAugmenter:
    """Makes the two DA views of a batch: rotation (distinct angles per view), crop, colour; normalised."""

    def __init__(self, names: Sequence[str], size: int) -> None:
        self.names = tuple(names)
        self.size = size
        unknown = [n for n in self.names if n not in AUGMENTATIONS]
        if unknown:
            raise ValueError(f"unknown augmentations {unknown}")

    def __call__(self, x1: torch.Tensor, x2: torch.Tensor,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``x1``, ``x2``: float images in [0, 1] of side ``size`` (the same images for DA); the parameters are drawn
        on ``generator``'s device."""
        turns: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None)
        if "rotation" in self.names:
            angles = AUGMENTATIONS["rotation"].angles
            a1, a2 = sample_rotation_pair(x1.shape[0], len(angles), generator, generator.device)
            quarter = torch.tensor([a // 90 for a in angles], device=generator.device)
            turns = (quarter[a1], quarter[a2])
        return (normalize(self.view(x1, generator, turns[0])), normalize(self.view(x2, generator, turns[1])))

    def view(self, x: torch.Tensor, generator: torch.Generator, quarter_turns: torch.Tensor | None) -> torch.Tensor:
        """One augmented view of float images in [0, 1] (not normalised)."""
        n, where = x.shape[0], generator.device
        if quarter_turns is not None:
            x = apply_rotation(x, quarter_turns)
        for name in self.names:
            spec = AUGMENTATIONS[name]
            if isinstance(spec, Crop):
                x = apply_crop(x, sample_crop(n, x.shape[2], x.shape[3], spec, generator, where), self.size,
                               mode=spec.interpolation)
            elif isinstance(spec, ColourDistortion):
                x = apply_colour(x, sample_colour(n, spec, generator, where))
        return x
