"""``c3di demo``: the whole pipeline at small scale in one command.

Render a small Causal3DIdent with LT pairs (train.h5 + test.h5), load it as a torchvision dataset through a
multi-worker DataLoader (single images, an LT pair, a DA pair), train and probe the ``smoke`` benchmark on an LT
and a DA setting, then draw the sample grid and the LT pairs and write a leaderboard. Everything goes under
``--out``; rerunning reuses the rendered files and the finished runs.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as in 'c3di bench': before torch is imported

import click

DEMO_SETTINGS = ("lt_hues", "da_colour")
"""The smoke benchmark's settings in the demo: one latent transformation, one data augmentation."""


def _step(title: str) -> None:
    click.secho(f"\n== {title}", bold=True)


def demo_data(folder: Path, n: int, test_n: int, resolution: int, quality: str, workers: int | None,
              device: str, assets: Path | None) -> None:
    """Render train.h5 (``n`` anchors with the hues and positions views) and test.h5 (``test_n`` samples)."""
    from causal3dident.benchmarks.tier_data import ensure_tier_data
    from causal3dident.benchmarks.tiers import load_tier

    tier = load_tier("smoke")
    data = {"train": n, "test": test_n, "seed": 0, "test_seed": 1, "resolution": resolution, "quality": quality,
            "pairs": ["hues", "positions"]}
    ensure_tier_data(dataclasses.replace(tier, data=data), folder, workers=workers, device=device, assets=assets,
                     echo=click.echo)


def demo_loading(folder: Path) -> None:
    """Read one batch of each kind through a 2-worker DataLoader and print what comes out."""
    import torch
    from torch.utils.data import DataLoader
    from torchvision.transforms import v2

    from causal3dident import Causal3DIdent, channels_last_collate

    to_float = v2.ToDtype(torch.float32, scale=True)
    for pairs, target in ((None, ("class", "latents")), ("hues", "latents"), ("colour", "class")):
        ds = Causal3DIdent(folder, split="train", transform=to_float, target_type=target, pairs=pairs,
                           image_format="tensor")
        loader = DataLoader(ds, batch_size=16, shuffle=True, num_workers=2, collate_fn=channels_last_collate)
        batch = next(iter(loader))
        shapes = ", ".join(_describe(x) for x in batch)
        click.echo(f"Causal3DIdent(pairs={pairs!r}, target_type={target!r}): {len(ds)} samples; a batch = ({shapes})")


def _describe(x: object) -> str:
    if isinstance(x, (list, tuple)):
        return "(" + ", ".join(_describe(v) for v in x) + ")"
    shape = getattr(x, "shape", None)
    return f"{type(x).__name__}{list(shape)}" if shape is not None else type(x).__name__


def demo_benchmark(folder: Path, runs: Path, device: str) -> Path:
    """The smoke tier on the demo settings; returns the leaderboard's path."""
    from causal3dident.benchmarks.leaderboard import write_leaderboard
    from causal3dident.benchmarks.runner import is_finished, run_benchmark, run_dir
    from causal3dident.benchmarks.settings import get_setting, load_settings
    from causal3dident.benchmarks.tiers import load_tier

    tier, settings = load_tier("smoke"), load_settings()
    for setting_id in DEMO_SETTINGS:
        setting = get_setting(setting_id, settings)
        if is_finished(run_dir(runs, tier.name, "simclr", setting.id, 0)):
            click.echo(f"{setting_id}: finished earlier, reused")
            continue
        path = run_benchmark(setting, tier, 0, folder, runs, method="simclr", device=device)
        click.echo(f"{setting_id}: {path / 'results.csv'}")
    board, pictures = write_leaderboard([runs], folder / "LEADERBOARD.md", overwrite=True)  # rerun: refreshed
    click.echo(f"leaderboard: {board}" + "".join(f", {p}" for p in pictures))
    return board


def demo_figures(folder: Path) -> list[Path]:
    """The sample grid (a row per class) and the LT pairs of the demo's training file."""
    from causal3dident.figures import draw_lt_pairs, draw_sample_grid

    drawn = [draw_sample_grid(folder / "train.h5", folder / "sample_grid.png"),
             draw_lt_pairs(folder / "train.h5", folder / "lt_pairs.png")]
    return [p for p in drawn if p is not None]


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo"), show_default=True,
              help="Folder for the data, runs, figures and leaderboard.")
@click.option("--n", type=int, default=256, show_default=True, help="Training samples to render (each with 2 views).")
@click.option("--test-n", type=int, default=128, show_default=True, help="Held-out samples to render.")
@click.option("--resolution", type=int, default=64, show_default=True, help="Image side in pixels.")
@click.option("--quality", type=click.Choice(["paper", "fast", "preview"]), default="fast", show_default=True,
              help="Render quality preset (see 'c3di render --help').")
@click.option("--workers", type=int, default=None, help="Render processes (default: the renderer's).")
@click.option("--device", type=click.Choice(["auto", "cpu"]), default="auto", show_default=True,
              help="auto: GPUs for rendering and training when present; cpu: never.")
@click.option("--assets", type=click.Path(path_type=Path), default=None,
              help="Folder with meshes/*.obj (default: $C3DI_ASSETS, else download and verify).")
def demo_command(out: Path, n: int, test_n: int, resolution: int, quality: str, workers: int | None, device: str,
                 assets: Path | None) -> None:
    """Render a small dataset with pairs, load it, run the smoke benchmark, draw the pictures (a few minutes)."""
    start = time.monotonic()
    _step(f"1/4 render {n} + {test_n} samples at {resolution} px into {out}")
    demo_data(out, n, test_n, resolution, quality, workers, device, assets)
    _step("2/4 load as a torchvision dataset")
    demo_loading(out)
    _step("3/4 smoke benchmark: " + ", ".join(DEMO_SETTINGS))
    board = demo_benchmark(out, out / "runs", "cpu" if device == "cpu" else "auto")
    _step("4/4 figures")
    for path in demo_figures(out):
        click.echo(f"wrote {path}")
    click.echo(f"\ndone in {time.monotonic() - start:.0f} s: see {board} and {out / 'sample_grid.png'}; "
               f"'{c3di_command()} info {out / 'train.h5'}' describes the data")
    venv = Path(sys.prefix)
    if shutil.which("c3di") is None and sys.prefix != sys.base_prefix:
        click.echo(f"(to type plain 'c3di', enter the environment first: source {venv / 'bin' / 'activate'})")


def c3di_command() -> str:
    """How to call c3di from the user's shell: plain ``c3di`` when that is this one on PATH, else its full path
    (after ``scripts/setup.sh`` the shell is outside the virtual environment)."""
    ours = Path(sys.executable).with_name("c3di")
    found = shutil.which("c3di")
    if found is not None and (not ours.exists() or Path(found).resolve() == ours.resolve()):
        return "c3di"
    return str(ours) if ours.exists() else "c3di"
