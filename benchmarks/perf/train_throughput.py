"""Training throughput (images/s) of the benchmark's pipeline against a baseline built like the original.

Ours: the whole training set in memory as uint8 (on the GPU when it fits), batched augmentations
with per-sample parameters, channels_last, timed in float32 and, where the hardware does it natively
(CUDA, or a CPU with AMX / AVX512-BF16), with bf16 autocast (``train.precision``). Baseline, as the original
``ssl_identifiability`` code: a Dataset that reads each image from the file per item, PIL
transforms (RandomResizedCrop, flip, ColorJitter, grayscale, ToTensor, Normalize) twice per item
in DataLoader workers, float32 NCHW. Same data, encoder, loss, batch size and machine; one run.
An image is one view through the encoder (two per anchor).

    python benchmarks/perf/train_throughput.py [--tier mini] [--setting da_crop_small_colour] [--data FILE]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the c3di bench CLI; both pipelines run with it

import h5py  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision import transforms  # noqa: E402

from causal3dident.augmentations import (  # noqa: E402
    AUGMENTATIONS, NORMALIZE_MEAN, NORMALIZE_STD, ColourDistortion, Crop)
from causal3dident.benchmarks.data import load_data  # noqa: E402
from causal3dident.benchmarks.methods import resolve_method  # noqa: E402
from causal3dident.benchmarks.models import build_encoder  # noqa: E402
from causal3dident.benchmarks.runner import pick_device  # noqa: E402
from causal3dident.benchmarks.settings import Setting, load_settings  # noqa: E402
from causal3dident.benchmarks.tiers import Tier, load_tier  # noqa: E402
from causal3dident.benchmarks.train import Trainer  # noqa: E402


class OriginalStyleDataset(torch.utils.data.Dataset):
    """Reads one image per item from the HDF5 file and makes two PIL-augmented views, like the original."""

    def __init__(self, path: Path, count: int, transform: transforms.Compose) -> None:
        self.path, self.count, self.transform = path, count, transform
        self.file: h5py.File | None = None

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.file is None:  # opened in each worker
            self.file = h5py.File(self.path, "r")
        image = Image.fromarray(self.file["images"][i])
        return self.transform(image), self.transform(image)


def pil_transform(setting: Setting, size: int, source_size: int) -> transforms.Compose:
    """The original's torchvision PIL pipeline for a DA setting (crop and colour; rotation is left out)."""
    steps: list = []
    for name in setting.augment:
        spec = AUGMENTATIONS[name]
        if isinstance(spec, Crop):
            steps += [transforms.RandomResizedCrop(size, scale=spec.scale, ratio=spec.ratio,
                                                   interpolation=transforms.InterpolationMode.BICUBIC),
                      transforms.RandomHorizontalFlip(spec.flip_p)]
        elif isinstance(spec, ColourDistortion):
            jitter = transforms.ColorJitter(spec.brightness, spec.contrast, spec.saturation, spec.hue)
            steps += [transforms.RandomApply([jitter], p=spec.p), transforms.RandomGrayscale(spec.grayscale_p)]
    if source_size != size and not any(isinstance(AUGMENTATIONS[n], Crop) for n in setting.augment):
        steps.insert(0, transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC))
    return transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize(NORMALIZE_MEAN, NORMALIZE_STD)])


def time_ours(path: Path, setting: Setting, tier: Tier, warmup: int, device: torch.device,
              time_views: bool = True) -> tuple[float, float]:
    """(images/s, time making views / wall time) of the harness's Trainer after ``warmup`` steps (the views
    are made on a background thread while the previous step trains). ``time_views=False`` leaves the views
    untimed (NaN): timing them on a GPU means waiting for it after each, which the trainer never does."""
    data = load_data(path, setting, tier, seed=0)
    torch.manual_seed(0)
    model = build_encoder(tier.model, tier.resolution)
    trainer = Trainer(resolve_method("simclr", tier), model, setting, tier, data, 0, device, "perf")
    marks: dict[int, float] = {}
    in_views = [0.0]
    make_views = trainer.views

    def timed_views(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        t = time.perf_counter()
        out = make_views(step)
        _sync(device)
        if step >= warmup:
            in_views[0] += time.perf_counter() - t
        return out

    def mark(step: int, loss: float) -> None:  # called after each step, before the final checkpoint
        if step in (warmup, tier.train.steps):
            _sync(device)
            marks[step] = time.perf_counter()

    if time_views:
        trainer.views = timed_views  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp:
        trainer.train(Path(tmp), mark)
    elapsed = marks[tier.train.steps] - marks[warmup]
    return (tier.train.steps - warmup) * 2 * tier.train.batch_size / elapsed, (in_views[0] / elapsed if time_views
                                                                               else float("nan"))


def time_baseline(path: Path, setting: Setting, tier: Tier, warmup: int, device: torch.device,
                  workers: int) -> tuple[float, float]:
    """(images/s, fraction of the time waiting for the DataLoader) of the original-style loop after ``warmup``."""
    with h5py.File(path, "r") as f:
        count, source_size = len(f["images"]) - tier.eval.samples, f["images"].shape[1]
    dataset = OriginalStyleDataset(path, count, pil_transform(setting, tier.resolution, source_size))
    loader = torch.utils.data.DataLoader(dataset, batch_size=tier.train.batch_size, shuffle=True, num_workers=workers,
                                         pin_memory=device.type == "cuda", drop_last=True, persistent_workers=True)
    step = plain_step(tier, device)
    done, t0, waiting = 0, 0.0, 0.0
    while done < tier.train.steps:
        batches = iter(loader)
        while done < tier.train.steps:
            if done == warmup:
                _sync(device)
                t0 = time.perf_counter()
            t = time.perf_counter()
            batch = next(batches, None)
            if batch is None:
                break
            if done >= warmup:
                waiting += time.perf_counter() - t
            step(*(x.to(device, non_blocking=True) for x in batch))
            done += 1
    _sync(device)
    elapsed = time.perf_counter() - t0
    return (tier.train.steps - warmup) * 2 * tier.train.batch_size / elapsed, waiting / elapsed


def plain_step(tier: Tier, device: torch.device, channels_last: bool = False,
               precision: str = "fp32") -> Callable[[torch.Tensor, torch.Tensor], None]:
    """One SimCLR step (encoder, loss, Adam) on a pair of view batches, outside the harness's Trainer."""
    torch.manual_seed(0)
    memory_format = torch.channels_last if channels_last else torch.preserve_format
    model = build_encoder(tier.model, tier.resolution).to(device, memory_format=memory_format).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=tier.train.lr)
    method = resolve_method("simclr", tier)

    def step(x1: torch.Tensor, x2: torch.Tensor) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            z1, z2 = model(x1)[1], model(x2)[1]
        loss = method.loss(z1.float(), z2.float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def time_encoder_only(tier: Tier, steps: int, warmup: int, device: torch.device, precision: str) -> float:
    """Images/s of encoder + loss + Adam on fixed tensors: the ceiling any data pipeline can reach here."""
    step = plain_step(tier, device, channels_last=True, precision=precision)
    shape = (tier.train.batch_size, 3, tier.resolution, tier.resolution)
    x1, x2 = (torch.randn(shape, device=device).contiguous(memory_format=torch.channels_last) for _ in range(2))
    t0 = 0.0
    for k in range(warmup + steps):
        if k == warmup:
            _sync(device)
            t0 = time.perf_counter()
        step(x1, x2)
    _sync(device)
    return steps * 2 * tier.train.batch_size / (time.perf_counter() - t0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(path: Path, setting: Setting, tier_name: str, overrides: list[str], warmup: int, device: torch.device,
            workers: int, echo: Callable[[str], None] = print, deadline: float | None = None) -> dict[str, Any]:
    """Time our pipeline (each precision of ``precisions``), the original-style baseline and the encoder alone on
    the dataset file ``path``; print one line each and return the numbers. Past ``deadline`` (a perf_counter
    time) the encoder-alone ceilings are skipped."""
    tier = load_tier(tier_name, overrides)
    steps = tier.train.steps - warmup
    echo(f"device {device}, torch threads {torch.get_num_threads()}, tier {tier.name} ({tier.resolution} px, "
         f"{tier.model.encoder}, batch {tier.train.batch_size}), setting {setting.id}, data {path}")
    result: dict[str, Any] = {"ours": {}, "making_views": {}, "ceiling": {}, "ratio": {}}
    for precision in precisions(device):
        with_precision = load_tier(tier_name, [*overrides, f"train.precision={precision}"])
        rate, making = time_ours(path, setting, with_precision, warmup, device, time_views=device.type != "cuda")
        result["ours"][precision], result["making_views"][precision] = rate, making
        where = (f"making views, on a second thread: {making:.0%} of the wall time" if making == making else
                 "views made on the GPU, not timed apart")
        echo(f"ours ({precision}): {rate:8.1f} images/s ({where})")
    base, waiting = time_baseline(path, setting, tier, warmup, device, workers)
    result.update(baseline=base, baseline_waiting=waiting, workers=workers)
    echo(f"baseline (fp32): {base:8.1f} images/s ({workers} DataLoader workers, PIL; "
         f"{waiting:.0%} of the time waiting for data)")
    for precision, rate in result["ours"].items():
        result["ratio"][precision] = rate / base
        if deadline is not None and time.perf_counter() > deadline:
            echo(f"ratio ({precision}): {rate / base:8.2f}x   (encoder alone: skipped, out of time)")
            continue
        ceiling = time_encoder_only(tier, steps, warmup, device, precision)
        result["ceiling"][precision] = ceiling
        echo(f"ratio ({precision}): {rate / base:8.2f}x   (encoder alone on fixed tensors, no data: "
             f"{ceiling:.1f} images/s = {ceiling / base:.2f}x, the most any pipeline reaches here)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tier", default="mini")
    parser.add_argument("--setting", default="da_crop_small_colour", help="A DA setting without rotation.")
    parser.add_argument("--data", type=Path, default=None, help="Dataset file; default: a synthetic one.")
    parser.add_argument("--steps", type=int, default=20, help="Timed steps per pipeline (after warm-up).")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 16), help="Baseline workers.")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="Tier override, as for run.")
    args = parser.parse_args()
    device = pick_device(args.device)
    setting = load_settings()[args.setting]
    steps = args.warmup + args.steps
    overrides = [*args.overrides, f"train.steps={steps}", f"train.log_every={steps}",
                 f"train.checkpoint_every={steps + 1}"]
    tier = load_tier(args.tier, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.data
        if path is None:
            from causal3dident.testing import make_synthetic_dataset

            n = max(4 * tier.train.batch_size, 2048) + tier.eval.samples
            path = make_synthetic_dataset(Path(tmp) / "perf.h5", n=n, resolution=tier.resolution, pairs=(), seed=0)
        measure(path, setting, args.tier, overrides, args.warmup, device, args.workers)


def precisions(device: torch.device) -> list[str]:
    """fp32, plus bf16 where the device computes in it natively."""
    native = device.type == "cuda" or (torch.backends.mkldnn.is_available()
                                       and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return ["fp32", "bf16"] if native else ["fp32"]


if __name__ == "__main__":
    main()
