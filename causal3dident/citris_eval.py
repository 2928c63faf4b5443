"""CITRIS's correlation metrics: R^2 and Spearman matrices between groups of learned latents and the true causal
variables, and their ``diag`` and ``sep`` (mean max off-diagonal) summaries, for any encoder's outputs.

Re-implemented from ``CorrelationMetricsLogCallback`` (models/shared/callbacks.py) and ``CausalEncoder``
(models/shared/causal_encoder.py) of github.com/phlippe/CITRIS: the encodings are standardised, split 50/50
(``random_split`` with generator seed 42), and one small network (two tanh layers of 128, one head per causal
variable, AdamW at lr 4e-3, batches of 512) learns to predict every causal variable from each group's
latents (the others masked to 0, the mask appended). On the held-out half, R^2[g, v] = 1 - SS_res / SS_tot
of variable v predicted from group g (distances normalised as CITRIS: continuous / scale, angles in
half-turns, categories 0/1 errors) and Spearman[g, v] the rank correlation of prediction and truth
(angles: the mean over the sine and cosine). ``diag`` is the mean of the diagonal, ``sep`` the mean over
rows of the largest off-diagonal entry (CITRIS's ``max_off_diag``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from .errors import ConfigError

SPLIT_SEED = 42
"""CITRIS's generator seed of the 50/50 split."""


def _kind(info: str) -> tuple[str, float]:
    if info.startswith("continuous"):
        return "continuous", float(info.split("_")[-1])
    if info == "angle":
        return "angle", 0.0
    if info.startswith("categ"):
        return "categ", float(info.split("_")[-1])
    raise ConfigError(f"variable kind {info!r}: use continuous_<scale>, angle or categ_<classes> (CITRIS's VAR_INFO)")


def diag_sep(matrix: np.ndarray) -> tuple[float, float]:
    """(diag, sep) of a [groups, variables] matrix as CITRIS logs them: a matrix with one row more than columns
    loses its last row (the group of latents assigned to no variable) first; then it must be square."""
    values = np.asarray(matrix, dtype=np.float64)
    if values.ndim != 2:
        raise ConfigError(f"expected a [groups, variables] matrix, got shape {values.shape}")
    if values.shape[0] == values.shape[1] + 1:
        values = values[:-1]
    if values.shape[0] != values.shape[1]:
        raise ConfigError(f"diag and sep need one group per variable (and at most one extra); got {values.shape}")
    return float(np.diag(values).mean()), float((values - np.eye(values.shape[0]) * 10).max(axis=-1).mean())


def assignment_by_max_r2(r2: np.ndarray) -> np.ndarray:
    """CITRIS's grouping for baselines: each latent (row of an R^2 matrix from the identity assignment) joins the
    variable it predicts best; returns the one-hot assignment [latents, variables]."""
    r2 = np.asarray(r2)
    return np.eye(r2.shape[1], dtype=np.float32)[r2.argmax(axis=-1)]


def correlation_matrices(encodings: np.ndarray, latents: np.ndarray, var_info: Sequence[str],
                         assignment: np.ndarray | None = None, *, epochs: int = 100, seed: int = 0,
                         device: str = "cpu") -> dict[str, np.ndarray]:
    """R^2 and Spearman matrices [groups, variables] (see the module's docstring).

    encodings: float [N, D], any encoder's outputs; latents: [N, V] true causal variables (angles in radians,
    categories as integers); var_info: V kinds (``continuous_<scale>``, ``angle``, ``categ_<k>``);
    assignment: [D, G] latent -> group (default: the identity, one group per latent); epochs: passes of the
    prediction network (CITRIS: 100); seed: its initialisation and batch order.
    """
    import torch

    enc = torch.as_tensor(np.asarray(encodings, dtype=np.float32))
    lat = torch.as_tensor(np.asarray(latents, dtype=np.float32))
    kinds = [_kind(i) for i in var_info]
    if enc.ndim != 2 or lat.ndim != 2 or len(enc) != len(lat) or lat.shape[1] != len(kinds) or len(enc) < 4:
        raise ConfigError(f"encodings [N, D], latents [N, {len(kinds)}] with the same N >= 4 expected; got "
                          f"{tuple(enc.shape)} and {tuple(lat.shape)}")
    ta = torch.eye(enc.shape[1]) if assignment is None else torch.as_tensor(np.asarray(assignment, dtype=np.float32))
    if ta.ndim != 2 or ta.shape[0] != enc.shape[1]:
        raise ConfigError(f"assignment must be [latents={enc.shape[1]}, groups], got {tuple(ta.shape)}")
    enc = (enc - enc.mean(dim=0, keepdim=True)) / enc.std(dim=0, keepdim=True).clamp(min=1e-2)
    n_train = int(0.5 * len(enc))
    order = torch.randperm(len(enc), generator=torch.Generator().manual_seed(SPLIT_SEED))  # = random_split's
    train, test = order[:n_train], order[n_train:]
    torch.manual_seed(seed)
    net = _Predictor(2 * enc.shape[1], kinds).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=4e-3, weight_decay=0.0)
    batch_order = torch.Generator().manual_seed(seed)
    ta = ta.to(device)
    net.train()
    for _ in range(epochs):
        for batch in torch.randperm(n_train, generator=batch_order).split(512):
            idx = train[batch]
            inputs, targets = _prepare(enc[idx].to(device), ta, lat[idx].to(device))
            loss = sum(_losses(net(inputs), targets, kinds, training=True))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    net.eval()
    with torch.no_grad():
        inputs, targets = _prepare(enc[test].to(device), ta, lat[test].to(device), flatten=False)
        preds = [p.cpu() for p in net(inputs)]
    truth = lat[test]
    return {"r2": _r2(preds, truth, kinds), "spearman": _spearman(preds, truth, kinds)}


class _Predictor:
    """CITRIS's ``CausalEncoder(single_linear=True)``: Linear-tanh-Linear-tanh (128), one head per variable."""

    def __new__(cls, c_in: int, kinds: list[tuple[str, float]]) -> Any:
        import torch
        from torch import nn

        class TanhScaled(nn.Module):
            def __init__(self, scale: float) -> None:
                super().__init__()
                self.scale = scale

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return torch.tanh(x / self.scale) * self.scale

        class Predictor(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.encoder = nn.Sequential(nn.Linear(c_in, 128), nn.Tanh(), nn.Linear(128, 128), nn.Tanh())
                heads = []
                for kind, size in kinds:
                    if kind == "continuous":
                        heads.append(nn.Sequential(nn.Linear(128, 1), TanhScaled(size)))
                    else:
                        heads.append(nn.Linear(128, 2 if kind == "angle" else int(size)))
                self.heads = nn.ModuleList(heads)

            def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
                z = self.encoder(x)
                return [head(z) for head in self.heads]

        return Predictor()


def _prepare(enc: Any, ta: Any, lat: Any, flatten: bool = True) -> tuple[Any, Any]:
    """CITRIS's ``_prepare_input``: per group, the masked encodings and the mask; labels repeated per group."""
    import torch

    mask = ta[None].expand(enc.shape[0], -1, -1)
    inputs = torch.cat([enc[:, :, None] * mask, mask], dim=-2).permute(0, 2, 1)
    targets = lat[:, None].expand(-1, inputs.shape[1], -1)
    if flatten:
        return inputs.flatten(0, 1), targets.flatten(0, 1)
    return inputs, targets


def _losses(preds: list[Any], targets: Any, kinds: list[tuple[str, float]], training: bool) -> list[Any]:
    """CITRIS's training losses: MSE, 1 - cosine similarity (+ 0.1 (2 - |v|)^2 while training), cross-entropy."""
    import torch
    import torch.nn.functional as F

    out = []
    for i, ((kind, _), pred) in enumerate(zip(kinds, preds)):
        gt = targets[..., i]
        if kind == "continuous":
            out.append(F.mse_loss(pred.squeeze(-1), gt))
        elif kind == "angle":
            vec = torch.stack([torch.sin(gt), torch.cos(gt)], dim=-1)
            out.append((1 - F.cosine_similarity(pred, vec, dim=-1)).mean())
            if training:
                out.append((0.1 * (2 - pred.norm(dim=-1, p=2.0)) ** 2).mean())
        else:
            out.append(F.cross_entropy(pred, gt.long()))
    return out


def _norm_dist(kind: str, size: float, pred: Any, gt: Any) -> Any:
    """CITRIS's normalised distance (signed for continuous variables, as with ``keep_sign=True``; only squares
    are used)."""
    import torch
    import torch.nn.functional as F

    if kind == "continuous":
        return (pred.squeeze(-1) - gt) / size
    if kind == "angle":
        vec = torch.stack([torch.sin(gt), torch.cos(gt)], dim=-1)
        cos_sim = F.cosine_similarity(pred, vec, dim=-1)
        dist = torch.where(cos_sim > (1 - 1e-7), torch.zeros_like(cos_sim),
                           torch.acos(cos_sim.clamp(min=-1 + 1e-7, max=1 - 1e-7)))
        return dist / np.pi
    return (gt.long() != pred.argmax(dim=-1)).float()


def _r2(preds: list[Any], truth: Any, kinds: list[tuple[str, float]]) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    columns = []
    for i, ((kind, size), pred) in enumerate(zip(kinds, preds)):
        gt = truth[:, i]
        res = _norm_dist(kind, size, pred, gt[:, None].expand(-1, pred.shape[1]))  # [N, G]
        if kind == "continuous":
            base = gt.mean().expand(len(gt))[:, None]
        elif kind == "angle":
            mean = torch.atan2(torch.sin(gt).mean(), torch.cos(gt).mean())
            mean = torch.where(mean < 0.0, mean + 2 * np.pi, mean)
            base = torch.stack([torch.sin(mean), torch.cos(mean)]).expand(len(gt), 2)
        else:
            mode = torch.mode(gt.long()).values
            base = F.one_hot(mode, int(size)).float().expand(len(gt), -1)
        tot = _norm_dist(kind, size, base, gt)
        columns.append(1 - (res ** 2).mean(dim=0) / (tot ** 2).mean())
    return torch.stack(columns, dim=-1).numpy()


def _spearman(preds: list[Any], truth: Any, kinds: list[tuple[str, float]]) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    matrix = np.zeros((preds[0].shape[1], len(kinds)))
    for i, ((kind, _), pred) in enumerate(zip(kinds, preds)):
        gt = truth[:, i]
        if kind == "continuous":
            p, g = pred.squeeze(-1).numpy(), gt.numpy()
        elif kind == "angle":
            p, g = F.normalize(pred, p=2.0, dim=-1).numpy(), torch.stack([torch.sin(gt), torch.cos(gt)], -1).numpy()
        else:
            p, g = pred.argmax(dim=-1).float().numpy(), gt.numpy()
        for j in range(p.shape[1]):
            if p.ndim == 2:
                matrix[j, i] = 0.0 if np.unique(p[:, j]).shape[0] == 1 else spearmanr(p[:, j], g).correlation
            else:  # as CITRIS: a constant component resets the sum, then the sum is halved
                total = 0.0
                for k in range(p.shape[-1]):
                    if np.unique(p[:, j, k]).shape[0] == 1:
                        total = 0.0
                    else:
                        total += spearmanr(p[:, j, k], g[:, k]).correlation
                matrix[j, i] = total / p.shape[-1]
    return matrix
