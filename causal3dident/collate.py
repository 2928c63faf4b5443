"""``channels_last_collate``: the DataLoader's default collate, with image batches kept channels-last in memory.

``Causal3DIdent(..., image_format="tensor")`` returns [3, H, W] images that are views of the decoded
[B, H, W, 3] pixels. ``default_collate`` stacks them into a contiguous [B, 3, H, W] batch, a transposing
copy that costs about as much as decoding LZ4. This collate returns the same [B, 3, H, W] values in
``torch.channels_last`` memory format, the layout convolutions on GPUs (and oneDNN on CPUs) prefer; call
``.contiguous()`` for the other layout. Everything that is not such an image is collated exactly as
``default_collate`` does, with one exception that changes no value: samples still lying back to back in
a ``batch_buffer`` (as ``Causal3DIdent.__getitems__`` returns untransformed images and latents) are
batched without a copy, and a worker then sends the whole batch to the main process as one shared-memory
file instead of one per tensor, which at 64 px costs more than decoding the images.
"""

from __future__ import annotations

import math
import os
import weakref
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import get_worker_info
from torch.utils.data._utils.collate import collate, collate_tensor_fn, default_collate_fn_map

__all__ = ["batch_buffer", "channels_last_collate"]

_ALIGN = 64
_BUFFERS: weakref.WeakSet[torch.UntypedStorage] = weakref.WeakSet()  # storages made by batch_buffer
_collating_pid = -1  # the process in which channels_last_collate last ran


def channels_last_collate(batch: list[Any]) -> Any:
    """``default_collate``, except that [C, H, W] images stored channels-last become one channels-last
    [B, C, H, W] batch (in shared memory inside DataLoader workers, as ``default_collate`` does), and
    samples lying back to back in a ``batch_buffer`` become a view of it, with no copy."""
    global _collating_pid
    _collating_pid = os.getpid()
    return collate(batch, collate_fn_map=_COLLATE_FN_MAP)


def batch_buffer(fields: Sequence[tuple[Sequence[int], torch.dtype]]) -> list[torch.Tensor]:
    """One new tensor per (shape, dtype) in ``fields``, all in one buffer.

    A dataset fills the tensors with a batch's values and returns samples that are views of them (row i
    for sample i); ``channels_last_collate`` then batches each field without copying it. Inside a DataLoader
    worker where ``channels_last_collate`` has run, the buffer is shared memory, so the batch reaches the
    main process as one file, whatever its tensor count; elsewhere (the default collate copies every
    field anyway) it is ordinary memory, which is cheaper to allocate.
    """
    if not fields:  # nothing to hold (PIL images, int targets): no buffer
        return []
    offsets, total = [], 0
    for shape, dtype in fields:
        offsets.append(total)
        total += -(-math.prod(shape) * dtype.itemsize // _ALIGN) * _ALIGN
    if _collating_pid == os.getpid() and get_worker_info() is not None:
        storage = torch.UntypedStorage._new_shared(max(total, 1))  # mmap needs a byte
    else:
        storage = torch.UntypedStorage(max(total, 1))
    _BUFFERS.add(storage)
    return [torch.empty(0, dtype=dtype).set_(storage, offset // dtype.itemsize, tuple(shape))
            for (shape, dtype), offset in zip(fields, offsets)]


def _is_channels_last_image(tensor: torch.Tensor) -> bool:
    return tensor.dim() == 3 and tensor.as_subclass(torch.Tensor).permute(1, 2, 0).is_contiguous()


def _collate_tensors(batch: list[torch.Tensor], *, collate_fn_map: dict | None = None) -> torch.Tensor:
    whole = _view_of_buffer(batch)
    if whole is not None:
        return whole
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


def _view_of_buffer(batch: list[torch.Tensor]) -> torch.Tensor | None:
    """The [B, ...] batch as a view of the ``batch_buffer`` its samples fill back to back, in order, or None.

    Applies when the samples are dense (contiguous, or channels-last images), alike in shape, strides and
    dtype, and sample i starts i sample-sizes after sample 0 in one buffer that ``batch_buffer`` made (so
    the batch aliases nothing but its own samples).
    """
    first = torch.Tensor.as_subclass(batch[0], torch.Tensor)
    storage = first.untyped_storage()
    if storage not in _BUFFERS or not (first.is_contiguous() or _is_channels_last_image(first)):
        return None
    layout, start, size = (first.shape, first.stride(), first.dtype), first.data_ptr(), first.nbytes
    with torch._C.DisableTorchFunctionSubclass():  # tv_tensors' __torch_function__ would cost 1 us a call
        if any(sample.data_ptr() != start + i * size or (sample.shape, sample.stride(), sample.dtype) != layout
               for i, sample in enumerate(batch)):
            return None
    return torch.empty(0, dtype=first.dtype).set_(storage, first.storage_offset(), (len(batch), *first.shape),
                                                  (first.numel(), *first.stride()))


_COLLATE_FN_MAP = {**default_collate_fn_map, torch.Tensor: _collate_tensors}
