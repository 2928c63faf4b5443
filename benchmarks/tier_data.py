"""The dataset a tier trains on, rendered on demand: ``train.h5`` (anchors + exact LT views) and ``test.h5``.

A tier's ``data:`` section (``tiers.yaml``) says what to render: sample counts, seeds, resolution, render
quality and the LT pair sets. ``c3di bench data`` and ``c3di bench sweep --render`` call
:func:`ensure_tier_data`, which renders what is missing through the renderer's resumable jobs (a killed render
resumes) and reuses files already there once it has checked that they are what the tier asks for.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from causal3dident.errors import ConfigError
from causal3dident.store import open_dataset, pair_names

from .tiers import Tier

@dataclass(frozen=True)
class SplitSpec:
    """One file of a tier's data: how many samples, from which seed, with which LT pairs."""

    name: str
    n: int
    seed: int
    pairs: tuple[str, ...]
    resolution: int
    quality: str
    preset: str

    @property
    def filename(self) -> str:
        return f"{self.name}.h5"


def split_specs(tier: Tier) -> list[SplitSpec]:
    """The train and test files of ``tier`` (train carries the LT pairs; test has none)."""
    data = tier.data
    if data is None:
        raise ConfigError(f"tier {tier.name!r} declares no data (no 'data:' section in tiers.yaml); render a "
                          f"dataset yourself and pass it with --data")
    common = {"resolution": data.resolution, "quality": data.quality, "preset": data.preset}
    return [SplitSpec("train", data.train, data.seed, data.pairs, **common),
            SplitSpec("test", data.test, data.test_seed, (), **common)]


def check_existing(path: Path, spec: SplitSpec) -> None:
    """Raise a ConfigError naming every way the file at ``path`` differs from what the tier asks for."""
    with open_dataset(path) as f:
        found = {"num_samples": int(f.attrs["num_samples"]), "seed": int(f.attrs["seed"]),
                 "resolution": int(f["images"].shape[1]) if "images" in f else None,
                 "num_rendered": int(f.attrs.get("num_rendered", 0))}
        quality = json.loads(f.attrs["render_settings"]).get("quality") if "render_settings" in f.attrs else None
        has_pairs = set(pair_names(f))
    problems = []
    if found["num_samples"] != spec.n:
        problems.append(f"{found['num_samples']} samples, not {spec.n}")
    if found["seed"] != spec.seed:
        problems.append(f"seed {found['seed']}, not {spec.seed}")
    if found["resolution"] != spec.resolution:
        problems.append(f"images of {found['resolution']} px, not {spec.resolution}")
    if found["num_rendered"] != spec.n:
        problems.append(f"{found['num_rendered']} of {spec.n} images rendered")
    if quality is not None and quality != spec.quality:
        problems.append(f"quality {quality}, not {spec.quality}")
    if missing := [p for p in spec.pairs if p not in has_pairs]:
        problems.append(f"no pairs {', '.join(missing)}")
    if problems:
        raise ConfigError(f"{path} is not this tier's {spec.name} data ({'; '.join(problems)}); delete it to "
                          f"render it again, or point --data at another folder")


def ensure_tier_data(tier: Tier, folder: str | os.PathLike[str], *, workers: int | None = None,
                     device: str = "auto", assets: str | os.PathLike[str] | None = None, progress: bool = True,
                     echo: Callable[[str], None] = print) -> Path:
    """Render the files of ``tier`` that ``folder`` lacks (resuming a killed render) and check those present."""
    from causal3dident.render.config import render_config
    from causal3dident.render.devices import select_devices
    from causal3dident.render.job import run_job, sampled_input

    folder = Path(folder)
    if folder.suffix in (".h5", ".hdf5"):
        raise ConfigError(f"--data {folder}: with --render, --data is the folder to render train.h5 and "
                          f"test.h5 into, not a file")
    folder.mkdir(parents=True, exist_ok=True)
    for spec in split_specs(tier):
        path = folder / spec.filename
        if path.is_file():
            check_existing(path, spec)
            echo(f"{path}: {spec.n} samples at {spec.resolution} px, reused")
            continue
        inp = sampled_input(spec.preset, spec.n, spec.seed, pairs=",".join(spec.pairs) or None)
        config = render_config(spec.quality, spec.resolution)
        result = run_job(inp, path, config, select_devices(device), workers=workers, assets=assets,
                         progress=progress)
        echo(f"{path}: rendered {result.rendered} of {result.total} images in {result.seconds:.0f} s "
             f"({result.workers} worker(s) on {result.device})")
    return folder
