"""``c3di bench``: run one setting, sweep a tier, build the leaderboard, list settings and tiers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

# Spinning OpenMP threads collapse torch's CPU throughput (up to 10x measured) when other processes
# share the cores; passive waiting costs a few percent on an idle machine. Must precede importing torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import click

from causal3dident.cli import on_interrupt
from causal3dident.cli_options import SEED, SEEDS

if TYPE_CHECKING:
    from .progress import TrainProgress
    from .tiers import Tier

SETTINGS_OPTION = click.option("--settings", "settings_files", multiple=True, type=click.Path(path_type=Path),
                               help="Extra settings YAML file (same form as benchmarks/settings.yaml). Repeatable.")
SET_OPTION = click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                          help="Override a tier value, e.g. train.steps=100 or method.temperature=0.5 (a parameter "
                               "of the run's method); checked against the tier's schema. Repeatable; recorded.")
DEVICE_OPTION = click.option("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N.")
RENDER_WORKERS_OPTION = click.option("--render-workers", type=int, default=None,
                                     help="Render processes for the tier's data (default: the renderer's).")
ASSETS_OPTION = click.option("--assets", type=click.Path(path_type=Path), default=None,
                             help="Folder with meshes/*.obj (default: $C3DI_ASSETS, else download).")


@click.group()
def bench() -> None:
    """Benchmark: train self-supervised encoders on the paper's settings, probe them, compare with Table 1."""


@bench.command()
@click.option("--setting", default=None,
              help="Setting id (see 'c3di bench settings'); required for causal3dident. With --dataset "
                   "multimodal3dident: the rows' setting label (default multimodal3dident).")
@click.option("--dataset", type=click.Choice(["causal3dident", "multimodal3dident"]), default="causal3dident",
              show_default=True, help="multimodal3dident: image-text contrastive learning on train/val/test splits "
                                      "(benchmarks/tiers_multimodal.yaml; docs/multimodal.md, Benchmark).")
@click.option("--tier", default="mini", help="smoke, mini or paper (see 'c3di bench tiers').")
@click.option("--seed", type=SEED, default=0, help="Run seed (initialisation, batches, augmentations, probe split).")
@click.option("--method", default=None,
              help="simclr (default), barlowtwins, or module:function / file.py:function returning a Method. "
                   "With --encoder: the name its rows get.")
@click.option("--encoder", default=None,
              help="Evaluate an already-trained encoder instead of training: module:function returning an "
                   "nn.Module, or a checkpoint.pt of an earlier run.")
@click.option("--data", required=True, type=click.Path(path_type=Path),
              help="A dataset .h5 file (its last eval.samples rows are held out) or a folder with train.h5 "
                   "and test.h5.")
@click.option("--out", default="runs", show_default=True, type=click.Path(path_type=Path), help="Runs folder.")
@SETTINGS_OPTION
@SET_OPTION
@DEVICE_OPTION
@click.option("--eval-every", type=click.IntRange(min=0), default=0,
              help="Also probe the held-out samples every N steps into curve.csv (a learning curve); "
                   "0: only at the end.")
def run(setting: str | None, dataset: str, tier: str, seed: int, method: str | None, encoder: str | None, data: Path,
        out: Path, settings_files: tuple[Path, ...], overrides: tuple[str, ...], device: str, eval_every: int) -> None:
    """Train and evaluate one setting; write OUT/<tier>/<method>/<setting>/seed<S>/results.csv."""
    if dataset == "multimodal3dident":
        if eval_every or settings_files:
            raise click.UsageError("--eval-every and --settings are not supported with --dataset multimodal3dident")
        _run_imgtxt(setting, tier, seed, method, encoder, data, out, overrides, device)
        return
    if setting is None:
        raise click.UsageError("Missing option '--setting' (see 'c3di bench settings').")
    from .runner import run_benchmark
    from .settings import get_setting, load_settings
    from .tiers import load_tier

    the_setting = get_setting(setting, load_settings(settings_files))
    the_tier = load_tier(tier, overrides, method=None if encoder else method or "simclr")
    progress = _progress(the_tier)
    on_interrupt(progress.interrupted if encoder is None else "nothing to resume: rerun the same command to "
                                                               "evaluate the encoder again")
    path = run_benchmark(the_setting, the_tier, seed, data, out, method=method, encoder=encoder, device=device,
                         on_step=progress, echo=click.echo, eval_every=eval_every)
    click.echo(f"wrote {path / 'results.csv'}")
    _print_summary(path)


def _run_imgtxt(setting: str | None, tier: str, seed: int, method: str | None, encoder: str | None, data: Path,
                out: Path, overrides: tuple[str, ...], device: str) -> None:
    """``run --dataset multimodal3dident``: image-text training and their evaluation protocol."""
    from .imgtxt_run import DATASET, load_imgtxt_tier, run_imgtxt

    if encoder is not None:
        raise click.UsageError("--encoder is not supported with --dataset multimodal3dident; drop it")
    the_tier = load_imgtxt_tier(tier, overrides, method=method or "imgtxt")
    progress = _progress(the_tier)
    on_interrupt(progress.interrupted)
    path = run_imgtxt(the_tier, seed, data, out, method=method or "imgtxt", setting=setting or DATASET,
                      device=device, on_step=progress, echo=click.echo)
    click.echo(f"wrote {path / 'results.csv'}")


@bench.command()
@click.option("--tier", default="mini", help="smoke, mini or paper.")
@click.option("--out", "folder", required=True, type=click.Path(path_type=Path),
              help="Folder to render train.h5 and test.h5 into.")
@RENDER_WORKERS_OPTION
@ASSETS_OPTION
@click.option("--render-device", default="auto", show_default=True, help="Cycles device, as 'c3di render --device'.")
@SET_OPTION
def data(tier: str, folder: Path, render_workers: int | None, assets: Path | None, render_device: str,
         overrides: tuple[str, ...]) -> None:
    """Render the dataset a tier declares (tiers.yaml 'data:'); a killed render resumes, finished files are reused."""
    from .tier_data import ensure_tier_data
    from .tiers import load_tier

    ensure_tier_data(load_tier(tier, overrides), folder, workers=render_workers, device=render_device, assets=assets,
                     echo=click.echo)


@bench.command()
@click.option("--tier", default="mini", help="smoke, mini or paper.")
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Dataset file or folder (as for run).")
@click.option("--render", is_flag=True,
              help="First render the tier's data into the --data folder (as 'c3di bench data'), reusing what is there.")
@RENDER_WORKERS_OPTION
@ASSETS_OPTION
@click.option("--out", default="runs", show_default=True, type=click.Path(path_type=Path), help="Runs folder.")
@click.option("--method", default="simclr", show_default=True, help="Method, as for run.")
@click.option("--setting", "setting_ids", multiple=True,
              help="Settings to run (repeatable); default: the 12 of Table 1; 'all' for every known setting.")
@click.option("--seeds", type=SEEDS, default=None, help="Comma-separated seeds; default: the tier's.")
@SETTINGS_OPTION
@SET_OPTION
@DEVICE_OPTION
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: one run after another here; ray: every run as a Ray task (one GPU each when the "
                   "cluster has GPUs, else one CPU), needs causal3dident[ray]. See docs/scale_out.md.")
@click.option("--address", default=None, envvar="RAY_ADDRESS", show_envvar=True,
              help="With --backend ray: the cluster's address (HOST:PORT); default: a local Ray instance.")
def sweep(tier: str, data: Path, render: bool, render_workers: int | None, assets: Path | None, out: Path,
          method: str, setting_ids: tuple[str, ...], seeds: list[int] | None, settings_files: tuple[Path, ...],
          overrides: tuple[str, ...], device: str, backend: str, address: str | None) -> None:
    """Run every setting x seed of a tier, skipping finished runs and resuming interrupted ones."""
    from .methods import resolve_method
    from .runner import is_finished, run_benchmark, run_dir
    from .settings import get_setting, load_settings, table1_ids
    from .tiers import load_tier

    settings = load_settings(settings_files)
    ids = list(settings) if "all" in setting_ids else list(setting_ids) or table1_ids(settings)
    the_tier = load_tier(tier, overrides, method=method)
    seed_list = seeds or list(the_tier.seeds)
    name = resolve_method(method, the_tier).name
    if render:
        from .tier_data import ensure_tier_data

        render_device = "cpu" if device == "cpu" else "auto"
        ensure_tier_data(the_tier, data, workers=render_workers, device=render_device, assets=assets,
                         echo=click.echo)
    jobs = [(get_setting(i, settings), s) for i in ids for s in seed_list]
    if backend == "ray":
        from .ray_sweep import ray_sweep

        ray_sweep(jobs, the_tier, data, out, method=method, name=name, device=device, address=address,
                  echo=click.echo)
        return
    from .progress import SweepProgress

    sweep_progress = SweepProgress(len(jobs))
    on_interrupt(sweep_progress.interrupted)
    for k, (setting, seed) in enumerate(jobs, 1):
        if is_finished(run_dir(out, the_tier.name, name, setting.id, seed)):
            sweep_progress.skip(k, f"{setting.id} seed {seed}")
            continue
        progress = _progress(the_tier, prefix=f"[{k}/{len(jobs)}] ")
        sweep_progress.start(k, f"{setting.id} seed {seed}", progress)
        run_benchmark(setting, the_tier, seed, data, out, method=method, device=device, on_step=progress,
                      echo=click.echo)
        sweep_progress.done()


@bench.command()
@click.argument("dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", default=None, type=click.Path(path_type=Path),
              help="Markdown file; heatmaps are written beside it.  [default: DIRS[0]/LEADERBOARD.md]")
@click.option("--layer", type=click.Choice(["final", "hidden"]), default="final", show_default=True)
@click.option("--probe", type=click.Choice(["kernel_ridge", "linear"]), default="kernel_ridge", show_default=True,
              help="Regression probe for the latents (class accuracy is always logistic regression).")
@click.option("--metric", "metrics", multiple=True, metavar="NAME",
              help="Also tabulate this metric per setting: mlp, mcc_pearson, mcc_spearman, mcc_content_pearson, "
                   "mcc_content_spearman, dci_disentanglement, dci_completeness, dci_informativeness, logistic. "
                   "Repeatable.")
@click.option("--overwrite", is_flag=True, help="Replace --out and its heatmaps if they exist.")
def leaderboard(dirs: tuple[Path, ...], out: Path | None, layer: str, probe: str, metrics: tuple[str, ...],
                overwrite: bool) -> None:
    """Tabulate all results under DIRS beside the paper's Table 1, with Spearman's rho and a heatmap."""
    from .leaderboard import write_leaderboard

    path, pictures = write_leaderboard(dirs, out or dirs[0] / "LEADERBOARD.md", layer, probe, metrics,
                                       overwrite=overwrite)
    click.echo(f"wrote {path}" + "".join(f", {p}" for p in pictures))


@bench.command("temporal")
@click.option("--data", required=True, type=click.Path(path_type=Path),
              help="A rendered sequence file (c3di render --preset temporal_causal3dident --n FRAMES ...).")
@click.option("--out", default="runs", show_default=True, type=click.Path(path_type=Path), help="Runs folder.")
@click.option("--seed", type=SEED, default=0, help="Initialisation and batches of both networks.")
@click.option("--steps", type=click.IntRange(min=1), default=300, show_default=True, help="Autoencoder steps.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--latent-dim", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--held-out", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.5,
              show_default=True, help="Fraction of the frames, the last ones, that are evaluated.")
@click.option("--eval-epochs", type=click.IntRange(min=1), default=100, show_default=True,
              help="Epochs of CITRIS's prediction network.")
@click.option("--device", default="cpu", show_default=True, help="cpu, auto, cuda or cuda:N.")
def temporal(data: Path, out: Path, seed: int, steps: int, batch_size: int, latent_dim: int, held_out: float,
             eval_epochs: int, device: str) -> None:
    """Smoke run: a small autoencoder on a sequence's frames, evaluated by CITRIS's R^2 / Spearman matrices."""
    import json

    from .temporal_smoke import SmokeConfig, run_temporal_smoke

    config = SmokeConfig(steps=steps, batch_size=batch_size, latent_dim=latent_dim, held_out=held_out,
                         eval_epochs=eval_epochs)
    path = run_temporal_smoke(data, out, seed, config, device, echo=click.echo)
    click.echo(f"wrote {path / 'results.csv'}")
    summary = json.loads((path / "run.json").read_text())["summary"]
    click.echo("  " + ", ".join(f"{k} {v:.3f}" for k, v in summary.items()))


@bench.command("settings")
@SETTINGS_OPTION
def settings_command(settings_files: tuple[Path, ...]) -> None:
    """List the known settings: id, table, how views are made, content and style."""
    from .settings import load_settings

    for s in load_settings(settings_files).values():
        views = " + ".join(s.augment) if s.augment else ""
        if s.lt:
            views = (views + " + " if views else "") + f"LT {s.lt} ({s.lt_pairs})"
        click.echo(f"{s.id:32s} table {s.table:4s} {views:40s} style: {', '.join(s.style)}")


@bench.command("tiers")
@click.option("--dataset", type=click.Choice(["causal3dident", "multimodal3dident"]), default="causal3dident",
              show_default=True, help="multimodal3dident: the tiers of benchmarks/tiers_multimodal.yaml.")
def tiers_command(dataset: str) -> None:
    """List the tiers with their main numbers."""
    from .methods import method_params
    from .tiers import load_tier, tier_names

    names, load, param_fn = tier_names(), load_tier, method_params
    if dataset == "multimodal3dident":
        from .imgtxt import imgtxt_params
        from .imgtxt_run import load_imgtxt_tier, tier_names as imgtxt_tier_names

        names, load, param_fn = imgtxt_tier_names(), load_imgtxt_tier, imgtxt_params
    for name in names:
        t = load(name)
        flag = " [provisional]" if t.provisional else ""
        params = "; ".join(f"{m} " + ", ".join(f"{k} {v}" for k, v in param_fn(m, t).items()) for m in t.method)
        click.echo(f"{name}{flag}: {t.resolution} px, {t.model.encoder}, batch {t.train.batch_size}, "
                   f"{t.train.steps} steps, lr {t.train.lr}, {params}, seeds {list(t.seeds)}; {t.description}")


def _progress(tier: Tier, prefix: str = "") -> TrainProgress:
    """A step callback printing the loss, steps/s and time left every ``train.log_every`` steps."""
    from .progress import TrainProgress

    return TrainProgress(tier.train.steps, tier.train.log_every, tier.train.checkpoint_every, prefix=prefix)


def _print_summary(path: Path) -> None:
    """The run's final-layer scores on one line per probe."""
    import csv

    with (path / "results.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["layer"] == "final"]
    for probe in ("logistic", "kernel_ridge", "linear"):
        part = [f"{r['factor']} {float(r['value']):.2f}" for r in rows if r["probe"] == probe]
        click.echo(f"  final / {probe}: " + ", ".join(part))
