"""What the tier's encoder can learn from the tier's data when it is told the answers.

Trains the tier's encoder, from scratch, on the training anchors with the latents as targets (cross-
entropy on the class, mean squared error on the ten standardised continuous latents, both from the
hidden layer) for the tier's steps, batch, learning rate and schedule, then scores it on the
held-out split with the benchmark's own probes. A self-supervised run cannot show more content
than this: when the ceiling itself is below a goal (class accuracy 0.9, say), the goal is out of
reach of the data and encoder, whatever the method does.

    python benchmarks/perf/supervised_ceiling.py --data data/mini --tier mini --seed 0
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from causal3dident.benchmarks.augment import normalize, to_float
from causal3dident.benchmarks.data import load_data
from causal3dident.benchmarks.evaluate import embed, evaluate
from causal3dident.benchmarks.models import build_encoder
from causal3dident.benchmarks.settings import get_setting, load_settings
from causal3dident.benchmarks.tiers import load_tier
from causal3dident.benchmarks.train import make_scheduler
from causal3dident.latents import LATENT_NAMES, NUM_CLASSES

SUMMARY = {"class": ("class",), "spot_pos": ("spot_pos",), "pos": ("pos_x", "pos_y", "pos_z"),
           "rot": ("rot_alpha", "rot_beta", "rot_gamma"), "hues": ("hue_obj", "hue_spot", "hue_bg")}


def train_supervised(data_dir: str, tier_name: str, overrides: list[str], seed: int) -> tuple[dict[str, dict[str, float]], float]:
    """Per layer, the held-out summary (class accuracy, mean kernel-ridge R^2 per group); and the final loss."""
    tier = load_tier(tier_name, overrides)
    data = load_data(data_dir, get_setting("lt_hues", load_settings()), tier, seed)
    torch.manual_seed(seed)
    model = build_encoder(tier.model, tier.resolution)
    heads = nn.ModuleDict({"class": nn.Linear(tier.model.hidden_dim, NUM_CLASSES),
                           "latents": nn.Linear(tier.model.hidden_dim, len(LATENT_NAMES))})
    params = [*model.parameters(), *heads.parameters()]
    optimizer = torch.optim.Adam(params, lr=tier.train.lr, weight_decay=tier.train.weight_decay)
    scheduler = make_scheduler(optimizer, tier)
    latents = torch.from_numpy(data.train.latents.astype(np.float32))
    latents = (latents - latents.mean(0)) / latents.std(0).clamp_min(1e-6)
    classes = torch.from_numpy(data.train.classes)
    generator = torch.Generator().manual_seed(seed)
    n, loss = len(data.train), float("nan")
    model.train()
    for step in range(tier.train.steps):
        index = torch.randint(n, (tier.train.batch_size,), generator=generator)
        hidden, _ = model(normalize(to_float(data.train.images[index])))
        total = F.cross_entropy(heads["class"](hidden), classes[index]) + F.mse_loss(heads["latents"](hidden), latents[index])
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        scheduler.step()
        loss = float(total.detach())
        if (step + 1) % tier.train.log_every == 0:
            print(f"  step {step + 1}/{tier.train.steps}: loss {loss:.4f}", flush=True)
    features = embed(model, data.held_out.images, tier.eval.batch_size, torch.device("cpu"))
    rows, _ = evaluate(features, data.held_out.latents, data.held_out.classes, tier.eval, seed)
    return _summary(rows), loss


def _summary(rows: list) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for layer in ("final", "hidden"):
        values = {r.factor: r.value for r in rows if r.layer == layer and (
            (r.probe == "logistic" and r.metric == "accuracy") or (r.probe == "kernel_ridge" and r.metric == "r2"))}
        out[layer] = {group: float(np.mean([values[f] for f in factors])) for group, factors in SUMMARY.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="The tier's data folder (train.h5 + test.h5), as for c3di bench run.")
    parser.add_argument("--tier", default="mini")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="Tier override, as for c3di bench.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    summary, loss = train_supervised(args.data, args.tier, args.overrides, args.seed)
    print(f"supervised ceiling: tier {args.tier} {' '.join(args.overrides)} seed {args.seed}, final loss {loss:.4f}, "
          f"{time.perf_counter() - start:.0f} s")
    print(f"{'layer':8s} " + " ".join(f"{g:>9s}" for g in SUMMARY))
    for layer, values in summary.items():
        print(f"{layer:8s} " + " ".join(f"{values[g]:9.3f}" for g in SUMMARY))
    print("(class: logistic accuracy; others: kernel-ridge R^2, mean over the group; held-out split)")


if __name__ == "__main__":
    main()
