"""Causal3DIdent: generator, loader and benchmark for the Causal3DIdent dataset.

The core (latents, SCM, HDF5 format) needs numpy, scipy and h5py only; the torchvision dataset
``Causal3DIdent``, ``channels_last_collate``, ``batch_buffer`` and ``EpochSampler`` are imported on first
use, so loading latents never imports torch or bpy.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from .errors import Causal3DIdentError, ConfigError, DamagedFileError, DatasetFileError, OutputExistsError
from .latents import CLASS_NAMES, LATENT_GROUPS, LATENT_NAMES, to_scene_units
from .scm import SCM, Intervention, load_preset, preset_names
from .transformations import LatentTransformation, parse_transformations

__all__ = [
    "CLASS_NAMES", "LATENT_GROUPS", "LATENT_NAMES", "SCM", "Causal3DIdent", "Causal3DIdentError", "ConfigError",
    "DamagedFileError", "DatasetFileError", "EpochSampler", "Intervention", "LatentTransformation", "Multimodal3DIdent",
    "OutputExistsError", "batch_buffer",
    "channels_last_collate", "load_preset", "parse_transformations", "preset_names", "to_scene_units",
]


def __getattr__(name: str) -> Any:
    if name == "Causal3DIdent":
        from .dataset import Causal3DIdent

        return Causal3DIdent
    if name == "Multimodal3DIdent":
        from .multimodal_dataset import Multimodal3DIdent

        return Multimodal3DIdent
    if name in ("channels_last_collate", "batch_buffer"):
        from . import collate

        return getattr(collate, name)
    if name == "EpochSampler":
        from .sampler import EpochSampler

        return EpochSampler
    raise AttributeError(f"module 'causal3dident' has no attribute {name!r}")
