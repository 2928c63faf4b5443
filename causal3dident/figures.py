"""Figures of a dataset: causal graph, latent histograms, dependence, sample grid and LT pairs.

Everything is drawn from data (the SCM of the preset or file, its latents, its ``/images`` and
``/pairs/<t>/images``), so an edited SCM or any rendered file, synthetic ones included, draws itself.
matplotlib's object API is used (no pyplot, no global backend), and no graphviz binary is needed.
"""

from __future__ import annotations

import io
import os
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np

from .dataset_facts import DatasetFacts
from .dependence import VARIABLES, mutual_information_matrix, spearman_matrix
from .errors import Causal3DIdentError
from .latents import CLASS_NAMES, LATENT_GROUPS, LATENT_NAMES, LATENT_RANGE, NUM_CLASSES
from .scm import SCM
from .store import open_dataset, pair_names

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .temporal_card import TemporalFacts

GROUP_COLOURS = {"class": "#bdbdbd", "positions": "#9ecae1", "rotations": "#fdae6b", "hues": "#c994c7"}
SCATTER_POINTS = 1500
GRID_PER_CLASS = 8
PAIR_SAMPLES = 8


def _figure(width: float, height: float) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise Causal3DIdentError("figures need matplotlib: pip install 'causal3dident[bench]'") from None
    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Figure, path: Path, palette: bool = True) -> Path:
    """Write a PNG; plots go through a 256-colour palette (no visible loss, files about 3x smaller)."""
    if not palette:
        fig.savefig(path, dpi=110)
        return path
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=110, format="png")
    Image.open(buffer).convert("RGB").quantize(256).save(path, optimize=True)
    return path


def _group(name: str) -> str:
    return next((g for g, names in LATENT_GROUPS.items() if name in names), "class")


def _class_colours() -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    return [colormaps["tab10"](i) for i in range(NUM_CLASSES)]


# -- SCM -----------------------------------------------------------------------------------------------
def graph_layout(scm: SCM) -> dict[str, tuple[float, float]]:
    """Node positions: x = depth in the graph (longest path from a root), nodes of one depth stacked."""
    depth = {"class": 0}
    for name in scm.order:
        depth[name] = 1 + max((depth[p] for p in scm.parents(name)), default=-1)
    columns: dict[int, list[str]] = {}
    for name in VARIABLES:
        columns.setdefault(depth[name], []).append(name)
    return {name: (float(d), (len(names) - 1) / 2 - i)
            for d, names in columns.items() for i, name in enumerate(names)}


def draw_causal_graph(scm: SCM, path: Path, intervened: tuple[str, ...] = ()) -> Path:
    """The SCM's graph: class and latents coloured by group, intervened nodes outlined in red."""
    pos = graph_layout(scm)
    xs, ys = [p[0] for p in pos.values()], [p[1] for p in pos.values()]
    width = max(6.0, 2.6 * (max(xs) + 1))
    fig = _figure(width, 0.75 * (max(ys) - min(ys)) + 2.0)
    ax = fig.add_subplot()
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    ax.set_axis_off()
    title = f"SCM '{scm.name}': {len(scm.edges())} edges" + (" (red: intervened)" if intervened else "")
    ax.set_title(textwrap.fill(title, int(width * 10)), fontsize=11)
    boxes = {}
    for name, (x, y) in pos.items():
        edge = "#d62728" if name in intervened else "#333333"
        boxes[name] = ax.text(x, y, name, ha="center", va="center", fontsize=10, zorder=3,
                              bbox={"boxstyle": "round,pad=0.4", "fc": GROUP_COLOURS[_group(name)], "ec": edge,
                                    "lw": 2.0 if name in intervened else 1.0})
    fig.canvas.draw()  # place the boxes so arrows can stop at their edges
    for parent, child in scm.edges():
        ax.annotate("", xy=pos[child], xytext=pos[parent], zorder=2,
                    arrowprops={"arrowstyle": "-|>", "color": "#444444", "lw": 1.2, "shrinkA": 1, "shrinkB": 1,
                                "patchA": boxes[parent].get_bbox_patch(), "patchB": boxes[child].get_bbox_patch(),
                                "connectionstyle": "arc3,rad=0.08"})
    return _save(fig, path)


# -- statistics ----------------------------------------------------------------------------------------
def draw_histograms(latents: np.ndarray, classes: np.ndarray, path: Path) -> Path:
    """One panel per latent (density over [-1, 1]) and one bar chart of the class counts."""
    fig = _figure(15, 5.2)
    axes = fig.subplots(2, 6).ravel()
    counts = np.bincount(classes, minlength=NUM_CLASSES)
    axes[0].bar(range(NUM_CLASSES), counts, color=_class_colours())
    axes[0].set_xticks(range(NUM_CLASSES), CLASS_NAMES, rotation=60, fontsize=7)
    axes[0].set_title("class")
    for j, name in enumerate(LATENT_NAMES):
        ax = axes[j + 1]
        ax.hist(latents[:, j], bins=40, range=LATENT_RANGE, density=True, color=GROUP_COLOURS[_group(name)],
                edgecolor="none")
        ax.set_title(name)
        ax.set_xlim(*LATENT_RANGE)
        ax.tick_params(labelsize=7)
    axes[-1].set_axis_off()
    fig.suptitle(f"Marginals of {len(latents):,} samples")
    return _save(fig, path)


def _matrix(ax, values: np.ndarray, labels: tuple[str, ...], title: str, vmax: float) -> None:
    image = ax.imshow(values, cmap="viridis", vmin=0.0, vmax=vmax)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for (i, j), v in np.ndenumerate(values):
        if i != j and np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if v < 0.6 * vmax else "black")
    ax.set_title(title, fontsize=10)
    ax.figure.colorbar(image, ax=ax, shrink=0.8)


def draw_dependence(latents: np.ndarray, classes: np.ndarray, path: Path) -> Path:
    """|Spearman| between latents and mutual information (bits) between class and latents."""
    rho = np.abs(spearman_matrix(latents))
    np.fill_diagonal(rho, np.nan)
    mi = mutual_information_matrix(latents, classes)
    np.fill_diagonal(mi, np.nan)
    fig = _figure(13, 5.8)
    left, right = fig.subplots(1, 2)
    _matrix(left, rho, LATENT_NAMES, "|Spearman rho| between latents", 1.0)
    _matrix(right, mi, VARIABLES, "mutual information (bits, 16 bins)", max(float(np.nanmax(mi)), 1e-3))
    fig.suptitle(f"Dependence among {len(latents):,} samples")
    return _save(fig, path)


def draw_dependence_pairs(scm: SCM, latents: np.ndarray, classes: np.ndarray, path: Path,
                          seed: int = 0) -> Path | None:
    """One panel per SCM edge: child against parent (class: jittered strip), coloured by class."""
    edges = scm.edges()
    if not edges:
        return None
    rows = np.random.default_rng(seed).permutation(len(latents))[:SCATTER_POINTS]
    z, c = latents[rows], classes[rows]
    colours = np.array(_class_colours())[c]
    cols = min(5, len(edges))
    fig = _figure(3.0 * cols, 2.9 * -(-len(edges) // cols))
    axes = np.atleast_1d(fig.subplots(-(-len(edges) // cols), cols)).ravel()
    jitter = np.random.default_rng(seed + 1).uniform(-0.3, 0.3, len(c))
    for ax, (parent, child) in zip(axes, edges):
        x = c + jitter if parent == "class" else z[:, LATENT_NAMES.index(parent)]
        ax.scatter(x, z[:, LATENT_NAMES.index(child)], s=2, c=colours, linewidths=0, rasterized=True)
        if parent == "class":
            ax.set_xticks(range(NUM_CLASSES), CLASS_NAMES, rotation=60, fontsize=7)
        ax.set_xlabel(parent, fontsize=8)
        ax.set_ylabel(child, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(edges):]:
        ax.set_axis_off()
    fig.suptitle(f"Pairs joined by an SCM edge ({len(rows):,} samples, coloured by class)")
    return _save(fig, path)


# -- images --------------------------------------------------------------------------------------------
def draw_sample_grid(h5: str | os.PathLike[str], path: Path, per_class: int = GRID_PER_CLASS) -> Path | None:
    """Rows = classes, columns = the first ``per_class`` samples of that class (the samples are i.i.d.
    draws, so these are random draws); None if the file has no images."""
    with open_dataset(h5) as f:
        if "images" not in f:
            return None
        classes = f["classes"][:]
        rows = [np.flatnonzero(classes == c)[:per_class] for c in range(len(CLASS_NAMES))]
        wanted = np.unique(np.concatenate(rows)).astype(np.int64)
        images = dict(zip(wanted.tolist(), f["images"][wanted])) if len(wanted) else {}
    cols = max(1, max(len(r) for r in rows))
    fig = _figure(1.2 * cols + 1.0, 1.2 * len(rows))
    axes = np.asarray(fig.subplots(len(rows), cols, squeeze=False))
    for c, indices in enumerate(rows):
        for j in range(cols):
            ax = axes[c, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(indices):
                ax.imshow(images[int(indices[j])])
        axes[c, 0].set_ylabel(CLASS_NAMES[c], fontsize=9)
    return _save(fig, path, palette=False)


def draw_lt_pairs(h5: str | os.PathLike[str], path: Path, n: int = PAIR_SAMPLES) -> Path | None:
    """For each transformation with rendered views: ``n`` anchors (top) over their views (bottom)."""
    with open_dataset(h5) as f:
        names = [t for t in pair_names(f) if "images" in f["pairs"][t]]
        if "images" not in f or not names:
            return None
        n = min(n, len(f["images"]))
        anchors = f["images"][:n]
        views = {t: f["pairs"][t]["images"][:n] for t in names}
    fig = _figure(1.5 * n + 1.0, 3.1 * len(names))
    axes = np.asarray(fig.subplots(2 * len(names), n, squeeze=False))
    for k, t in enumerate(names):
        for i in range(n):
            for r, image in ((2 * k, anchors[i]), (2 * k + 1, views[t][i])):
                axes[r, i].imshow(image)
                axes[r, i].set_xticks([])
                axes[r, i].set_yticks([])
        axes[2 * k, 0].set_ylabel(f"{t}\nanchor", fontsize=9)
        axes[2 * k + 1, 0].set_ylabel(f"{t}\nview", fontsize=9)
    return _save(fig, path, palette=False)


def draw_image_text_pairs(h5: str | os.PathLike[str], path: Path, n: int = PAIR_SAMPLES) -> Path | None:
    """Multimodal3DIdent: the first ``n`` images, each above its sentence; None without images or text."""
    from .multimodal_store import GROUP, read_tables

    with open_dataset(h5) as f:
        if "images" not in f or GROUP not in f:
            return None
        n = min(n, len(f["images"]))
        images = f["images"][:n]
        sentences = read_tables(f, slice(0, n))[2]
    cols = min(n, 4)
    rows = -(-n // cols)
    fig = _figure(2.3 * cols, 3.0 * rows)
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if k < n:
            ax.imshow(images[k])
            ax.set_xlabel(textwrap.fill(sentences[k], 30), fontsize=7)
        else:
            ax.set_visible(False)
    return _save(fig, path, palette=False)


# -- sequences (temporal presets) ----------------------------------------------------------------------
FILMSTRIP_FRAMES = 16
FILMSTRIP_COLUMNS = 8
TRACE_FRAMES = 200
TRIPLETS_SHOWN = 8


def _target_colours(names: tuple[str, ...] | list[str]) -> np.ndarray:
    """RGB [T, 3]: each target column's colour when marked (its latent group's; class and extras: grey)."""
    from matplotlib.colors import to_rgb

    marked = {"class": "#636363", "positions": "#3182bd", "rotations": "#e6550d", "hues": "#8856a7"}
    return np.array([to_rgb(marked[_group(n)] if n in LATENT_NAMES or n == "class" else "#969696") for n in names])


def _target_grid(ax, row: np.ndarray, colours: np.ndarray) -> None:
    """One row of target columns: marked cells in their group's colour, the others white, thin grey borders."""
    cells = np.where(np.asarray(row, dtype=bool)[:, None], colours, 1.0)[None]
    ax.imshow(cells, aspect="auto", interpolation="nearest")
    ax.set_xticks(np.arange(-0.5, len(row)), minor=True)
    ax.grid(which="minor", color="#bdbdbd", linewidth=0.5)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)


def filmstrip_figure(images: np.ndarray, targets: np.ndarray, names: tuple[str, ...] | list[str],
                     title: str) -> Figure:
    """Frames in rows of ``FILMSTRIP_COLUMNS``, each above a grid of its targets (row t: the step t-1 -> t) and
    the names of the variables intervened in that step."""
    k = len(images)
    cols = min(FILMSTRIP_COLUMNS, k)
    rows = -(-k // cols)
    fig = _figure(1.3 * cols + 0.3, 1.85 * rows + 0.8)
    grid = fig.add_gridspec(2 * rows, cols, height_ratios=[1.0, 0.12] * rows)
    colours = _target_colours(names)
    for t in range(k):
        r, c = divmod(t, cols)
        ax = fig.add_subplot(grid[2 * r, c])
        ax.imshow(images[t])
        ax.set_axis_off()
        ax.set_title(f"t = {t}", fontsize=8)
        cells = fig.add_subplot(grid[2 * r + 1, c])
        _target_grid(cells, targets[t], colours)
        marked = [n for n, v in zip(names, targets[t]) if v]
        cells.set_xlabel(textwrap.fill(", ".join(marked), 22) if marked else "-", fontsize=6)
    fig.suptitle(title, fontsize=10)
    fig.supxlabel("grid under each frame: " + " ".join(names) + " (coloured: intervened in the step into it)",
                  fontsize=7)
    return fig


def draw_filmstrip(h5: str | os.PathLike[str], path: Path, frames: int = FILMSTRIP_FRAMES) -> Path | None:
    """The first ``frames`` frames of a sequence file with their intervention targets; None without images."""
    from .temporal_store import read_sequence

    with open_dataset(h5) as f:
        if "images" not in f:
            return None
        k = min(frames, len(f["images"]))
        images = f["images"][:k]
        sequence = read_sequence(f)
    title = f"First {k} frames of {Path(h5).name}; under each, the variables intervened in the step into it"
    return _save(filmstrip_figure(images, sequence["targets"][:k], sequence["target_names"], title), path,
                 palette=False)


def draw_sequence_latents(latents: np.ndarray, targets: np.ndarray, names: tuple[str, ...], classes: np.ndarray,
                          path: Path, frames: int = TRACE_FRAMES) -> Path:
    """One panel per latent (and the class) over the first ``frames`` frames; dots where it was intervened."""
    k = min(frames, len(latents))
    t = np.arange(k)
    fig = _figure(15, 5.2)
    axes = fig.subplots(2, 6).ravel()
    column = {n: j for j, n in enumerate(names)}
    for j, name in enumerate([*LATENT_NAMES, "class"]):
        ax = axes[j]
        values = classes[:k] if name == "class" else latents[:k, j]
        ax.plot(t, values, color=GROUP_COLOURS[_group(name)] if name != "class" else "#636363", lw=1.0,
                drawstyle="steps-post" if name == "class" else "default")
        if name in column:
            hit = np.flatnonzero(targets[:k, column[name]])
            ax.scatter(hit, np.asarray(values)[hit], s=10, color="#d62728", zorder=3, linewidths=0)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        if name == "class":
            ax.set_yticks(range(len(CLASS_NAMES)), CLASS_NAMES, fontsize=6)
    axes[-1].set_axis_off()
    fig.suptitle(f"The first {k} frames (red dots: intervened in the step into that frame)")
    return _save(fig, path)


def draw_triplets(h5: str | os.PathLike[str], path: Path, n: int = TRIPLETS_SHOWN) -> Path | None:
    """The first ``n`` triplets as columns: first, second and mixed frame, then the mask grid (1: the mixed frame
    takes the second's value); None without images."""
    from .store import read_config

    with open_dataset(h5) as f:
        if "images" not in f:
            return None
        n = min(n, len(f["images"]))
        rows = [f["triplets/first/images"][:n], f["triplets/second/images"][:n], f["images"][:n]]
        masks = f["triplets/masks"][:n]
        names = list(read_config(f)["triplets"]["mask_columns"])
    fig = _figure(1.3 * n + 0.8, 4.6)
    grid = fig.add_gridspec(4, n, height_ratios=[1.0, 1.0, 1.0, 0.12])
    colours = _target_colours(names)
    for i in range(n):
        for r, (images, label) in enumerate(zip(rows, ("first", "second", "mixed"))):
            ax = fig.add_subplot(grid[r, i])
            ax.imshow(images[i])
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(label, fontsize=9)
        cells = fig.add_subplot(grid[3, i])
        _target_grid(cells, masks[i], colours)
        cells.set_xlabel(textwrap.fill(", ".join(c for c, v in zip(names, masks[i]) if v), 22), fontsize=6)
    fig.suptitle(f"First {n} triplets of {Path(h5).name}; grid: {' '.join(names)} (coloured: from the second)",
                 fontsize=9)
    return _save(fig, path, palette=False)


def draw_temporal_figures(facts: TemporalFacts, out: Path) -> list[str]:
    """Draw the figures of a sequence or triplet file (``temporal_card.TemporalFacts``); the file names drawn."""
    out.mkdir(parents=True, exist_ok=True)
    if facts.kind == "triplets":
        drawn = [draw_triplets(facts.path, out / "triplets.png")]
    else:
        drawn = [draw_filmstrip(facts.path, out / "filmstrip.png"),
                 draw_sequence_latents(facts.latents, facts.targets, facts.target_names, facts.classes,
                                       out / "sequence_latents.png")]
    return [p.name for p in drawn if p is not None]


# -- all -----------------------------------------------------------------------------------------------
def draw_figures(facts: DatasetFacts, out: Path) -> list[str]:
    """Draw every figure the dataset supports into ``out``; the file names drawn, in card order."""
    out.mkdir(parents=True, exist_ok=True)
    targets = [target for target in (
        draw_causal_graph(facts.scm, out / "causal_graph.png", _intervened(facts)),
        draw_histograms(facts.latents, facts.classes, out / "latent_histograms.png"),
        draw_dependence(facts.latents, facts.classes, out / "dependence.png"),
        draw_dependence_pairs(facts.scm, facts.latents, facts.classes, out / "dependence_pairs.png"),
        facts.path and draw_sample_grid(facts.path, out / "sample_grid.png"),
        facts.path and draw_lt_pairs(facts.path, out / "lt_pairs.png"),
        facts.path and draw_image_text_pairs(facts.path, out / "image_text_pairs.png"),
    ) if target]
    return [t.name for t in targets]


def _intervened(facts: DatasetFacts) -> tuple[str, ...]:
    from .scm import Intervention

    return tuple(Intervention.parse(spec).target for spec in facts.interventions)


@click.command("figures")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--preset", default=None, help="Draw the canonical release of this preset instead of a file.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder to write the PNG figures to.")
@click.option("--overwrite", is_flag=True, help="Replace figures that exist in --out.")
def figures_command(path: Path | None, preset: str | None, out: Path, overwrite: bool) -> None:
    """Draw the causal graph, histograms, dependence, sample grid and LT pairs of a dataset file (a sequence or
    triplet file: its filmstrip, latents over time or triplets)."""
    from .cards import FIGURE_FILES, check_free, check_source, facts_for
    from .temporal_card import FIGURE_FILES as TEMPORAL_FIGURES, is_temporal_file, temporal_facts

    check_source(path, preset)
    if path is not None and is_temporal_file(path):
        check_free(out, TEMPORAL_FIGURES, overwrite)
        names = draw_temporal_figures(temporal_facts(path), out)
        click.echo(f"wrote {len(names)} figures to {out}: {', '.join(names)}")
        return
    check_free(out, FIGURE_FILES, overwrite)
    names = draw_figures(facts_for(path, preset), out)
    click.echo(f"wrote {len(names)} figures to {out}: {', '.join(names)}")
