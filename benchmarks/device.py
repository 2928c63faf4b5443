"""Where the benchmark keeps its images on a GPU, and how host tensors reach the GPU without stalling it.

The training images are uint8 [N, 3, R, R] (250,000 anchors at 224 px: 37.6 GB, as much again for one set of LT
views). On a GPU each array stays in device memory when it fits beside what training itself needs
(:func:`plan_placement`, with :func:`training_reserve_bytes`); otherwise it stays in ordinary host memory and each
batch's rows are gathered into pinned memory (:func:`gather_pinned`) and copied without blocking. On the CPU nothing
moves and every function here is the identity.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

GIB = 2 ** 30
CONTEXT_BYTES = 4 * GIB
"""Kept free beyond the estimate: the CUDA context, cuDNN's workspaces and the caching allocator's slack."""
AUGMENT_COPIES = 8
"""Float32 copies of a view batch alive at once while the augmentations run (crop passes, colour ops, normalising)."""


def plan_placement(sizes: Sequence[int], free_bytes: int, reserve_bytes: int) -> list[bool]:
    """For arrays of ``sizes`` bytes, in order of preference, whether each is kept in device memory: greedily, while
    ``reserve_bytes`` of the ``free_bytes`` stay free for training."""
    budget = free_bytes - reserve_bytes
    placed = []
    for size in sizes:
        fits = 0 <= size <= budget
        placed.append(fits)
        if fits:
            budget -= size
    return placed


def saved_activation_bytes(model: nn.Module, resolution: int, images: int) -> int:
    """Bytes autograd keeps for the backward pass of ``images`` images in one float32 training forward of ``model``.

    Measured on a CPU copy of the model with two images (parameters excluded) and scaled; bf16 autocast saves less, so
    this bounds what a GPU step needs. The model itself is not touched, nor the global random state.
    """
    probe = copy.deepcopy(model).to("cpu").train()
    params = {t.untyped_storage().data_ptr() for t in (*probe.parameters(), *probe.buffers())}
    seen: set[int] = set()
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params and ptr not in seen:
            seen.add(ptr)
            total += t.untyped_storage().nbytes()
        return t

    x = torch.zeros(2, 3, resolution, resolution).contiguous(memory_format=torch.channels_last)
    with torch.random.fork_rng(devices=[]), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        probe(x)
    return total * images // 2


def training_reserve_bytes(model: nn.Module, resolution: int, batch_size: int) -> int:
    """Device memory one training step needs beyond the images: the float32 saved activations of both views and half
    as much again (the backward pass's transients; bf16 autocast saves about half), the augmentations' float views,
    and ``CONTEXT_BYTES``. For the paper tier (ResNet-18, 2 x 512 views at 224 px) about 43 GB."""
    views = 2 * batch_size
    activations = saved_activation_bytes(model, resolution, views)
    return activations * 3 // 2 + views * 3 * resolution * resolution * 4 * AUGMENT_COPIES + CONTEXT_BYTES


def resolve(device: torch.device) -> torch.device:
    """``device`` with its index: ``cuda`` becomes ``cuda:<current>``, so tensors' devices compare equal to it."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` on ``device``: as it is when it is there; a host tensor goes to a GPU through pinned memory, without
    blocking the host (a fresh pinned block: the caching host allocator reuses it only once the copy is done)."""
    if t.device == device:
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        return (t if t.is_pinned() else t.pin_memory()).to(device, non_blocking=True)
    return t.to(device)


def gather_pinned(images: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``images[index]`` gathered on the host into a fresh pinned block, ready for a non-blocking copy to a GPU."""
    out = torch.empty((len(index), *images.shape[1:]), dtype=images.dtype, pin_memory=True)
    return torch.index_select(images, 0, index, out=out)
