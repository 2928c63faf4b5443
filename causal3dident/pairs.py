"""Positive pairs: the paper's data augmentations (DA) and latent-transformation (LT) pair modes.

A ``pairs=`` string names one setting:

- a DA setting (a key of ``augmentations.DA_SETTINGS``: ``"colour"``, ``"crop_large"``,
  ``"rotation_crop_small_colour"``, ...): both views are augmentations of the anchor image, with
  torchvision v2 transforms and per-sample random parameters; ``rotation`` gives the two views two
  distinct angles out of {0, 90, 180, 270};
- ``"exact:<lt>"``, or a bare LT name (``"hues"``, ``"positions+hues"``, ...): the second view is the
  rendered z~ stored in the file at ``/pairs/<lt>/images``;
- ``"nearest:<lt>"``: the paper's method: draw z~ from the LT and take the nearest image of the same
  class in latent space (never the anchor). z~ is a function of (seed, epoch, index) only; ``NearestPairs``
  makes them, for the dataset and the benchmark alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import augmentations as aug
from . import noise
from .distributions import truncnorm_ppf
from .errors import ConfigError
from .transformations import LatentTransformation

if TYPE_CHECKING:
    from .neighbours import NeighbourIndex

MODES = ("da", "exact", "nearest")
Z_TILDE_STREAM = "pairs/nearest"
NEAREST_VERSION = 2
"""The nearest-pair scheme (z~ noise, search). 1: the dataset drew z~ from one SeedSequence per index, the
benchmark from ``lt.apply(seed=seed * 1_000_003 + epoch)``; 2: one counter-based scheme for both."""


@dataclass(frozen=True)
class PairSpec:
    """A parsed ``pairs=`` setting: its mode, and the DA setting name or the LT."""

    mode: str
    name: str
    lt: LatentTransformation | None = None

    def __str__(self) -> str:
        return self.name if self.mode == "da" else f"{self.mode}:{self.name}"


def parse_pairs(pairs: str | None) -> PairSpec | None:
    """``None``, a DA setting name, ``'exact:<lt>'`` / ``'<lt>'``, or ``'nearest:<lt>'``."""
    if pairs is None:
        return None
    if not isinstance(pairs, str):
        raise ConfigError(f"pairs must be a string such as 'colour', 'hues' or 'nearest:hues', got {pairs!r}")
    mode, sep, name = pairs.strip().partition(":")
    if not sep:
        mode, name = ("da", mode) if mode in aug.DA_SETTINGS else ("exact", mode)
    if mode not in MODES:
        raise ConfigError(f"unknown pair mode {mode!r} in {pairs!r}; use {', '.join(m + ':' for m in MODES)} "
                          f"or a bare DA/LT name")
    if mode == "da":
        if name not in aug.DA_SETTINGS:
            raise ConfigError(f"unknown DA setting {name!r}; choose one of {', '.join(aug.DA_SETTINGS)}")
        return PairSpec("da", name)
    try:
        lt = LatentTransformation.parse(name)
    except ConfigError as exc:
        raise ConfigError(f"{exc}; DA settings are {', '.join(aug.DA_SETTINGS)}") from None
    return PairSpec(mode, lt.name, lt)


# -- DA --------------------------------------------------------------------------------------------
class DAPair:
    """Two independently augmented views of one image, as in ssl_identifiability's training code."""

    def __init__(self, setting: str) -> None:
        from torchvision.transforms import v2

        self.setting = setting
        names = aug.DA_SETTINGS[setting]
        self.rotation = aug.ROTATION if "rotation" in names else None
        steps: list[Callable[[Any], Any]] = []
        for name in names:
            params = aug.AUGMENTATIONS[name]
            if isinstance(params, aug.Crop):
                steps.append(_RandomResizedCropSameSize(params))
                steps.append(v2.RandomHorizontalFlip(params.flip_p))
            elif isinstance(params, aug.ColourDistortion):
                jitter = v2.ColorJitter(params.brightness, params.contrast, params.saturation, params.hue)
                steps.append(v2.RandomApply([jitter], p=params.p))
                steps.append(v2.RandomGrayscale(params.grayscale_p))
        self.view_transform = v2.Compose(steps) if steps else None

    def __call__(self, image: Any) -> tuple[Any, Any]:
        """(view1, view2) of ``image`` (PIL image or [C, H, W] tensor), fresh random parameters per call."""
        views = [image, image]
        if self.rotation is not None:
            import torch

            first, second = torch.randperm(len(self.rotation.angles))[:2].tolist()
            views = [rotate(image, self.rotation.angles[first]), rotate(image, self.rotation.angles[second])]
        if self.view_transform is not None:
            views = [self.view_transform(v) for v in views]
        return views[0], views[1]

    def __repr__(self) -> str:
        rotation = f"rotation={self.rotation.angles} (two distinct), " if self.rotation else ""
        return f"DAPair({self.setting!r}, {rotation}per view: {self.view_transform!r})"


class _RandomResizedCropSameSize:
    """RandomResizedCrop back to the image's own size (the paper crops 224 px images to 224 px)."""

    def __init__(self, params: aug.Crop) -> None:
        from torchvision.transforms import InterpolationMode

        self.params = params
        self.interpolation = InterpolationMode(params.interpolation)
        self._crops: dict[tuple[int, int], Callable[[Any], Any]] = {}  # one transform per image size

    def __call__(self, image: Any) -> Any:
        from torchvision.transforms import v2

        size = tuple(v2.functional.get_size(image))
        if size not in self._crops:
            self._crops[size] = v2.RandomResizedCrop(size, scale=self.params.scale, ratio=self.params.ratio,
                                                     interpolation=self.interpolation, antialias=True)
        return self._crops[size](image)

    def __repr__(self) -> str:
        p = self.params
        return f"RandomResizedCrop(size=input size, scale={p.scale}, ratio={p.ratio}, {p.interpolation})"


def rotate(image: Any, angle: int) -> Any:
    """Rotate a PIL image or a [..., H, W] tensor counter-clockwise by a multiple of 90 degrees, exactly."""
    if angle % 90:
        raise ValueError(f"rotate takes multiples of 90 degrees, got {angle}")
    k = (angle // 90) % 4
    if k == 0:
        return image
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.rotate(90 * k)  # PIL rotates multiples of 90 degrees by transposing: exact
    import torch
    from torchvision import tv_tensors

    out = torch.rot90(image, k, dims=(-2, -1))
    return tv_tensors.wrap(out, like=image) if isinstance(image, tv_tensors.TVTensor) else out


# -- LT: nearest -----------------------------------------------------------------------------------
def sample_z_tilde(lt: LatentTransformation, latents: np.ndarray, indices: np.ndarray, *, seed: int,
                   epoch: int) -> np.ndarray:
    """z~ of anchors ``indices`` with ``latents`` [B, 10]: each chosen z_j ~ TruncNormal(z_j, sigma, [-1, 1]).

    The uniforms are counter-based (``noise.uniforms_at``, stream ``pairs/nearest/<lt>/<sigma>``, key
    ``(epoch,)``), so z~ depends on (seed, LT, epoch, index) only, whichever worker or batch draws it,
    and a whole pool's z~ costs one vectorised draw.
    """
    if lt.mode != "independent":
        raise ConfigError(f"nearest pairs use the paper's independent LT; {lt.name!r} is {lt.mode}")
    if int(epoch) < 0:
        raise ConfigError(f"epoch must be >= 0, got {epoch}")
    latents = np.asarray(latents, dtype=np.float32)
    u = noise.uniforms_at(seed, f"{Z_TILDE_STREAM}/{lt.name}/{lt.sigma!r}", indices, len(lt.columns),
                          key=(int(epoch),))
    out = latents.copy()
    for j, col in enumerate(lt.columns):
        out[:, col] = truncnorm_ppf(u[j], latents[:, col].astype(np.float64), lt.sigma, -1.0, 1.0)
    return out


class NearestPairs:
    """The paper's nearest LT pairs over one pool of anchors: per epoch, z~ of every anchor and its nearest
    same-class pool sample (L2 on raw latents, never itself).

    The one implementation behind ``Causal3DIdent(pairs='nearest:<lt>')`` and the benchmark's
    ``lt_pairs: nearest``: anchor i's z~ and partner depend on (seed, LT, epoch, i) and the pool only, so
    both give the same pairs for the same seed and epoch. ``index``: a prebuilt ``NeighbourIndex`` of the pool.
    """

    def __init__(self, lt: LatentTransformation, latents: np.ndarray, classes: np.ndarray, seed: int,
                 index: NeighbourIndex | None = None) -> None:
        if lt.mode != "independent":
            raise ConfigError(f"nearest pairs use the paper's independent LT; {lt.name!r} is {lt.mode}")
        self.lt, self.seed = lt, int(seed)
        self.latents = np.asarray(latents, dtype=np.float32)
        self.classes = np.asarray(classes, dtype=np.int64)
        self._index = index
        self._cache: tuple[int, np.ndarray] | None = None

    @property
    def index(self) -> NeighbourIndex:
        """The pool's exact per-class neighbour index, built on first use."""
        if self._index is None:
            from .neighbours import NeighbourIndex

            self._index = NeighbourIndex.build(self.latents, self.classes)
        return self._index

    def z_tilde(self, epoch: int, indices: np.ndarray | None = None) -> np.ndarray:
        """z~ [B, 10] of the anchors ``indices`` (default: all) in ``epoch``."""
        idx = np.arange(len(self.classes)) if indices is None else np.asarray(indices, dtype=np.int64)
        return sample_z_tilde(self.lt, self.latents[idx], idx, seed=self.seed, epoch=epoch)

    def pairs(self, epoch: int, indices: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(z~ [B, 10], partner pool index [B]) of the anchors ``indices`` (default: all) in ``epoch``."""
        idx = np.arange(len(self.classes)) if indices is None else np.asarray(indices, dtype=np.int64)
        z = self.z_tilde(epoch, idx)
        return z, self.index.query(z, self.classes[idx], exclude=idx)

    def partners(self, epoch: int) -> np.ndarray:
        """Partner index of every anchor in ``epoch`` (one vectorised draw and search; the last epoch is kept)."""
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, self.pairs(epoch)[1])
        return self._cache[1]

    def describe(self) -> dict[str, Any]:
        """What made the pairs, for run records: the scheme's version, the LT, seed, pool size, search backend."""
        return {"implementation": "causal3dident.pairs.NearestPairs", "version": NEAREST_VERSION,
                "lt": self.lt.to_dict(), "seed": self.seed, "pool": len(self.classes), "backend": self.index.backend}


def recorded_transformation(config: Mapping[str, Any], name: str) -> LatentTransformation:
    """The independent LT ``name`` as a dataset's config records it (its sigma), else the paper's."""
    from .generate import transformations_from_config

    lt = LatentTransformation.parse(name)
    for recorded in transformations_from_config(config):
        if recorded.name == lt.name and recorded.mode == "independent":
            return recorded
    return lt
