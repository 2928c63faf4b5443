"""Windows of consecutive frames of a rendered sequence file, as a torchvision dataset.

Item i is frames i .. i + seq_len - 1 with their latents and the intervention targets of the steps between
them, as CITRIS's ``Causal3DDataset`` returns them in its sequence mode (``imgs[i:i+seq_len]``,
``targets[i:i+seq_len-1]``, ``latents[i:i+seq_len]``), but read from our HDF5 file, images checked against
their recorded checksums.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.datasets import VisionDataset

from . import store
from .dataset import open_source
from .errors import ConfigError
from .temporal_store import read_sequence

IMAGE_FORMATS = ("tensor", "pil")


class TemporalCausal3DIdent(VisionDataset):
    """Sequences of a file written by ``c3di latents --preset temporal_causal3dident`` and rendered.

    Args:
        root: the HDF5 file, or a folder with ``<split>.h5``.
        split: the split whose file to read when ``root`` is a folder.
        seq_len: frames per item (>= 1); items overlap (stride 1), as CITRIS's loader.
        transform: applied to each frame.
        target_transform: applied to the latents [seq_len, 10].
        image_format: ``"tensor"`` (frames stacked, uint8 [seq_len, 3, H, W], unless ``transform`` returns
            something else: then a list) or ``"pil"`` (a list of PIL images).
        in_memory: read every image at construction.

    Item: ``(frames, latents, targets)``: latents float32 [seq_len, 10] in the preset's units (CITRIS's:
    positions in [-2, 2], radians), targets uint8 [seq_len - 1, T] (row k: the step i+k -> i+k+1; column
    names in ``target_names``). ``classes`` gives each frame's class (this package's labels).
    """

    def __init__(self, root: str | os.PathLike[str], split: str = "train", seq_len: int = 2,
                 transform: Callable | None = None, target_transform: Callable | None = None, *,
                 image_format: str = "tensor", in_memory: bool = False, verify_checksums: bool = True) -> None:
        super().__init__(root, transform=transform, target_transform=target_transform)
        if image_format not in IMAGE_FORMATS:
            raise ConfigError(f"image_format must be one of {', '.join(IMAGE_FORMATS)}, got {image_format!r}")
        self.image_format = image_format
        self.source = open_source(Path(os.path.expanduser(root)), split, in_memory, verify_checksums)
        try:
            with store.open_dataset(self.source.path) as f:
                sequence = read_sequence(f)
            n = len(sequence["latents"])
            if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)) or not 1 <= seq_len <= n:
                raise ConfigError(f"seq_len must be an integer in 1..{n} (the frames of {self.source.path}), "
                                  f"got {seq_len!r}")
            self.seq_len = int(seq_len)
            self.latents: np.ndarray = sequence["latents"].astype(np.float32)
            self.intervention_targets: np.ndarray = sequence["targets"]
            self.target_names: list[str] = list(sequence["target_names"])
            self.classes: np.ndarray = self.source.classes
            self.source.prepare("images")
        finally:
            self.source.close()  # workers open their own handles

    def __len__(self) -> int:
        return len(self.latents) - self.seq_len + 1

    def __getitem__(self, index: int) -> tuple[Any, torch.Tensor, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} sequences")
        i = index % len(self)
        pixels = self.source.read(np.arange(i, i + self.seq_len))
        frames: list[Any] = [Image.fromarray(p) if self.image_format == "pil" else torch.from_numpy(p).permute(2, 0, 1)
                             for p in pixels]
        if self.transform is not None:
            frames = [self.transform(x) for x in frames]
        out: Any = frames
        if self.image_format == "tensor" and all(isinstance(x, torch.Tensor) for x in frames):
            out = torch.stack(frames)
        latents: Any = torch.from_numpy(self.latents[i:i + self.seq_len].copy())
        if self.target_transform is not None:
            latents = self.target_transform(latents)
        # row t of the file's targets: the step t-1 -> t, so the steps between frames i .. i+L-1 are rows i+1 .. i+L-1
        targets = torch.from_numpy(self.intervention_targets[i + 1:i + self.seq_len].copy())
        return out, latents, targets

    def extra_repr(self) -> str:
        return f"Frames: {len(self.latents)}, seq_len: {self.seq_len}, source: {self.source.description}"
