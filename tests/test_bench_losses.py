"""The benchmark's losses against direct, loop-by-loop implementations in float64."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from causal3dident.benchmarks.losses import barlow_twins, infonce


def direct_infonce(z1: np.ndarray, z2: np.ndarray, tau: float) -> float:
    """Each of the 2n embeddings against its partner among the other 2n - 1, averaged."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    n = len(z1)
    total = 0.0
    for i in range(2 * n):
        partner = (i + n) % (2 * n)
        sims = {j: z[i] @ z[j] / (np.linalg.norm(z[i]) * np.linalg.norm(z[j])) / tau for j in range(2 * n) if j != i}
        total += -sims[partner] + math.log(sum(math.exp(s) for s in sims.values()))
    return total / (2 * n)


def direct_barlow(z1: np.ndarray, z2: np.ndarray, lam: float) -> float:
    n, d = z1.shape
    a = (z1 - z1.mean(0)) / z1.std(0)
    b = (z2 - z2.mean(0)) / z2.std(0)
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(a[k, i] * b[k, j] for k in range(n)) / n
            loss += (1 - c) ** 2 if i == j else lam * c ** 2
    return loss


@pytest.mark.parametrize("n, d, tau", [(2, 3, 1.0), (5, 8, 1.0), (7, 4, 0.1), (6, 8, 0.05)])
def test_infonce_matches_direct(n, d, tau):
    rng = np.random.default_rng(n * 100 + d)
    z1, z2 = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    ours = infonce(torch.tensor(z1), torch.tensor(z2), tau).item()
    assert ours == pytest.approx(direct_infonce(z1, z2, tau), rel=1e-5)


def test_infonce_is_stable_and_at_chance_for_identical_directions():
    big = torch.full((4, 8), 1e6)
    loss = infonce(big, big, temperature=0.01)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(math.log(7), rel=1e-4)  # all 2n - 1 candidates look alike


def test_infonce_gradient_is_finite_at_low_temperature():
    z1 = torch.randn(16, 8, requires_grad=True)
    infonce(z1, z1.detach() + 0.01 * torch.randn(16, 8), temperature=0.01).backward()
    assert torch.isfinite(z1.grad).all()


def test_barlow_twins_matches_direct():
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    ours = barlow_twins(torch.tensor(z1), torch.tensor(z2), 0.3).item()
    assert ours == pytest.approx(direct_barlow(z1, z2, 0.3), rel=1e-4)
