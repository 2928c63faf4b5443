"""``c3di render``, ``c3di preview`` and ``c3di assets``: the renderer's commands (no bpy in this process)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..cli_options import BALANCED_HELP, SEED, SPLIT_HELP
from ..errors import ConfigError
from ..outputs import check_output_file
from ..splits import choose_split
from .config import QUALITY_PRESETS, parse_overrides, render_config
from .devices import DEVICE_CHOICES, require_bpy, select_devices
from .job import DEFAULT_CHUNK_SIZE

_device = click.option("--device", type=click.Choice(DEVICE_CHOICES, case_sensitive=False), default="auto",
                       help="Cycles device; auto: OptiX, CUDA or HIP GPUs if Blender sees any, else the CPU.")
_workers = click.option("--workers", type=int, default=None,
                        help="Render processes (CPU: they share the cores; default 1). GPUs: one per GPU.")
_quality = click.option("--quality", type=click.Choice(list(QUALITY_PRESETS)), default="fast",
                        help="paper: 512 samples, denoised (the original); fast: ~30x cheaper, at 224 px "
                             ">= 38 dB PSNR against paper (less at 128 and 64 px: docs/rendering.md); preview: "
                             "tiny and noisy, for tests.")
_set = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                    help="Override one render setting of the quality preset, e.g. samples=32 or denoise=false "
                         "(names and types: render/config.py, docs/rendering.md). Repeatable; recorded in the file.")
_assets = click.option("--assets", type=click.Path(path_type=Path), default=None,
                       help="Folder with meshes/*.obj (default: $C3DI_ASSETS, else download to the user cache).")
_overwrite_png = click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")


def _resume_hint_on_ctrl_c(command: Callable[..., None]) -> Callable[..., None]:
    """Ctrl-C during a job: one line saying how to resume (click alone prints only "Aborted!"), exit 130."""
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        from .job import JobInterrupted

        try:
            command(*args, **kwargs)
        except JobInterrupted as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(130)
    return wrapper


@click.command()
@click.argument("source", required=False, type=click.Path(path_type=Path))
@click.option("--preset", default="causal3dident", help="SCM preset to sample latents from (ignored with SOURCE).")
@click.option("--n", "n", type=int, default=None, help="Samples to draw (all shards together); not with SOURCE.")
@click.option("--seed", type=SEED, default=0, help="Seed of the latents (not with SOURCE).")
@click.option("--pairs", default=None, help="Transformations whose views to render too, e.g. 'hues,positions'; "
                                            "with SOURCE: which of its pairs (default all). Multimodal3DIdent: also "
                                            "the text-only pairs 'phrasing', 'palette' (stored, not rendered).")
@click.option("--intervene", "interventions", multiple=True, help="As in 'c3di latents' (not with SOURCE).")
@click.option("--balanced-classes", is_flag=True, help=BALANCED_HELP + " Not with SOURCE.")
@click.option("--split", default=None, help=SPLIT_HELP + " With SOURCE: default the split SOURCE records.")
@click.option("--triplets", type=int, default=None,
              help="Render N of CITRIS's triplets of a sequence (SOURCE, or --n frames of a temporal --preset): two "
                   "frames and a third mixing their latents by a random mask (--seed draws them). docs/temporal.md.")
@click.option("--triplet-masks", type=click.Choice(["fine", "coarse"]), default="fine", show_default=True,
              help="With --triplets: fine, one mask entry per variable; coarse, the preset's groups share one.")
@click.option("--resolution", type=int, default=224, help="Image side in pixels (paper: 224).")
@_quality
@_set
@_workers
@_device
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Output .h5 file, or a folder to write causal3dident[-shardI-of-K].h5 into.")
@click.option("--shard", type=int, default=None, help="Render only shard i (0-based) of --num-shards.")
@click.option("--num-shards", type=int, default=None, help="Number of shards (machines) the job is split into.")
@_assets
@click.option("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE,
              help="Samples per resumable work unit in OUT.parts/.")
@click.option("--overwrite", is_flag=True, help="Replace --out, and restart an unfinished job with other settings.")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: render processes on this machine; ray: actors on a Ray cluster (one per GPU, else "
                   "per CPU slot; --workers: how many), needs causal3dident[ray]. See docs/scale_out.md.")
@click.option("--address", default=None, envvar="RAY_ADDRESS", show_envvar=True,
              help="With --backend ray: the cluster's address (HOST:PORT of 'ray start --head'); default: start "
                   "a local Ray instance with --workers (else all) CPUs.")
@click.option("--compression", type=click.Choice(["gzip", "lz4"]), default="gzip", show_default=True,
              help="Images: gzip (any HDF5 reader) or lz4 (loads ~1.6x faster; other HDF5 tools need hdf5plugin).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_resume_hint_on_ctrl_c
def render(source: Path | None, preset: str, n: int | None, seed: int, pairs: str | None,
           interventions: tuple[str, ...], balanced_classes: bool, split: str | None, triplets: int | None,
           triplet_masks: str, resolution: int,
           quality: str, workers: int | None, device: str,
           out: Path, shard: int | None, num_shards: int | None, assets: Path | None, chunk_size: int,
           overwrite: bool, backend: str, address: str | None, compression: str, quiet: bool,
           overrides: tuple[str, ...]) -> None:
    """Render a dataset: latents sampled from --preset (--n), or those of an existing file SOURCE.

    Anchors go to /images, each transformation's views to /pairs/<name>/images. Killed jobs resume
    when rerun with the same command; shards are joined with 'c3di merge'.
    """
    from .job import file_input, output_path, run_job, sampled_input, sequence_triplets

    config = render_config(quality, resolution, **parse_overrides(overrides))
    if triplets is not None:
        if pairs or interventions or balanced_classes:
            raise ConfigError("--triplets mixes a sequence's frames: drop --pairs/--intervene/--balanced-classes")
        if source is not None and n is not None:
            raise ConfigError("SOURCE is the sequence the triplets come from: drop --n, or drop SOURCE to sample one")
        inp = sequence_triplets(source, preset, n, seed, triplets, masks=triplet_masks, shard=shard,
                                num_shards=num_shards,
                                split=None if source is not None and split is None else
                                choose_split(split, output_path(out, shard, num_shards)))
    elif source is not None:
        if n is not None or interventions or balanced_classes:
            raise ConfigError("SOURCE brings its own latents: drop --n/--intervene/--balanced-classes, or drop SOURCE "
                              "to sample new ones")
        inp = file_input(source, pairs=pairs, shard=shard, num_shards=num_shards, split=split)
    else:
        if n is None:
            raise ConfigError("give --n (samples to draw from --preset) or a dataset file SOURCE to render")
        inp = sampled_input(preset, n, seed, pairs=pairs, interventions=interventions, shard=shard,
                            num_shards=num_shards, balanced_classes=balanced_classes,
                            split=choose_split(split, output_path(out, shard, num_shards)))
    if backend == "local":
        require_bpy()  # after the options are checked, before any work; the ray backend's actors need it instead
    if backend == "ray":
        from tqdm import tqdm

        from .ray_backend import RayBackend

        with RayBackend(address, num_cpus=workers, echo=lambda line: tqdm.write(line, file=sys.stderr)) as ray_jobs:
            result = run_job(inp, output_path(out, shard, num_shards), config, ray_jobs.devices(device),
                             workers=workers, assets=assets, chunk_size=chunk_size, overwrite=overwrite,
                             progress=not quiet, backend=ray_jobs, compression=compression)
    else:
        if click.get_current_context().get_parameter_source("address") == click.core.ParameterSource.COMMANDLINE:
            raise ConfigError("--address is for --backend ray; add --backend ray, or drop --address")
        result = run_job(inp, output_path(out, shard, num_shards), config, select_devices(device),
                         workers=workers, assets=assets, chunk_size=chunk_size, overwrite=overwrite,
                         progress=not quiet, compression=compression)
    rate = result.rendered / result.seconds if result.seconds > 0 else 0.0
    resumed = result.total - result.rendered
    click.echo(f"wrote {result.path}: {len(inp.latents)} samples x {len(inp.streams)} views = {result.total} "
               f"images at {resolution} px, quality {quality}{''.join(f', {o}' for o in overrides)}; "
               f"rendered {result.rendered} "
               f"in {result.seconds:.1f} s ({rate:.2f} img/s, {result.workers} worker(s) on {result.device})"
               + (f"; {resumed} from an earlier run" if resumed else ""))


@click.command()
@click.option("--out", type=click.Path(path_type=Path), required=True, help="PNG file to write.")
@click.option("--per-class", type=int, default=4, help="Random latents per class (columns).")
@click.option("--preset", default="causal3dident", help="SCM preset to sample latents from.")
@click.option("--seed", type=SEED, default=0, help="Seed of the latents.")
@click.option("--resolution", type=int, default=128, help="Image side in pixels.")
@_quality
@_set
@_workers
@_device
@_assets
@_overwrite_png
def preview(out: Path, per_class: int, preset: str, seed: int, resolution: int, quality: str,
            workers: int | None, device: str, assets: Path | None, overrides: tuple[str, ...],
            overwrite: bool) -> None:
    """Write a contact sheet: one row per class, columns of random latents of that class."""
    from .preview import contact_sheet, save_sheet

    check_output_file(out, overwrite)
    config = render_config(quality, resolution, **parse_overrides(overrides))
    require_bpy()
    sheet = contact_sheet(preset, per_class, seed, config, select_devices(device), workers=workers, assets=assets)
    save_sheet(sheet, out)
    click.echo(f"wrote {out}: 7 classes x {per_class} latents at {resolution} px, quality {quality}")


@click.command()
@click.option("--out", type=click.Path(path_type=Path), required=True, help="PNG file to write.")
@click.option("--steps", type=int, default=7, show_default=True, help="Values per latent, evenly over [-1, 1].")
@click.option("--class", "class_name", default=None, help="Class of the base sample (default: a random draw's).")
@click.option("--preset", default="causal3dident", help="SCM preset the base sample comes from.")
@click.option("--seed", type=SEED, default=0, help="Seed of the base sample.")
@click.option("--resolution", type=int, default=128, help="Image side in pixels.")
@_quality
@_set
@_workers
@_device
@_assets
@_overwrite_png
def traversals(out: Path, steps: int, class_name: str | None, preset: str, seed: int, resolution: int, quality: str,
               workers: int | None, device: str, assets: Path | None, overrides: tuple[str, ...],
               overwrite: bool) -> None:
    """Write latent traversals: one row per latent varied over [-1, 1] with the rest fixed, and a class row."""
    from .preview import save_sheet, traversal_sheet

    check_output_file(out, overwrite)
    config = render_config(quality, resolution, **parse_overrides(overrides))
    require_bpy()
    sheet = traversal_sheet(preset, seed, steps, config, select_devices(device), class_name=class_name,
                            workers=workers, assets=assets)
    save_sheet(sheet, out)
    click.echo(f"wrote {out}: 11 rows (class and 10 latents) x {steps} values at {resolution} px, quality {quality}")


@click.group()
def assets() -> None:
    """The seven object meshes: download, check."""


@assets.command("fetch")
@_assets
def assets_fetch(assets: Path | None) -> None:
    """Download missing or damaged meshes into the user cache (or check the --assets folder) and verify hashes."""
    from .assets import resolve

    for mesh in resolve(assets):
        click.echo(f"OK {mesh.name}: {mesh.path}")


@assets.command("verify")
@_assets
def assets_verify(assets: Path | None) -> None:
    """Check every mesh's SHA-256 without downloading; exit 1 if any is missing or wrong."""
    import sys

    from .assets import verify

    lines = verify(assets)
    for line in lines:
        click.echo(line)
    if any(not line.startswith("OK ") for line in lines):
        sys.exit(1)
