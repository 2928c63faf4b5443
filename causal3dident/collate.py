"""``channels_last_collate``: the DataLoader's default collate, with image batches kept channels-last in memory.

``Causal3DIdent(..., image_format="tensor")`` returns [3, H, W] images that are views of the decoded
[H, W, 3] pixels. ``default_collate`` stacks them into a contiguous [B, 3, H, W] batch, a transposing
copy that costs about as much as decoding LZ4 at 224 px. This collate copies the pixels as they lie
(a plain copy) and returns the same [B, 3, H, W] values in ``torch.channels_last`` memory format, the
layout convolutions on GPUs (and oneDNN on CPUs) prefer; call ``.contiguous()`` for the other layout.
Everything that is not such an image is collated exactly as ``default_collate`` does.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import get_worker_info
from torch.utils.data._utils.collate import collate, collate_tensor_fn, default_collate_fn_map

__all__ = ["channels_last_collate"]


def channels_last_collate(batch: list[Any]) -> Any:
    """``default_collate``, except that [C, H, W] images stored channels-last become one channels-last
    [B, C, H, W] batch (in shared memory inside DataLoader workers, as ``default_collate`` does)."""
    return collate(batch, collate_fn_map=_COLLATE_FN_MAP)


def _is_channels_last_image(tensor: torch.Tensor) -> bool:
    return tensor.dim() == 3 and tensor.as_subclass(torch.Tensor).permute(1, 2, 0).is_contiguous()


def _collate_tensors(batch: list[torch.Tensor], *, collate_fn_map: dict | None = None) -> torch.Tensor:
    first = batch[0]
    if not _is_channels_last_image(first):
        return collate_tensor_fn(batch, collate_fn_map=collate_fn_map)
    channels, height, width = first.shape
    if get_worker_info() is not None:  # write the batch straight into shared memory, as default_collate does
        storage = first.untyped_storage()._new_shared(first.numel() * first.element_size() * len(batch))
        pixels = torch.empty(0, dtype=first.dtype).set_(storage).view(len(batch), height, width, channels)
    else:
        pixels = torch.empty(len(batch), height, width, channels, dtype=first.dtype)
    return torch.stack(batch, 0, out=pixels.permute(0, 3, 1, 2))  # strides as out's: a plain copy per image


_COLLATE_FN_MAP = {**default_collate_fn_map, torch.Tensor: _collate_tensors}
