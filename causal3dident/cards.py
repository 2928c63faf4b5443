"""``c3di card``: the data card, datasheet, factors.yaml, croissant.json and figures of a dataset.

Run on any dataset file (``c3di card FILE.h5 --out DIR``) so that every generated variant ships with
a card of its own sizes, checksums, statistics and config, or on a preset (``--preset NAME``) for the
canonical release; data_cards/ in the project is ``c3di card --preset causal3dident --out data_cards``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import click
import yaml

from .card_text import datasheet, readme
from .croissant import TABLE_ENCODINGS, croissant
from .dataset_facts import DatasetFacts, factor_table, facts_from_file, facts_from_preset
from .errors import ConfigError
from .outputs import check_output_files
from .scm import SCM

CARD_FILES = ("README.md", "datasheet.md", "factors.yaml", "croissant.json")
FIGURE_FILES = ("causal_graph.png", "latent_histograms.png", "dependence.png", "dependence_pairs.png",
                "sample_grid.png", "lt_pairs.png", "image_text_pairs.png")


def factors_yaml(scm: SCM) -> str:
    """factors.yaml: every factor's index, type, range, scene units, distribution, parents and equation."""
    header = (f"# Factors of SCM '{scm.name}', generated from the preset by `c3di card`: edit the preset, not this\n"
              f"# file. Raw values in [-1, 1]; scene_range = range in scene units; index = column of /latents.\n")
    body = {"scm": scm.name, "description": scm.description, "factors": factor_table(scm)}
    return header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=1000, default_flow_style=None)


def check_source(path: str | os.PathLike[str] | None, preset: str | None, split: str | None = None) -> None:
    """Exactly one of a dataset file and a preset; ``split`` only with a file."""
    if (path is None) == (preset is None):
        raise ConfigError("give a dataset file (c3di card FILE.h5 --out DIR) or --preset NAME, not both or neither")
    if preset is not None and split is not None:
        raise ConfigError("--split names the split of a dataset file; a preset's card describes train and test")


def facts_for(path: str | os.PathLike[str] | None, preset: str | None, split: str | None = None) -> DatasetFacts:
    """Facts of a dataset file, or of a preset's canonical release."""
    check_source(path, preset, split)
    if path is not None:
        return facts_from_file(path, split)
    assert preset is not None
    return facts_from_preset(preset)


def check_free(out: Path, names: tuple[str, ...], overwrite: bool) -> None:
    """Fail before any work if a file to be written exists and ``overwrite`` is not set, or ``out`` is unwritable."""
    check_output_files(out, names, overwrite)


def leaderboard_pictures(leaderboard: str | os.PathLike[str]) -> list[Path]:
    """The heatmaps ``c3di bench leaderboard`` wrote beside a leaderboard file (``<stem>_<method>_<tier>.png``)."""
    board = Path(leaderboard)
    if not board.is_file():
        raise ConfigError(f"--leaderboard {board}: no such file; write it with 'c3di bench leaderboard RUNS --out "
                          f"{board}'")
    pictures = sorted(board.parent.glob(f"{board.stem}_*.png"))
    if not pictures:
        raise ConfigError(f"--leaderboard {board}: no heatmap {board.stem}_<method>_<tier>.png beside it; "
                          f"rerun 'c3di bench leaderboard' to draw it")
    return pictures


def write_cards(facts: DatasetFacts, out: str | os.PathLike[str], *, figures: bool = True,
                leaderboard: str | os.PathLike[str] | None = None,
                extra_pictures: Sequence[str | os.PathLike[str]] = (), table: str = "csv") -> list[Path]:
    """Write the card files (and, with ``figures``, the figures they show) into ``out``; the paths written.

    ``leaderboard``: a ``c3di bench leaderboard`` Markdown file whose heatmaps the card shows; ``extra_pictures``:
    PNGs shown with the figures (e.g. ``c3di preview`` / ``c3di traversals`` sheets). Both are copied into ``out``.
    ``table``: the export's table format (``c3di export --format csv|parquet``) croissant.json reads records from.
    """
    out = Path(out)
    pictures = leaderboard_pictures(leaderboard) if leaderboard is not None else []
    extra = [Path(p) for p in extra_pictures]
    if missing := [str(p) for p in extra if not p.is_file()]:
        raise ConfigError(f"--picture {', '.join(missing)}: no such file")
    out.mkdir(parents=True, exist_ok=True)
    drawn: list[str] = []
    if figures:
        from .figures import draw_figures

        drawn = draw_figures(facts, out)
    for picture in extra:
        if picture.resolve() != (out / picture.name).resolve():
            shutil.copyfile(picture, out / picture.name)
        drawn.append(picture.name)
    heatmaps = []
    for picture in pictures:
        name = "leaderboard" + picture.stem[len(Path(leaderboard or "").stem):] + ".png"
        shutil.copyfile(picture, out / name)
        heatmaps.append(name)
    date = facts.created[:10] if facts.created else _dt.date.today().isoformat()
    texts = {
        "README.md": readme(facts, drawn, date, heatmaps),
        "datasheet.md": datasheet(facts),
        "factors.yaml": factors_yaml(facts.scm),
        "croissant.json": json.dumps(croissant(facts, date, table), indent=2, ensure_ascii=False) + "\n",
    }
    for name, text in texts.items():
        (out / name).write_text(text, encoding="utf-8")
    return [out / name for name in [*texts, *drawn, *heatmaps]]


@click.command("card")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--preset", default=None, help="Describe the canonical release of this preset instead of a file.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Folder for the card (use the export folder so croissant.json can load its records).")
@click.option("--split", default=None, help="Split name of the file's samples (default: the file name's stem).")
@click.option("--no-figures", is_flag=True, help="Skip the figures (no matplotlib needed).")
@click.option("--leaderboard", type=click.Path(path_type=Path), default=None,
              help="A 'c3di bench leaderboard' file (e.g. benchmarks/LEADERBOARD.md) whose heatmaps the card shows.")
@click.option("--picture", "pictures", multiple=True, type=click.Path(path_type=Path),
              help="A PNG to show with the figures (e.g. from 'c3di preview' or 'c3di traversals'). Repeatable.")
@click.option("--table", type=click.Choice(TABLE_ENCODINGS), default="csv", show_default=True,
              help="Table format of the export croissant.json reads records from ('c3di export --format').")
@click.option("--overwrite", is_flag=True, help="Replace card files that exist in --out.")
def card_command(path: Path | None, preset: str | None, out: Path, split: str | None, no_figures: bool,
                 leaderboard: Path | None, pictures: tuple[Path, ...], table: str, overwrite: bool) -> None:
    """Write README.md, datasheet.md, factors.yaml, croissant.json and figures for a dataset file or preset (a
    sequence or triplet file: README.md, preset.yaml and its temporal figures)."""
    check_source(path, preset, split)
    from .temporal_card import CARD_FILES as TEMPORAL_CARD, FIGURE_FILES as TEMPORAL_FIGURES, is_temporal_file

    if path is not None and is_temporal_file(path):  # causal3dident.temporal_card
        from .temporal_card import temporal_facts, write_temporal_card

        if leaderboard is not None or split is not None:
            raise ConfigError(f"{path} holds a sequence: --leaderboard and --split describe i.i.d. files; drop them")
        check_free(out, TEMPORAL_CARD + (() if no_figures else TEMPORAL_FIGURES), overwrite)
        written = write_temporal_card(temporal_facts(path), out, figures=not no_figures, extra_pictures=pictures)
        click.echo(f"wrote {len(written)} files to {out}: {', '.join(p.name for p in written)}")
        return
    check_free(out, CARD_FILES + (() if no_figures else FIGURE_FILES), overwrite)
    written = write_cards(facts_for(path, preset, split), out, figures=not no_figures, leaderboard=leaderboard,
                          extra_pictures=pictures, table=table)
    click.echo(f"wrote {len(written)} files to {out}: {', '.join(p.name for p in written)}")
