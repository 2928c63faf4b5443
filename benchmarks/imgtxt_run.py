"""One Multimodal3DIdent benchmark run: image-text contrastive training, their evaluation, our results rows.

``--data`` is a folder with the ``train``, ``val`` and ``test`` splits, as ``<split>.h5`` files or the release
layout (``Multimodal3DIdent`` reads either). Images are read once into memory (uint8, resized to the tier's
resolution), sentences become token ids of the fixed vocabulary (one-hot per batch). Training: batches in
``EpochSampler``'s order (seed, epoch), Adam on both encoders, gradients clipped to the method's
``max_grad_norm``, checkpoints every ``train.checkpoint_every`` steps and resume at the same step. The run
folder is ``OUT/<tier>/<method>/<setting>/seed<S>/`` as for Causal3DIdent runs; tiers: ``tiers_multimodal.yaml``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from causal3dident import multimodal_vocab as vocab
from causal3dident.errors import ConfigError
from causal3dident.multimodal import IMAGE_COLUMNS
from causal3dident.multimodal_dataset import TEXT_FACTORS, Multimodal3DIdent
from causal3dident.outputs import check_writable_folder, writing
from causal3dident.sampler import epoch_order
from causal3dident.store import package_version, utc_now

from .augment import normalize, to_float
from .data import arrays_sha256, resize_images
from .imgtxt import ImageTextMethod, imgtxt_params, resolve_imgtxt_method
from .imgtxt_eval import FACTORS, PROTOCOL, Encoded, evaluate_imgtxt
from .runner import RESULTS, pick_device, run_dir, write_record, write_results
from .tiers import Tier, tier_from_dict
from .train import CHECKPOINT, TRAIN_LOG, StepCallback, append_log, final_embedding, read_checkpoint

DATASET = "multimodal3dident"
SPLITS = ("train", "val", "test")


def tier_names() -> list[str]:
    return list(_raw_tiers())


def _raw_tiers() -> dict[str, Any]:
    text = resources.files("causal3dident.benchmarks").joinpath("tiers_multimodal.yaml").read_text()
    return yaml.safe_load(text)["tiers"]


def load_imgtxt_tier(name: str, overrides: Iterable[str] = (), method: str | None = None) -> Tier:
    """A tier of ``tiers_multimodal.yaml`` with ``--set`` overrides, checked by the same schema as ``tiers.yaml``."""
    raw = _raw_tiers()
    if name not in raw:
        raise ConfigError(f"unknown tier {name!r} for --dataset {DATASET}; choose one of {', '.join(raw)}")
    return tier_from_dict(name, raw[name], overrides, method)


@dataclass
class Pairs:
    """One split in memory: uint8 images [N, 3, R, R], token ids int64 [N, L], labels per modality."""

    images: torch.Tensor
    tokens: torch.Tensor
    labels: dict[str, dict[str, np.ndarray]]

    def __len__(self) -> int:
        return len(self.tokens)


def load_split(data: str | Path, split: str, resolution: int, limit: int | None = None) -> Pairs:
    """The first ``limit`` (all: None) pairs of ``split`` under ``data``."""
    ds = Multimodal3DIdent(data, split=split, image_format="tensor")
    n = len(ds) if limit is None else min(len(ds), limit)
    images = torch.stack([ds[i][0] for i in range(n)]) if n else torch.empty(0, 3, resolution, resolution)
    tokens = torch.tensor([vocab.encode(s) for s in ds.sentences[:n]], dtype=torch.int64)
    image_cols = {c: ds.z_image[:n, k] for k, c in enumerate(IMAGE_COLUMNS)}
    text_cols = {c: ds.z_text[:n, k] for k, c in enumerate(TEXT_FACTORS)}
    labels = {"image": {f: image_cols[f] for f in FACTORS["image"]},
              "text": {f: text_cols[f] for f in FACTORS["text"]}}
    return Pairs(resize_images(images, resolution), tokens, labels)


def one_hot(tokens: torch.Tensor) -> torch.Tensor:
    """Token ids [B, L] -> float one-hot [B, L, V], as their dataset's ``text``."""
    return F.one_hot(tokens, len(vocab.words())).float()


class ImgTxtModel(nn.Module):
    """Both encoders in one module (one state_dict for checkpoints)."""

    def __init__(self, image: nn.Module, text: nn.Module) -> None:
        super().__init__()
        self.image, self.text = image, text


def run_imgtxt(tier: Tier, seed: int, data: str | Path, out: str | Path, method: str = "imgtxt",
               setting: str = DATASET, device: str = "auto", on_step: StepCallback | None = None,
               echo: Callable[[str], None] = lambda s: None) -> Path:
    """Train ``method`` on the train split, probe val -> test, write the run folder; returns it."""
    dev = pick_device(device)
    torch.manual_seed(seed)
    method_obj = resolve_imgtxt_method(method, tier)
    check_writable_folder(out)
    train = load_split(data, "train", tier.resolution, tier.train.max_samples)
    if len(train) < tier.train.batch_size:
        raise ConfigError(f"{data}: {len(train)} training pairs are too few for batch {tier.train.batch_size}; "
                          f"use more data or --set train.batch_size=...")
    val, test = (load_split(data, s, tier.resolution, tier.eval.samples) for s in ("val", "test"))
    path = run_dir(out, tier.name, method_obj.name, setting, seed)
    with writing(path):
        path.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "dataset_kind": DATASET, "method": method_obj.name, "method_spec": method, "setting": setting,
        "method_params": imgtxt_params(method, tier), "tier": tier.to_dict(), "seed": seed,
        "dataset": {"root": str(data), "sha256": _hash(train, val, test), "train_samples": len(train),
                    "val_samples": len(val),
                    "test_samples": len(test), "order": f"causal3dident.EpochSampler({len(train)}, seed={seed})",
                    "vocabulary": f"causal3dident.multimodal_vocab ({len(vocab.words())} tokens, length "
                                  f"{vocab.max_length()})"},
        "package_version": package_version(), "torch_version": torch.__version__, "device": str(dev),
        "started": utc_now()}
    started = time.perf_counter()
    model = ImgTxtModel(method_obj.build_encoder(tier), method_obj.build_text_encoder(tier)).to(dev)
    echo(f"{path}: training {method_obj.name} ({tier.train.steps} steps, {len(train)} pairs)")
    record["train"] = train_imgtxt(method_obj, model, train, tier, seed, dev, path, record, on_step)
    echo(f"{path}: evaluating (probes fit on {len(val)} val pairs, scored on {len(test)} test pairs)")
    rows = evaluate_imgtxt(encode(model, val, tier, dev), encode(model, test, tier, dev), seed)
    record["eval"] = PROTOCOL | {"val_samples": len(val), "test_samples": len(test)}
    record["finished"], record["seconds"] = utc_now(), round(time.perf_counter() - started, 1)
    write_record(path, record)
    write_results(path / RESULTS, [{"method": method_obj.name, "setting": setting, "tier": tier.name, "seed": seed,
                                    "layer": r.layer, "probe": r.probe, "factor": r.factor, "metric": r.metric,
                                    "value": f"{r.value:.6f}"} for r in rows])
    return path


def _batch(pairs: Pairs, idx: torch.Tensor, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    images = normalize(to_float(pairs.images[idx].to(dev)))
    return images, one_hot(pairs.tokens[idx]).to(dev)


def train_imgtxt(method: ImageTextMethod, model: ImgTxtModel, train: Pairs, tier: Tier, seed: int,
                 dev: torch.device, path: Path, record: dict[str, Any],
                 on_step: StepCallback | None = None) -> dict[str, Any]:
    """Adam on both encoders for ``train.steps`` steps from the checkpoint in ``path`` (if any)."""
    params = list(model.parameters())
    optimizer = torch.optim.Adam(params, lr=tier.train.lr, weight_decay=tier.train.weight_decay)
    fingerprint = _fingerprint(record)
    step = _resume(path / CHECKPOINT, model, optimizer, fingerprint, dev)
    write_record(path, record)
    b, per_epoch = tier.train.batch_size, len(train) // tier.train.batch_size
    t0, resumed_at, window, loss_value = time.perf_counter(), step, [], float("nan")
    model.train()
    while step < tier.train.steps:
        epoch, offset = divmod(step, per_epoch)
        idx = epoch_order(len(train), seed, epoch)[offset * b:(offset + 1) * b]
        images, text = _batch(train, idx, dev)
        loss = method.loss(final_embedding(model.image(images)).float(), final_embedding(model.text(text)).float())
        if not torch.isfinite(loss):
            raise ConfigError(f"the loss became {loss.item()} at step {step}; lower train.lr (--set train.lr=...)")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if method.max_grad_norm:
            nn.utils.clip_grad_norm_(params, max_norm=method.max_grad_norm)
        optimizer.step()
        step += 1
        loss_value = loss.item()
        window.append(loss_value)
        if on_step is not None:
            on_step(step, loss_value)
        if step % tier.train.log_every == 0 or step == tier.train.steps:
            elapsed = time.perf_counter() - t0
            with writing(path / TRAIN_LOG):
                append_log(path / TRAIN_LOG, step, float(np.mean(window)), (step - resumed_at) * b / elapsed,
                            elapsed)
            window = []
        if step % tier.train.checkpoint_every == 0 or step == tier.train.steps:
            _save(path / CHECKPOINT, model, optimizer, step, fingerprint)
    return {"steps": step, "resumed_at": resumed_at, "seconds": round(time.perf_counter() - t0, 2),
            "final_loss": loss_value}


def _hash(*splits: Pairs) -> str:
    """SHA-256 of exactly the arrays a run uses (images after resizing, token ids, labels)."""
    arrays: list[np.ndarray] = []
    for pairs in splits:
        arrays += [pairs.images.numpy(), pairs.tokens.numpy()]
        arrays += [np.asarray(v) for m in FACTORS for v in pairs.labels[m].values()]
    return arrays_sha256(arrays)


def _fingerprint(record: dict[str, Any]) -> str:
    ident = {k: record[k] for k in ("method_spec", "method_params", "tier", "seed")} | \
        {"data": record["dataset"]["sha256"]}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()


def _save(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, step: int, fingerprint: str) -> None:
    """The checkpoint, written atomically, in ``train.read_checkpoint``'s format (no scheduler: constant lr)."""
    import os

    state = {"fingerprint": fingerprint, "step": step, "model": model.state_dict(),
             "optimizer": optimizer.state_dict(), "scheduler": {}, "rng": {"torch": torch.get_rng_state()}}
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with writing(path):
        torch.save(state, tmp)
        os.replace(tmp, path)


def _resume(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, fingerprint: str,
            dev: torch.device) -> int:
    """The step to continue from: 0, or that of ``path``'s checkpoint, whose state is loaded."""
    if not path.is_file():
        return 0
    state = read_checkpoint(path, dev, fix=f"delete it (or the run folder {path.parent}) to train from step 0")
    if state["fingerprint"] != fingerprint:
        raise ConfigError(f"{path} belongs to another configuration (tier, method, seed or data differ); use "
                          f"another --out or delete that run folder")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"]["torch"].cpu())
    return int(state["step"])


@torch.inference_mode()
def encode(model: ImgTxtModel, pairs: Pairs, tier: Tier, dev: torch.device) -> Encoded:
    """Final encodings of both modalities (eval mode), as float64, with the split's labels."""
    model.eval()
    parts: dict[str, list[np.ndarray]] = {"image": [], "text": []}
    for i in range(0, len(pairs), tier.eval.batch_size):
        idx = torch.arange(i, min(i + tier.eval.batch_size, len(pairs)))
        images, text = _batch(pairs, idx, dev)
        parts["image"].append(final_embedding(model.image(images)).float().cpu().numpy().astype(np.float64))
        parts["text"].append(final_embedding(model.text(text)).float().cpu().numpy().astype(np.float64))
    return Encoded({m: np.concatenate(p) for m, p in parts.items()}, pairs.labels)
