"""The paper's data augmentations (DA) as data: parameters only, no torch.

``causal3dident.dataset`` builds per-sample torchvision v2 pipelines from these, and the
benchmark builds batched per-sample tensor versions; both read the numbers from here.
Source: ssl_identifiability (von Kügelgen et al., 2021), see docs and the spec.
"""

from __future__ import annotations

from dataclasses import dataclass

NORMALIZE_MEAN = (0.4327, 0.2689, 0.2839)
NORMALIZE_STD = (0.1201, 0.1457, 0.1082)


@dataclass(frozen=True)
class Crop:
    """RandomResizedCrop back to the input size, then a horizontal flip with probability ``flip_p``."""

    scale: tuple[float, float]
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    interpolation: str = "bicubic"


@dataclass(frozen=True)
class ColourDistortion:
    """ColorJitter(b, c, s, h) applied with probability ``p``, then RandomGrayscale(``grayscale_p``)."""

    brightness: float = 0.8
    contrast: float = 0.8
    saturation: float = 0.8
    hue: float = 0.2
    p: float = 0.8
    grayscale_p: float = 0.2


@dataclass(frozen=True)
class Rotation:
    """The two views get two distinct angles drawn from ``angles`` (a pair-level augmentation)."""

    angles: tuple[int, ...] = (0, 90, 180, 270)


CROP_LARGE = Crop(scale=(0.8, 1.0))
CROP_SMALL = Crop(scale=(0.08, 1.0))
COLOUR = ColourDistortion()
ROTATION = Rotation()

AUGMENTATIONS: dict[str, Crop | ColourDistortion | Rotation] = {
    "crop_large": CROP_LARGE,
    "crop_small": CROP_SMALL,
    "colour": COLOUR,
    "rotation": ROTATION,
}
"""Single augmentations by name."""

DA_SETTINGS: dict[str, tuple[str, ...]] = {
    "colour": ("colour",),
    "crop_large": ("crop_large",),
    "crop_small": ("crop_small",),
    "crop_large_colour": ("crop_large", "colour"),
    "crop_small_colour": ("crop_small", "colour"),
    "rotation": ("rotation",),
    "rotation_colour": ("rotation", "colour"),
    "rotation_crop_large": ("rotation", "crop_large"),
    "rotation_crop_small": ("rotation", "crop_small"),
    "rotation_crop_large_colour": ("rotation", "crop_large", "colour"),
    "rotation_crop_small_colour": ("rotation", "crop_small", "colour"),
}
"""DA settings of Tab. 1 and Tab. 6 by name -> augmentations applied in this order
(rotation first, then crop, then colour, as SimCLR composes geometry before colour)."""
