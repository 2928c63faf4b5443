"""The benchmark's batch order as a DataLoader sampler, so the dataset can replay which pairs trained together.

The benchmark (``c3di bench``) shuffles its training pool afresh every epoch with
``torch.randperm(n)`` from a generator seeded by ``noise.derived_seed(seed, 1, epoch)`` and cuts
the permutation into consecutive batches, dropping the incomplete last one; step ``s`` is batch
``s % (n // batch_size)`` of epoch ``s // (n // batch_size)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from .noise import derived_seed

ORDER_PURPOSE = 1
"""The second part of the seed of the per-epoch permutation (``derived_seed(seed, 1, epoch)``)."""


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The benchmark's order of ``n`` anchors in ``epoch`` for run seed ``seed``: a permutation (int64 [n])."""
    generator = torch.Generator().manual_seed(derived_seed(seed, ORDER_PURPOSE, epoch))
    return torch.randperm(n, generator=generator)


class EpochSampler(Sampler[int]):
    """Yields ``epoch_order(n, seed, epoch)``; call ``set_epoch`` before each epoch (as ``DistributedSampler``).

    With ``DataLoader(dataset, batch_size=B, sampler=EpochSampler(n, seed), drop_last=True)`` the k-th batch of
    epoch e holds the anchors of benchmark step ``e * (n // B) + k`` of a run with seed ``seed`` and batch B.
    """

    def __init__(self, n: int, seed: int) -> None:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self.n, self.seed, self.epoch = int(n), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        return iter(epoch_order(self.n, self.seed, self.epoch).tolist())

    def __len__(self) -> int:
        return self.n
