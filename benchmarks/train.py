"""The training loop: two views per batch, a method's loss, Adam, checkpoints and exact resume.

Randomness is a function of (seed, step): batch order from (seed, epoch), augmentation draws
from (seed, step), model initialisation from seed; a resumed run therefore continues the very
same sequence. Checkpoints hold model, optimiser, scheduler, step and the global RNG states and
are loaded with ``weights_only=True``. Convolutions run channels_last (on CPU too: 2-3x faster with
oneDNN for these encoders); ``train.precision`` picks bf16 autocast (default on CUDA; on CPUs with
AMX or AVX512-BF16 it is opt-in) or float32.
"""

from __future__ import annotations

import csv
import math
import os
import pickle
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from causal3dident.errors import ConfigError
from causal3dident.outputs import write_failed, writing

from .augment import PairAugmenter, normalize, to_float
from .data import BenchData
from .methods import Method
from .settings import Setting
from .tiers import Tier

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_KEYS = ("fingerprint", "step", "model", "optimizer", "scheduler", "rng")
TRAIN_LOG = "train_log.csv"
StepCallback = Callable[[int, float], None]


def derived_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (run seed, purpose, step, ...)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def final_embedding(output: Any) -> torch.Tensor:
    """The final layer of an encoder's output: ``(hidden, final)`` or a bare tensor."""
    return output[-1] if isinstance(output, (tuple, list)) else output


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype ``train.precision`` asks for on ``device`` (None: float32 throughout)."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if precision == "bf16" and device.type == "cpu" and not torch.backends.mkldnn.is_available():
        raise ConfigError("train.precision=bf16 on CPU needs PyTorch built with oneDNN; use train.precision=fp32")
    return torch.bfloat16 if precision == "bf16" else None


def make_scheduler(optimizer: torch.optim.Optimizer, tier: Tier) -> torch.optim.lr_scheduler.LambdaLR:
    """Constant, or linear warm-up then cosine decay to zero over ``train.steps``."""
    warmup, total, kind = tier.train.warmup_steps, tier.train.steps, tier.train.schedule

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class Trainer:
    """Trains ``model`` with ``method`` on the views ``setting`` makes from ``data``; see module doc."""

    def __init__(self, method: Method, model: nn.Module, setting: Setting, tier: Tier, data: BenchData, seed: int,
                 device: torch.device, fingerprint: str) -> None:
        self.method, self.setting, self.tier, self.data, self.seed = method, setting, tier, data, seed
        self.device = device
        self.fingerprint = fingerprint
        self.cuda = device.type == "cuda"
        self.autocast = autocast_dtype(tier.train.precision, device)
        self.model = model.to(device, memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=tier.train.lr,
                                          weight_decay=tier.train.weight_decay)
        self.scheduler = make_scheduler(self.optimizer, tier)
        self.augmenter = PairAugmenter(setting.augment, tier.resolution) if setting.augment else None
        self.images = self._place(data.train.images)
        self.pair_images = None if data.pair_images is None else self._place(data.pair_images)
        self.per_epoch = len(data.train) // tier.train.batch_size  # drop_last
        self._epoch_order: tuple[int, torch.Tensor] | None = None
        self.step = 0
        self._resumed = False

    def _place(self, images: torch.Tensor) -> torch.Tensor:
        """Keep the uint8 images on the GPU when they take under half its free memory, else pinned on the host."""
        if self.cuda:
            free, _ = torch.cuda.mem_get_info(self.device)
            if images.numel() < free // 2:
                return images.to(self.device)
            return images.pin_memory()
        return images

    # -- batches -----------------------------------------------------------------------------------
    def batch_indices(self, step: int) -> torch.Tensor:
        """Anchor indices of ``step``: a fresh permutation per epoch, incomplete last batch dropped."""
        epoch, offset = divmod(step, self.per_epoch)
        if self._epoch_order is None or self._epoch_order[0] != epoch:
            g = torch.Generator().manual_seed(derived_seed(self.seed, 1, epoch))
            self._epoch_order = (epoch, torch.randperm(len(self.data.train), generator=g))
        b = self.tier.train.batch_size
        return self._epoch_order[1][offset * b:(offset + 1) * b]

    def views(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalised float views [B, 3, R, R] of ``step``'s batch on the device."""
        idx = self.batch_indices(step)
        x1 = to_float(self.images[idx.to(self.images.device)].to(self.device, non_blocking=True))
        if self.pair_images is not None:
            partner = self.pair_images[idx.to(self.pair_images.device)]
        elif self.data.nearest is not None:
            partners = torch.from_numpy(self.data.nearest.for_epoch(step // self.per_epoch))
            partner = self.images[partners[idx].to(self.images.device)]
        else:
            partner = None
        x2 = x1 if partner is None else to_float(partner.to(self.device, non_blocking=True))
        if self.augmenter is None:
            return normalize(x1), normalize(x2)
        g = torch.Generator(device=self.device).manual_seed(derived_seed(self.seed, 2, step))
        return self.augmenter(x1, x2, g)

    # -- loop --------------------------------------------------------------------------------------
    def train(self, run_dir: Path, on_step: StepCallback | None = None) -> dict[str, Any]:
        """Train to ``train.steps`` from the last checkpoint in ``run_dir`` (if any); return a summary."""
        with writing(run_dir):
            run_dir.mkdir(parents=True, exist_ok=True)
        ckpt = run_dir / CHECKPOINT
        resumed_at = self.resume(run_dir)
        t0 = time.perf_counter()
        window: list[float] = []
        steps, log_every, ckpt_every = (self.tier.train.steps, self.tier.train.log_every,
                                        self.tier.train.checkpoint_every)
        self.model.train()
        last_loss = float("nan")
        # The next step's views are made on a second thread while this step trains (torch releases
        # the GIL): on CPU it fills the cores the model leaves idle; views(step) is a pure function.
        with ThreadPoolExecutor(max_workers=1) as prefetch:
            upcoming = prefetch.submit(self._channels_last_views, self.step)
            while self.step < steps:
                v1, v2 = upcoming.result()
                if self.step + 1 < steps:
                    upcoming = prefetch.submit(self._channels_last_views, self.step + 1)
                last_loss = self._step(v1, v2)
                window.append(last_loss)
                if on_step is not None:
                    on_step(self.step, last_loss)
                if self.step % log_every == 0 or self.step == steps:
                    elapsed = time.perf_counter() - t0
                    rate = (self.step - resumed_at) * self.tier.train.batch_size / max(elapsed, 1e-9)
                    with writing(run_dir / TRAIN_LOG):
                        _append_log(run_dir / TRAIN_LOG, self.step, float(np.mean(window)), rate, elapsed)
                    window = []
                if self.step % ckpt_every == 0 or self.step == steps:
                    self.save(ckpt)
        return {"steps": self.step, "resumed_at": resumed_at, "seconds": round(time.perf_counter() - t0, 2),
                "final_loss": last_loss}

    def _channels_last_views(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``views(step)`` in the convolutions' memory format."""
        v1, v2 = self.views(step)
        return v1.contiguous(memory_format=torch.channels_last), v2.contiguous(memory_format=torch.channels_last)

    def _step(self, v1: torch.Tensor, v2: torch.Tensor) -> float:
        """One optimisation step on a pair of view batches; returns the loss."""
        with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
            z1 = final_embedding(self.model(v1))
            z2 = final_embedding(self.model(v2))
        loss = self.method.loss(z1.float(), z2.float())
        if not torch.isfinite(loss):
            raise ConfigError(f"the loss became {loss.item()} at step {self.step}; "
                              f"lower train.lr (--set train.lr=...)")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return loss.item()

    # -- checkpoints -------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write the checkpoint atomically (temporary file, then rename)."""
        state = {
            "fingerprint": self.fingerprint,
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        }
        tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
        try:
            torch.save(state, tmp)
            os.replace(tmp, path)
        except (OSError, RuntimeError) as exc:  # torch reports a vanished folder as RuntimeError
            tmp.unlink(missing_ok=True)
            raise write_failed(path, exc) from None

    def resume(self, run_dir: Path) -> int:
        """Load ``run_dir``'s checkpoint, if any and not yet loaded; the step training continues from."""
        ckpt = run_dir / CHECKPOINT
        if not self._resumed and ckpt.is_file():
            self.load(ckpt)
        self._resumed = True
        return self.step

    def load(self, path: Path) -> None:
        """Restore everything ``save`` wrote; refuse a checkpoint of another configuration."""
        state = read_checkpoint(path, self.device, fix=f"delete it (or the run folder {path.parent}) and run the "
                                                       f"same command again to train from step 0")
        if state.get("fingerprint") != self.fingerprint:
            raise ConfigError(f"{path} belongs to another configuration (setting, tier, method, seed or data "
                              f"differ); use another --out or delete that run folder")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
        self.step = int(state["step"])


def read_checkpoint(path: Path, device: torch.device | str, fix: str) -> dict[str, Any]:
    """A checkpoint written by ``Trainer.save`` (loaded with weights_only); a truncated or damaged file is a
    one-line ``ConfigError`` naming it and saying ``fix``."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch says RuntimeError, OSError, EOFError or UnpicklingError for a damaged file
        reason = ("not a PyTorch checkpoint" if isinstance(exc, pickle.UnpicklingError)
                  else f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:100]}")
        raise ConfigError(f"checkpoint {path} is truncated or damaged ({reason}); {fix}") from None
    missing = [k for k in CHECKPOINT_KEYS if k not in state] if isinstance(state, dict) else list(CHECKPOINT_KEYS)
    if missing:
        raise ConfigError(f"checkpoint {path} lacks {', '.join(missing)}: it was not written by 'c3di bench run'; "
                          f"{fix}")
    return state


def _append_log(path: Path, step: int, loss: float, rate: float, elapsed: float) -> None:
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(["step", "loss", "pairs_per_s", "elapsed_s"])
        writer.writerow([step, f"{loss:.5f}", f"{rate:.1f}", f"{elapsed:.1f}"])
