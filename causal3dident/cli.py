"""The ``c3di`` command line: one group, commands loaded lazily so start-up imports little.

Library errors a user can cause (``Causal3DIdentError``) become one line on stderr, exit code 2; Ctrl-C in a
command that registered ``on_interrupt`` says in one line what rerunning it does (exit code 130).
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .cli_options import BALANCED_HELP, SEED, SPLIT_HELP
from .errors import Causal3DIdentError

# Commands that live in other modules: name -> "module:attribute". Loaded on use only, so that
# `c3di latents` never imports torch, and the CLI process never imports bpy.
LAZY_COMMANDS: dict[str, str] = {
    "render": "causal3dident.render.cli:render",
    "preview": "causal3dident.render.cli:preview",
    "traversals": "causal3dident.render.cli:traversals",
    "assets": "causal3dident.render.cli:assets",
    "convert": "causal3dident.convert:convert_command",
    "export": "causal3dident.convert:export_command",
    "repack": "causal3dident.convert:repack_command",
    "bench": "causal3dident.benchmarks.cli:bench",
    "card": "causal3dident.cards:card_command",
    "figures": "causal3dident.figures:figures_command",
    "demo": "causal3dident.demo:demo_command",
    "download": "causal3dident.download:download_command",
}


class UserError(click.ClickException):
    """A one-line error with exit code 2 (the CLI's contract for mistakes a user can fix)."""

    exit_code = 2


_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())  # 'c3di bench' alone: the help (click>=8.2)


class C3DIGroup(click.Group):
    """Resolves lazy commands and turns library errors into ``UserError``."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_available_lazy()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in _available_lazy():
            module, _, attr = LAZY_COMMANDS[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attr)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Causal3DIdentError as exc:
            raise UserError(str(exc)) from None
        except click.UsageError as exc:  # click's own (bad type, missing option): one line too, not the usage block
            if isinstance(exc, _NO_ARGS_IS_HELP):
                raise
            where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            raise UserError(f"{exc.format_message().rstrip('.')}; see '{where} --help'") from None
        except KeyboardInterrupt:
            hint = ctx.meta.get(INTERRUPT_HINT)
            if hint is None:
                raise
            click.echo(f"\ninterrupted: {hint() if callable(hint) else hint}", err=True)
            ctx.exit(INTERRUPTED_EXIT)


INTERRUPT_HINT = "c3di.interrupt_hint"
INTERRUPTED_EXIT = 130  # 128 + SIGINT, as shells report it


def on_interrupt(hint: str | Callable[[], str]) -> None:
    """Make Ctrl-C in the running command print one line, ``interrupted: HINT`` (what rerunning does), with
    exit code 130, instead of click's bare 'Aborted!'; ``hint`` may be a function called at that moment."""
    click.get_current_context().meta[INTERRUPT_HINT] = hint


def _available_lazy() -> list[str]:
    names = []
    for name, target in LAZY_COMMANDS.items():
        module = target.partition(":")[0]
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            names.append(name)
    return names


@click.group(cls=C3DIGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="causal3dident", prog_name="c3di")
def main() -> None:
    """Causal3DIdent: sample latents, render images, load them, run the benchmark."""


@main.command()
@click.option("--preset", default="causal3dident", help="Shipped preset name or path to a preset YAML file.")
@click.option("--n", "n", type=int, required=True, help="Number of samples (all shards together).")
@click.option("--seed", type=SEED, default=0, help="Seed (0 to 2**32-1); every random draw derives from it.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output .h5 file.")
@click.option("--pairs", default=None, help="Latent transformations to add, e.g. 'hues,positions,rotations_hues'; "
              "with --preset multimodal3dident also the text-only pairs 'phrasing' and 'palette'.")
@click.option("--lt-sigma", type=float, default=1.0, help="Sigma of the LT's truncated normal (paper: 1.0).")
@click.option("--lt-mode", type=click.Choice(["independent", "interventional"]), default="independent",
              help="independent: keep all other latents (paper); interventional: redraw descendants via the SCM.")
@click.option("--intervene", "interventions", multiple=True,
              help="do(latent=value) or shifted distribution, e.g. 'hue_bg~uniform(0.5,1)'. Repeatable.")
@click.option("--balanced-classes", is_flag=True, help=BALANCED_HELP)
@click.option("--split", default=None, help=SPLIT_HELP)
@click.option("--shard", type=int, default=None, help="Write only shard i (0-based) of --num-shards.")
@click.option("--num-shards", type=int, default=None, help="Number of shards the job is split into.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
def latents(preset: str, n: int, seed: int, out: Path, pairs: str | None, lt_sigma: float, lt_mode: str,
            interventions: tuple[str, ...], balanced_classes: bool, split: str | None, shard: int | None,
            num_shards: int | None, overwrite: bool) -> None:
    """Sample latents from an SCM preset into a new dataset file (no images yet)."""
    from .generate import build_config, shard_range, write_latents_file
    from .splits import choose_split
    from .store import check_output
    from .errors import ConfigError
    from .temporal_store import temporal_preset, write_sequence_file

    check_output(out, overwrite)
    split = choose_split(split, out)
    if (model := temporal_preset(preset)) is not None:  # a sequence of frames (causal3dident.temporal_store)
        if pairs or interventions or balanced_classes:
            raise ConfigError(f"--preset {preset} samples a sequence: --pairs, --intervene and --balanced-classes "
                              f"do not apply to it (its interventions are in the preset); drop them")
        start, stop = shard_range(n, shard, num_shards)
        write_sequence_file(out, model, n, seed, overwrite=overwrite, split=split, shard=shard, num_shards=num_shards)
        click.echo(f"wrote {out}: frames {start}..{stop - 1} of {n}, seed {seed}, split {split}, preset {model.name}")
        return
    config = build_config(preset, n, interventions=interventions, pairs=pairs, lt_sigma=lt_sigma, lt_mode=lt_mode,
                          balanced_classes=balanced_classes)
    start, stop = shard_range(n, shard, num_shards)
    write_latents_file(out, config, seed, shard=shard, num_shards=num_shards, overwrite=overwrite, split=split)
    names = ", ".join([p["name"] for p in config["pairs"]] + config.get("text_pairs", [])) or "none"
    click.echo(f"wrote {out}: samples {start}..{stop - 1} of {n}, seed {seed}, split {split}, "
               f"{'balanced classes, ' if balanced_classes else ''}pairs: {names}")


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
def info(path: Path, as_json: bool) -> None:
    """Print what a dataset file holds: counts per class, resolution, pairs, config, provenance."""
    from .store import describe

    data = describe(path)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    config = data["config"]
    click.echo(f"{data['path']}: Causal3DIdent dataset, schema v{data['schema_version']}")
    click.echo(f"  samples:   {data['num_samples']}  (seed {data['seed']})")
    click.echo(f"  split:     {data['split'] or 'not recorded (an older file)'}"
               + (", classes balanced" if config.get("balanced_classes") else ""))
    click.echo("  classes:   " + ", ".join(f"{c} {k}" for c, k in data["class_counts"].items()))
    if data["images"] is None:
        click.echo("  images:    not rendered")
    else:
        h, w, _ = data["images"]
        click.echo(f"  images:    {h}x{w}, {data['rendered']} of {data['num_samples']} rendered")
        click.echo(f"  checksums: {'CRC-32 of every image' if data['pixel_checksums'] else 'none (older file)'}")
    if "text" in data:
        click.echo(f"  text:      {data['text']['sentences']} sentences (Multimodal3DIdent; "
                   f"{data['text']['provenance'].get('source', 'drawn from the seed')}"
                   + (f"; partner text of pairs {', '.join(data['text']['pairs'])}" if data["text"]["pairs"] else "")
                   + ")")
    pairs = ", ".join(f"{k}{' (rendered)' if v['images'] else ''}" for k, v in data["pairs"].items())
    click.echo(f"  pairs:     {pairs or 'none'}")
    preset = (config.get("preset") or config.get("temporal") or {}).get("name", config.get("source", "unknown"))
    click.echo(f"  preset:    {preset}")
    if isinstance(config.get("converted"), dict):  # causal3dident.citris_convert
        from .citris_convert import converted_files

        click.echo(f"  converted: from {config['converted']['format']} files {converted_files(config)}")
    if config.get("interventions"):
        click.echo(f"  intervene: {'; '.join(config['interventions'])}")
    click.echo(f"  made by:   causal3dident {data['package_version']} at {data['created']}")
    if "blender_version" in data:
        click.echo(f"  rendered:  Blender {data['blender_version']}, {json.dumps(data.get('render_settings', {}))}")


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--no-regenerate", is_flag=True, help="Skip re-deriving latents from the recorded config and seed.")
def verify(path: Path, no_regenerate: bool) -> None:
    """Check a dataset file fully (every byte of every image against its checksum); exit 1 on any defect."""
    from .store import verify as verify_file

    notes: list[str] = []
    problems = verify_file(path, regenerate=not no_regenerate, progress=True, notes=notes)
    for note in notes:
        click.echo(f"NOTE: {note}", err=True)
    if problems:
        for problem in problems:
            click.echo(f"DEFECT: {problem}", err=True)
        sys.exit(1)
    unchecked = any("no pixel checksums" in note for note in notes)
    click.echo(f"{path}: OK" + (" (pixels decoded; no checksums to compare them with)" if unchecked else ""))


@main.command()
@click.argument("shards", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Merged output file.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
def merge(shards: tuple[Path, ...], out: Path, overwrite: bool) -> None:
    """Join shard files of one job (any order) into one dataset file."""
    from .generate import merge_files

    merge_files(list(shards), out, overwrite=overwrite)
    click.echo(f"wrote {out} from {len(shards)} shards")


@main.group()
def presets() -> None:
    """List and show SCM presets."""


@presets.command("list")
def presets_list() -> None:
    """Names of the shipped presets."""
    from .scm import load_preset, preset_names
    from .temporal_store import temporal_preset

    for name in preset_names():
        click.echo(f"{name}: {(temporal_preset(name) or load_preset(name)).description}")


@presets.command("show")
@click.argument("preset")
def presets_show(preset: str) -> None:
    """Print a preset's YAML (edit it and pass the file to --preset)."""
    from importlib import resources

    from .scm import load_preset_dict, preset_names

    if preset in preset_names():
        click.echo(resources.files("causal3dident.presets").joinpath(f"{preset}.yaml").read_text(), nl=False)
    else:
        import yaml

        click.echo(yaml.safe_dump(load_preset_dict(preset), sort_keys=False), nl=False)
