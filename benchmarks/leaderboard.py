"""The leaderboard: results rows of many runs beside the paper's Table 1, as Markdown and a heatmap.

Rows are gathered with a glob (``DIR/**/results.csv``). Each (method, tier) gets a table of the
paper's columns: class accuracy, object position (mean over x, y, z), spotlight position, the
three hues and rotation (mean over the three angles); per cell the mean +/- std over seeds, the
paper's value and the difference; and Spearman's rank correlation of all cells with the paper's.
With ``metrics`` (names of ``METRICS``), each section adds a table of those metrics per setting.
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from causal3dident.errors import ConfigError
from causal3dident.latents import LATENT_NAMES
from causal3dident.outputs import check_output_files, make_parent

from .imgtxt_leaderboard import is_imgtxt_row, render_imgtxt_sections
from .runner import COLUMNS as RESULT_COLUMNS
from .runner import RESULTS

COLUMNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "class_acc": ("class acc", ("class",)),
    "pos_obj_r2": ("pos obj", ("pos_x", "pos_y", "pos_z")),
    "pos_spl_r2": ("pos spl", ("spot_pos",)),
    "hue_obj_r2": ("hue obj", ("hue_obj",)),
    "hue_spl_r2": ("hue spl", ("hue_spot",)),
    "hue_bg_r2": ("hue bg", ("hue_bg",)),
    "rot_r2": ("rot", ("rot_alpha", "rot_beta", "rot_gamma")),
}
"""Table 1's columns: id in paper_table1.csv -> (header, factors averaged per seed)."""
FACTORS = ("class", *LATENT_NAMES)
METRICS: dict[str, tuple[str, str, str]] = {
    "logistic": ("logistic", "class", "accuracy"),
    "mlp": ("mlp", "class", "accuracy"),
    "mcc_pearson": ("mcc", "all", "mcc_pearson"),
    "mcc_spearman": ("mcc", "all", "mcc_spearman"),
    "mcc_content_pearson": ("mcc", "content", "mcc_pearson"),
    "mcc_content_spearman": ("mcc", "content", "mcc_spearman"),
    "dci_disentanglement": ("dci", "all", "disentanglement"),
    "dci_completeness": ("dci", "all", "completeness"),
    "dci_informativeness": ("dci", "all", "informativeness"),
}
"""Names for ``--metric``: name -> (probe, factor, metric) of the results rows (see results/README.md)."""
MISSING = "missing"


@dataclass
class Cell:
    """Mean and std over seeds of one setting x column, with the seeds counted."""

    mean: float
    std: float
    seeds: int


def read_rows(dirs: Iterable[str | os.PathLike[str]]) -> list[dict[str, str]]:
    """Every results row under ``dirs`` (recursively)."""
    rows: list[dict[str, str]] = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise ConfigError(f"{d} is not a folder; pass the --out folder(s) of 'c3di bench run' or 'sweep'")
        for path in sorted(d.rglob(RESULTS)):
            rows.extend(read_results(path))
    return rows


def read_results(path: Path) -> list[dict[str, str]]:
    """The rows of one ``results.csv``, checked line by line: the harness's columns, an integer seed and a
    number per row; anything else is a ``ConfigError`` naming the file and line."""
    expected = ",".join(RESULT_COLUMNS)
    line = 1
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header != list(RESULT_COLUMNS):
                found = f"the header is {','.join(header)!r}" if header else "the file is empty"
                raise _bad_results(path, 1, f"{found}, expected {expected!r}")
            rows = []
            for fields in reader:
                line = reader.line_num
                if not fields:
                    continue
                if len(fields) != len(RESULT_COLUMNS):
                    raise _bad_results(path, line, f"{len(fields)} comma-separated fields, expected "
                                                   f"{len(RESULT_COLUMNS)} ({expected})")
                row = dict(zip(RESULT_COLUMNS, fields))
                for key, kind in (("seed", int), ("value", float)):
                    try:
                        kind(row[key])
                    except ValueError:
                        raise _bad_results(path, line, f"{key} {row[key]!r} is not a number") from None
                rows.append(row)
    except UnicodeDecodeError:
        raise _bad_results(path, line, "not UTF-8 text") from None
    except csv.Error as exc:
        raise _bad_results(path, line, str(exc)) from None
    return rows


def _bad_results(path: Path, line: int, problem: str) -> ConfigError:
    return ConfigError(f"{path}, line {line}: {problem}; it is not a results file as 'c3di bench run' writes them: "
                       f"delete it and rerun that run (or its sweep) to write it again, or move it out of the folder")


def paper_table() -> dict[str, dict[str, float]]:
    """Table 1 of the paper: setting -> column -> value (and 'views' -> label via ``paper_views``)."""
    return {row["setting"]: {k: float(row[k]) for k in COLUMNS} for row in _paper_rows()}


def paper_views() -> dict[str, str]:
    return {row["setting"]: row["views"] for row in _paper_rows()}


def _paper_rows() -> list[dict[str, str]]:
    text = resources.files("causal3dident.benchmarks").joinpath("reference/paper_table1.csv").read_text()
    return list(csv.DictReader(text.splitlines()))


PerSetting = dict[str, dict[str, dict[int, float]]]
"""setting -> factor -> seed -> value"""


def factor_values(rows: Sequence[dict[str, str]], layer: str, probe: str) -> dict[tuple[str, str], PerSetting]:
    """(method, tier) -> setting -> factor -> seed -> value, for ``layer`` and the regression ``probe``
    (class accuracy always from the logistic probe)."""
    out: dict[tuple[str, str], PerSetting] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(dict)))
    for r in rows:
        if r["layer"] != layer or r["probe"] not in (probe, "logistic"):
            continue
        out[(r["method"], r["tier"])][r["setting"]][r["factor"]][int(r["seed"])] = float(r["value"])
    return out


def table_cells(per_setting: PerSetting) -> dict[str, dict[str, Cell]]:
    """Setting -> Table-1 column -> Cell (axes averaged within each seed, then mean/std over seeds)."""
    cells: dict[str, dict[str, Cell]] = {}
    for setting, factors in per_setting.items():
        cells[setting] = {}
        for col, (_, names) in COLUMNS.items():
            seeds = set.intersection(*(set(factors.get(n, {})) for n in names))
            if not seeds:
                continue
            per_seed = [np.mean([factors[n][s] for n in names]) for s in sorted(seeds)]
            cells[setting][col] = Cell(float(np.mean(per_seed)), float(np.std(per_seed)), len(per_seed))
    return cells


def spearman_with_paper(cells: dict[str, dict[str, Cell]]) -> tuple[float, float, int]:
    """Spearman's rho (and p-value) between our means and the paper's over all shared cells."""
    from scipy.stats import spearmanr

    paper = paper_table()
    ours, theirs = [], []
    for setting, row in cells.items():
        for col, cell in row.items():
            if setting in paper:
                ours.append(cell.mean)
                theirs.append(paper[setting][col])
    if len(ours) < 3:
        return float("nan"), float("nan"), len(ours)
    result = spearmanr(ours, theirs)
    return float(result.statistic), float(result.pvalue), len(ours)


def check_metrics(metrics: Sequence[str]) -> None:
    """Refuse unknown ``--metric`` names, listing the known ones."""
    for name in metrics:
        if name not in METRICS:
            raise ConfigError(f"unknown --metric {name!r}; choose from {', '.join(METRICS)}")


def metric_values(rows: Sequence[dict[str, str]], layer: str,
                  name: str) -> dict[tuple[str, str], dict[str, list[float]]]:
    """(method, tier) -> setting -> values over seeds of the metric ``name`` (a key of METRICS) at ``layer``."""
    probe, factor, metric = METRICS[name]
    out: dict[tuple[str, str], dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        if (r["layer"], r["probe"], r["factor"], r["metric"]) == (layer, probe, factor, metric):
            out[(r["method"], r["tier"])][r["setting"]][int(r["seed"])] = float(r["value"])
    return {group: {s: [v[k] for k in sorted(v)] for s, v in per.items()} for group, per in out.items()}


def _metric_table(rows: Sequence[dict[str, str]], layer: str, group: tuple[str, str], settings: list[str],
                  metrics: Sequence[str], views: dict[str, str]) -> list[str]:
    """Markdown lines: one row per setting, one column per metric (mean +/- std over seeds, or 'missing')."""
    values = {name: metric_values(rows, layer, name).get(group, {}) for name in metrics}
    lines = [f"Other metrics, layer `{layer}` ({MISSING}: no such rows, e.g. results written before the metric "
             f"existed):", "",
             "| setting | views | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
    for setting in settings:
        row = [setting, views.get(setting, "")]
        for name in metrics:
            seeds = values[name].get(setting)
            if not seeds:
                row.append(MISSING)
            else:
                mean, std = float(np.mean(seeds)), float(np.std(seeds))
                row.append(f"{mean:.2f} ± {std:.2f}" if len(seeds) > 1 else f"{mean:.2f}")
        lines.append("| " + " | ".join(row) + " |")
    return lines + [""]


TIER_NOTES = {
    "smoke": "The `smoke` tier only proves that the pipeline runs end to end (a tiny network, a few steps, a few "
             "dozen images): its numbers are not a result, and a low or negative rho or a class at chance is "
             "expected. For numbers to set beside the paper, run the `mini` tier (all 12 settings on 2 CPU cores, "
             "about 50 minutes): `c3di bench sweep --tier mini --data data/mini --render --out runs`, then "
             "`c3di bench leaderboard runs`; see benchmarks/TIERS.md.",
}
"""A line under a tier's heading that says what its numbers mean."""


def render_markdown(rows: Sequence[dict[str, str]], layer: str = "final", probe: str = "kernel_ridge",
                    images: dict[tuple[str, str], str] | None = None, metrics: Sequence[str] = ()) -> str:
    """The leaderboard document: one section per (method, tier); ``metrics`` add a table of those per section."""
    check_metrics(metrics)
    paper, views = paper_table(), paper_views()
    groups = factor_values(rows, layer, probe)
    lines = ["# Leaderboard", "",
             f"Layer `{layer}`; latents by `{probe}` R^2 on held-out samples, class by logistic-regression "
             f"accuracy. Each cell: ours, mean +/- std over seeds (the value alone for one seed); in brackets "
             f"the paper's Table 1 value and ours minus the paper's. Positions and rotations are averaged over "
             f"their axes, as in Table 1.", ""]
    for (method, tier), per_setting in sorted(groups.items()):
        cells = table_cells(per_setting)
        rho, p, n = spearman_with_paper(cells)
        seeds = sorted({s for f in per_setting.values() for v in f.values() for s in v})
        lines += [f"## {method}, tier `{tier}`", ""]
        if tier in TIER_NOTES:
            lines += [f"> {TIER_NOTES[tier]}", ""]
        lines += [f"Seeds: {', '.join(map(str, seeds))}. Spearman's rank correlation with the paper over "
                  f"{n} cells: rho = {rho:.2f} (p = {p:.2g}).", ""]
        if images and (method, tier) in images:
            lines += [f"![R^2 per setting and factor]({images[(method, tier)]})", ""]
        lines.append("| setting | views | " + " | ".join(h for h, _ in COLUMNS.values()) + " |")
        lines.append("|---|---|" + "---|" * len(COLUMNS))
        for setting in _ordered(cells, paper):
            row = [setting, views.get(setting, "")]
            for col in COLUMNS:
                cell = cells[setting].get(col)
                if cell is None:
                    row.append("")
                    continue
                text = f"{cell.mean:.2f} ± {cell.std:.2f}" if cell.seeds > 1 else f"{cell.mean:.2f}"
                if setting in paper:
                    ref = paper[setting][col]
                    text += f" ({ref:.2f}, {cell.mean - ref:+.2f})"
                row.append(text)
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        if metrics:
            lines += _metric_table(rows, layer, (method, tier), _ordered(cells, paper), metrics, views)
    return "\n".join(lines)


def _ordered(cells: dict[str, dict[str, Cell]], paper: dict[str, dict[str, float]]) -> list[str]:
    """Paper settings in Table 1's order first, then the others by name."""
    return [s for s in paper if s in cells] + sorted(s for s in cells if s not in paper)


def heatmap(per_setting: PerSetting, path: Path, title: str) -> None:
    """A PNG: ours (class + every latent, mean over seeds) beside the paper's Table 1 columns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paper = paper_table()
    settings = _ordered({s: {} for s in per_setting}, paper)
    ours = np.array([[np.mean(list(per_setting[s][f].values())) if per_setting[s].get(f) else np.nan
                      for f in FACTORS] for s in settings])
    ref = np.array([[paper[s][c] if s in paper else np.nan for c in COLUMNS] for s in settings])
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.45 * len(settings) + 2.2),
                             gridspec_kw={"width_ratios": [len(FACTORS), len(COLUMNS)]})
    for ax, data, labels, name in ((axes[0], ours, FACTORS, title), (axes[1], ref, [h for h, _ in COLUMNS.values()],
                                                                      "paper (Table 1)")):
        ax.imshow(np.clip(data, 0, 1), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(settings)), settings if ax is axes[0] else [""] * len(settings))
        ax.set_title(name)
        for i in range(data.shape[0]):
            for j in range(data.shape[1]):
                if np.isfinite(data[i, j]):
                    ax.text(j, i, f"{data[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if data[i, j] < 0.5 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_leaderboard(dirs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], layer: str = "final",
                      probe: str = "kernel_ridge", metrics: Sequence[str] = (),
                      overwrite: bool = False) -> tuple[Path, list[Path]]:
    """Write the Markdown leaderboard (with tables of ``metrics``) and one heatmap PNG per (method, tier) beside it;
    existing files are refused unless ``overwrite``."""
    check_metrics(metrics)
    rows = read_rows(dirs)
    if not rows:
        raise ConfigError(f"no {RESULTS} under {', '.join(map(str, dirs))}; run 'c3di bench run' or 'sweep' first")
    out = Path(out)
    imgtxt = [r for r in rows if is_imgtxt_row(r)]  # Multimodal3DIdent runs: their own table, appended
    rows = [r for r in rows if not is_imgtxt_row(r)]
    groups = sorted(factor_values(rows, layer, probe).items())
    names = [out.name, *(f"{out.stem}_{method}_{tier}.png" for (method, tier), _ in groups)]
    check_output_files(out.parent, names, overwrite, for_path=out)
    make_parent(out)
    images: dict[tuple[str, str], str] = {}
    pictures = []
    for (method, tier), per_setting in groups:
        png = out.with_name(f"{out.stem}_{method}_{tier}.png")
        heatmap(per_setting, png, f"{method}, {tier} ({layer}, {probe})")
        images[(method, tier)] = png.name
        pictures.append(png)
    text = render_markdown(rows, layer, probe, images, metrics) if rows else "# Leaderboard\n"
    out.write_text(text + ("\n" + "\n".join(render_imgtxt_sections(imgtxt)) if imgtxt else ""))
    return out, pictures
