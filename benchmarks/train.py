"""The training loop: two views per batch, a method's loss, Adam, checkpoints and exact resume.

Randomness is a function of (seed, step): batch order from (seed, epoch), augmentation draws
from (seed, step), model initialisation from seed; a resumed run therefore continues the very
same sequence. Checkpoints hold model, optimiser, scheduler, step and the global RNG states and
are loaded with ``weights_only=True``. Convolutions run channels_last (on CPU too: 2-3x faster with
oneDNN for these encoders); ``train.precision`` picks bf16 autocast (default on CUDA; on CPUs with
AMX or AVX512-BF16 it is opt-in) or float32; ``train.compile`` wraps the forward in ``torch.compile``.

On a GPU the uint8 images stay in device memory when they fit beside training (``device.py``), the
augmentations run there on parameters drawn on the host (the CPU run's draws), and the loop never
waits for the GPU between log steps: the loss is read, and checked to be finite, every
``train.log_every`` steps. On the CPU the loop computes exactly what it always has.
"""

from __future__ import annotations

import csv
import math
import os
import pickle
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from causal3dident.errors import ConfigError
from causal3dident.noise import derived_seed
from causal3dident.outputs import write_failed, writing
from causal3dident.sampler import epoch_order

from .augment import PairAugmenter, normalize, to_float
from .data import BenchData
from .device import gather_pinned, plan_placement, resolve, to_device, training_reserve_bytes
from .methods import Method
from .settings import Setting
from .tiers import Tier

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_KEYS = ("fingerprint", "step", "model", "optimizer", "scheduler", "rng")
TRAIN_LOG = "train_log.csv"
StepCallback = Callable[[int, float], None]
"""Called after each step with (step, loss). On CUDA the loss is read only at log steps and the last step (reading it
waits for the GPU); it is NaN in between."""


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


@dataclass
class Rows:
    """Rows ``index`` (a host tensor) of ``images``; already gathered into pinned host memory when ``images`` stay on
    the host while training runs on a GPU."""

    images: torch.Tensor
    index: torch.Tensor
    gathered: torch.Tensor | None = None

    def on(self, device: torch.device) -> torch.Tensor:
        """The rows on ``device``: copied there without blocking, or gathered there."""
        if self.gathered is not None:
            return to_device(self.gathered, device)
        return self.images[to_device(self.index, self.images.device)]


class Trainer:
    """Trains ``model`` with ``method`` on the views ``setting`` makes from ``data``; see module doc."""

    def __init__(self, method: Method, model: nn.Module, setting: Setting, tier: Tier, data: BenchData, seed: int,
                 device: torch.device, fingerprint: str) -> None:
        self.method, self.setting, self.tier, self.data, self.seed = method, setting, tier, data, seed
        self.device = resolve(device)
        self.fingerprint = fingerprint
        self.cuda = self.device.type == "cuda"
        # The GPU runs behind the host: read the loss at log steps only; the prefetch thread does host work only.
        self.asynchronous = self.cuda
        self.autocast = autocast_dtype(tier.train.precision, self.device)
        arrays = [data.train.images] + ([] if data.pair_images is None else [data.pair_images])
        resident = self._resident(arrays, model)
        self.model = model.to(self.device, memory_format=torch.channels_last)
        # Compiling wraps the forward only: the model's state_dict (checkpoints, evaluation) keeps its keys.
        self.forward: Callable[[torch.Tensor], Any] = torch.compile(self.model) if tier.train.compile else self.model
        if self.cuda:
            torch.backends.cudnn.benchmark = True  # fixed shapes: cuDNN times its kernels once and keeps the fastest
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=tier.train.lr,
                                          weight_decay=tier.train.weight_decay,
                                          fused=True if self.cuda else None)  # one kernel per step on a GPU
        self.scheduler = make_scheduler(self.optimizer, tier)
        self.augmenter = PairAugmenter(setting.augment, tier.resolution) if setting.augment else None
        placed = [a.to(self.device) if here else a for a, here in zip(arrays, resident)]
        self.images = placed[0]
        self.pair_images = placed[1] if len(placed) > 1 else None
        self.placement = {name: str(a.device) if here else "host, batches gathered into pinned memory"
                          for name, a, here in zip(("images", "pair_images"), placed, resident)}
        self.per_epoch = len(data.train) // tier.train.batch_size  # drop_last
        self._epoch_order: tuple[int, torch.Tensor] | None = None
        self.step = 0
        self._resumed = False

    def _resident(self, arrays: list[torch.Tensor], model: nn.Module) -> list[bool]:
        """Which image arrays live on the device: all on the CPU; on a GPU, those that fit beside training."""
        if not self.cuda:
            return [True] * len(arrays)
        free, _ = torch.cuda.mem_get_info(self.device)
        reserve = training_reserve_bytes(model, self.tier.resolution, self.tier.train.batch_size)
        return plan_placement([a.numel() * a.element_size() for a in arrays], free, reserve)

    # -- batches -----------------------------------------------------------------------------------
    def batch_indices(self, step: int) -> torch.Tensor:
        """Anchor indices of ``step``: a fresh permutation per epoch (``causal3dident.EpochSampler``'s),
        incomplete last batch dropped."""
        epoch, offset = divmod(step, self.per_epoch)
        if self._epoch_order is None or self._epoch_order[0] != epoch:
            self._epoch_order = (epoch, epoch_order(len(self.data.train), self.seed, epoch))
        b = self.tier.train.batch_size
        return self._epoch_order[1][offset * b:(offset + 1) * b]

    def views(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalised float views [B, 3, R, R] of ``step``'s batch on the device."""
        return self.device_views(step, self.host_batch(step))

    def host_batch(self, step: int) -> tuple[Rows, Rows | None]:
        """The rows ``step`` trains on: anchors, and LT partners if any. Host work only: rows of images kept on the
        host while training on a GPU are gathered into pinned memory here."""
        idx = self.batch_indices(step)
        partner: Rows | None = None
        if self.pair_images is not None:
            partner = self._rows(self.pair_images, idx)
        elif self.data.nearest is not None:
            partners = torch.from_numpy(self.data.nearest.partners(step // self.per_epoch))
            partner = self._rows(self.images, partners[idx])
        return self._rows(self.images, idx), partner

    def _rows(self, images: torch.Tensor, index: torch.Tensor) -> Rows:
        kept_on_host = images.device != self.device
        return Rows(images, index, gather_pinned(images, index) if kept_on_host else None)

    def device_views(self, step: int, batch: tuple[Rows, Rows | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """``step``'s normalised float views on the device, from its ``host_batch``; the augmentations draw from a
        host generator seeded by (seed, step) on every device."""
        anchors, partner = batch
        x1 = to_float(anchors.on(self.device))
        x2 = x1 if partner is None else to_float(partner.on(self.device))
        if self.augmenter is None:
            return normalize(x1), normalize(x2)
        g = torch.Generator().manual_seed(derived_seed(self.seed, 2, step))
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
        window_sum: torch.Tensor | None = None  # asynchronous: the window's losses, summed on the device
        window_start = self.step
        steps, log_every, ckpt_every = (self.tier.train.steps, self.tier.train.log_every,
                                        self.tier.train.checkpoint_every)
        self.model.train()
        last_loss = float("nan")
        # The next step's work is prepared on a second thread while this step trains (torch releases the GIL).
        # CPU: the whole views(step), a pure function, is made there; it fills the cores the model leaves idle.
        # CUDA: the second thread does host work only (batch indices, nearest partners, gathering rows of host-kept
        # images into pinned memory). Every GPU operation is issued from this thread, on one stream, so no stream
        # needs syncing and no buffer is reused before the GPU has read it; the GPU's queue runs ahead of the host
        # because nothing is read back between log steps. A host-kept batch's copy then waits for the previous step
        # (a few ms at 224 px, paid only by runs too large for GPU memory; a copy stream would hide it).
        prepare, finish = ((self.host_batch, self._channels_last_device_views) if self.asynchronous else
                           (self._channels_last_views, _prepared))
        with ThreadPoolExecutor(max_workers=1) as prefetch:
            upcoming = prefetch.submit(prepare, self.step)
            while self.step < steps:
                prepared = upcoming.result()
                if self.step + 1 < steps:
                    upcoming = prefetch.submit(prepare, self.step + 1)
                v1, v2 = finish(self.step, prepared)
                loss = self._step(v1, v2)
                log_now = self.step % log_every == 0 or self.step == steps
                if self.asynchronous:  # read the loss (a wait for the GPU) at log steps only
                    window_sum = loss if window_sum is None else window_sum + loss
                    last_loss = float("nan")
                    if log_now:
                        last_loss, total = torch.stack([loss, window_sum]).tolist()
                        if not math.isfinite(total):
                            raise ConfigError(f"the loss became {total} between steps {window_start} and "
                                              f"{self.step}; lower train.lr (--set train.lr=...)")
                        window, window_sum, window_start = [total / (self.step - window_start)], None, self.step
                else:
                    last_loss = loss.item()
                    window.append(last_loss)
                if on_step is not None:
                    on_step(self.step, last_loss)
                if log_now:
                    elapsed = time.perf_counter() - t0
                    rate = (self.step - resumed_at) * self.tier.train.batch_size / max(elapsed, 1e-9)
                    with writing(run_dir / TRAIN_LOG):
                        append_log(run_dir / TRAIN_LOG, self.step, float(np.mean(window)), rate, elapsed)
                    window = []
                if self.step % ckpt_every == 0 or self.step == steps:
                    self.save(ckpt)
        return {"steps": self.step, "resumed_at": resumed_at, "seconds": round(time.perf_counter() - t0, 2),
                "final_loss": last_loss, "placement": self.placement}

    def _channels_last_views(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``views(step)`` in the convolutions' memory format."""
        return _channels_last(self.views(step))

    def _channels_last_device_views(self, step: int,
                                    batch: tuple[Rows, Rows | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """``device_views`` in the convolutions' memory format."""
        return _channels_last(self.device_views(step, batch))

    def _step(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        """One optimisation step on a pair of view batches; returns the loss (detached, on the device)."""
        with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
            z1 = final_embedding(self.forward(v1))
            z2 = final_embedding(self.forward(v2))
        loss = self.method.loss(z1.float(), z2.float())
        if not self.asynchronous and not torch.isfinite(loss):  # else checked at log steps (a wait for the GPU)
            raise ConfigError(f"the loss became {loss.item()} at step {self.step}; "
                              f"lower train.lr (--set train.lr=...)")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return loss.detach()

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


def _channels_last(views: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return tuple(v.contiguous(memory_format=torch.channels_last) for v in views)  # type: ignore[return-value]


def _prepared(step: int, views: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The CPU loop's second stage: the prefetch thread made the views already."""
    return views


def append_log(path: Path, step: int, loss: float, rate: float, elapsed: float) -> None:
    """One row (step, mean loss, pairs/s, seconds) of the training log CSV, its header first."""
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(["step", "loss", "pairs_per_s", "elapsed_s"])
        writer.writerow([step, f"{loss:.5f}", f"{rate:.1f}", f"{elapsed:.1f}"])
