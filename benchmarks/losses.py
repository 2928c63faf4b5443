"""Self-supervised losses on the two views' embeddings [B, d]: InfoNCE (SimCLR) and Barlow Twins."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def infonce(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """NT-Xent with cosine similarity, as the original code: each of the 2B embeddings must pick its
    partner among the other 2B - 1; self-similarities are masked; log-softmax keeps it stable."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1, eps=1e-8)
    logits = (z @ z.T) / temperature
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    # made on z's device: a host tensor copied to a GPU here would make every step wait for the GPU
    targets = torch.cat([torch.arange(n, 2 * n, device=z.device), torch.arange(0, n, device=z.device)])
    return F.cross_entropy(logits, targets)


def barlow_twins(z1: torch.Tensor, z2: torch.Tensor, off_diagonal_weight: float = 0.0051) -> torch.Tensor:
    """Barlow Twins (Zbontar et al., 2021): the views' cross-correlation matrix pushed to identity."""
    n = z1.shape[0]
    a = (z1.float() - z1.float().mean(0)) / (z1.float().std(0, unbiased=False) + 1e-6)
    b = (z2.float() - z2.float().mean(0)) / (z2.float().std(0, unbiased=False) + 1e-6)
    c = a.T @ b / n
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = (c - torch.diag_embed(torch.diagonal(c))).pow(2).sum()
    return on + off_diagonal_weight * off
