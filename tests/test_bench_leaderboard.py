"""The leaderboard's arithmetic: axes averaged per seed, mean +/- std over seeds, differences, Spearman."""

from __future__ import annotations

import csv
from pathlib import Path

from causal3dident.benchmarks.leaderboard import COLUMNS, factor_values, paper_table, render_markdown, table_cells
from causal3dident.benchmarks.runner import write_results


def rows_like_the_paper(offset_by_seed: dict[int, float]) -> list[dict[str, str]]:
    """Results rows whose per-seed Table-1 columns are the paper's values plus a seed offset."""
    rows = []
    for setting, values in paper_table().items():
        for seed, offset in offset_by_seed.items():
            for col, (_, factors) in COLUMNS.items():
                for k, factor in enumerate(factors):
                    # axes spread symmetrically around the column value: their mean is the value
                    spread = (k - (len(factors) - 1) / 2) * 0.1
                    probe, metric = ("logistic", "accuracy") if factor == "class" else ("kernel_ridge", "r2")
                    rows.append({"method": "simclr", "setting": setting, "tier": "paper", "seed": str(seed),
                                 "layer": "final", "probe": probe, "factor": factor, "metric": metric,
                                 "value": str(values[col] + offset + spread)})
    return rows


def test_cells_average_axes_then_seeds():
    rows = rows_like_the_paper({0: 0.0, 1: 0.02})
    cells = table_cells(factor_values(rows, "final", "kernel_ridge")[("simclr", "paper")])
    cell = cells["lt_hues"]["pos_obj_r2"]
    assert abs(cell.mean - (0.59 + 0.01)) < 1e-9 and abs(cell.std - 0.01) < 1e-9 and cell.seeds == 2


def test_markdown_sets_rows_beside_the_paper_with_spearman(tmp_path):
    rows = rows_like_the_paper({0: 0.0, 1: 0.0, 2: 0.0})
    write_results(tmp_path / "results.csv", rows)  # round trip through the CSV writer
    text = render_markdown(rows)
    assert "## simclr, tier `paper`" in text
    assert "rho = 1.00" in text
    assert "| da_colour | DA: colour distortion | 0.42 ± 0.00 (0.42, +0.00) |" in text
    assert text.index("| da_colour |") < text.index("| lt_hues |") < text.index("| lt_rotations_hues |")
    one_seed = render_markdown(rows_like_the_paper({0: 0.0}))
    assert "| da_colour | DA: colour distortion | 0.42 (0.42, +0.00) |" in one_seed and "±" not in one_seed


def test_other_layers_and_probes_are_kept_apart():
    rows = rows_like_the_paper({0: 0.0})
    rows = [dict(r, layer="hidden", value="0.5") for r in rows] + rows
    cells = table_cells(factor_values(rows, "hidden", "kernel_ridge")[("simclr", "paper")])
    assert cells["da_colour"]["hue_bg_r2"].mean == 0.5


def test_committed_leaderboard_is_rendered_from_the_committed_mini_rows():
    root = Path(__file__).resolve().parents[1] / "benchmarks"
    with (root / "results" / "mini.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["setting"] for r in rows} == set(paper_table()) and {r["tier"] for r in rows} == {"mini"}
    text = render_markdown(rows, images={("simclr", "mini"): "LEADERBOARD_simclr_mini.png"})
    assert text == (root / "LEADERBOARD.md").read_text()
    assert (root / "LEADERBOARD_simclr_mini.png").is_file()


def with_field_rows(rows: list[dict[str, str]], seeds: dict[int, float]) -> list[dict[str, str]]:
    """``rows`` plus MLP, MCC and DCI rows (both layers) for lt_hues, at value = the seed's offset."""
    extra = []
    for seed, value in seeds.items():
        for layer in ("final", "hidden"):
            for probe, factor, metric in (("mlp", "class", "accuracy"), ("mcc", "all", "mcc_pearson"),
                                          ("mcc", "pos_x", "mcc_pearson"), ("dci", "all", "disentanglement")):
                extra.append({"method": "simclr", "setting": "lt_hues", "tier": "paper", "seed": str(seed),
                              "layer": layer, "probe": probe, "factor": factor, "metric": metric,
                              "value": str(value if layer == "final" else 0.0)})
    return rows + extra


def test_new_metric_rows_leave_the_default_table_as_it_was():
    rows = rows_like_the_paper({0: 0.0, 1: 0.02})
    assert render_markdown(with_field_rows(rows, {0: 0.9, 1: 0.8})) == render_markdown(rows)


def test_metric_tables_show_mean_and_std_per_setting_and_missing_rows():
    rows = with_field_rows(rows_like_the_paper({0: 0.0, 1: 0.02}), {0: 0.9, 1: 0.8})
    text = render_markdown(rows, metrics=("mlp", "dci_disentanglement", "mcc_spearman"))
    assert text.startswith(render_markdown(rows))  # the paper's table first, unchanged
    assert "| setting | views | mlp | dci_disentanglement | mcc_spearman |" in text
    assert "| lt_hues | LT: change hues | 0.85 ± 0.05 | 0.85 ± 0.05 | missing |" in text
    assert "| da_colour | DA: colour distortion | missing | missing | missing |" in text
    rows += [dict(r, layer="hidden") for r in rows if r["probe"] in ("logistic", "kernel_ridge")]
    hidden = render_markdown(rows, layer="hidden", metrics=("mcc_pearson",))
    assert "| lt_hues | LT: change hues | 0.00 ± 0.00 |" in hidden


def test_leaderboard_cli_tabulates_a_metric_of_old_results_as_missing(tmp_path):
    from click.testing import CliRunner

    from causal3dident.cli import main

    root = Path(__file__).resolve().parents[1] / "benchmarks"
    runs = tmp_path / "runs" / "mini"
    runs.mkdir(parents=True)
    rows = (root / "results" / "mini.csv").read_text().splitlines(keepends=True)
    old = [r for r in rows if r.split(",")[5] not in ("mlp", "mcc", "dci")]  # as written before those rows existed
    (runs / "results.csv").write_text("".join(old))
    out = tmp_path / "board" / "LEADERBOARD.md"
    result = CliRunner().invoke(main, ["bench", "leaderboard", str(tmp_path / "runs"), "--out", str(out),
                                       "--metric", "mcc_pearson", "--metric", "mlp"])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.startswith((root / "LEADERBOARD.md").read_text())
    assert "| lt_hues | LT: change hues | missing | missing |" in text
    assert text.count("| missing | missing |") == 12
    bad = CliRunner().invoke(main, ["bench", "leaderboard", str(tmp_path / "runs"), "--out", str(tmp_path / "x.md"),
                                    "--metric", "mcc"])
    assert bad.exit_code == 2 and "unknown --metric 'mcc'" in bad.output and not (tmp_path / "x.md").exists()


def test_cli_writes_into_the_first_runs_folder_and_replaces_only_with_overwrite(tmp_path):
    """Without --out the leaderboard goes to DIRS[0]/LEADERBOARD.md (never the committed benchmarks/ file);
    an existing one is replaced only with --overwrite."""
    from click.testing import CliRunner

    from causal3dident.cli import main

    runs = tmp_path / "runs"
    write_results(_mkdir(runs / "a") / "results.csv", rows_like_the_paper({0: 0.0}))
    runner = CliRunner()
    first = runner.invoke(main, ["bench", "leaderboard", str(runs)])
    assert first.exit_code == 0, first.output
    board = runs / "LEADERBOARD.md"
    assert "rho = 1.00" in board.read_text() and (runs / "LEADERBOARD_simclr_paper.png").is_file()
    board.write_text("edited\n")
    refused = runner.invoke(main, ["bench", "leaderboard", str(runs)])
    assert refused.exit_code == 2 and "--overwrite" in refused.stderr and board.read_text() == "edited\n"
    replaced = runner.invoke(main, ["bench", "leaderboard", str(runs), "--overwrite"])
    assert replaced.exit_code == 0 and "rho = 1.00" in board.read_text()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def test_a_smoke_leaderboard_says_it_only_proves_the_pipeline_runs_and_points_to_mini():
    rows = rows_like_the_paper({0: 0.0})
    smoke = render_markdown([dict(r, tier="smoke") for r in rows])
    note = smoke.index("> The `smoke` tier only proves that the pipeline runs")
    assert smoke.index("## simclr, tier `smoke`") < note < smoke.index("Seeds: 0.")
    assert "c3di bench sweep --tier mini --data data/mini --render --out runs" in smoke
    assert "only proves" not in render_markdown(rows)  # other tiers' numbers are results


def test_committed_multimodal_leaderboard_is_rendered_from_its_rows():
    from causal3dident.benchmarks.imgtxt_leaderboard import is_imgtxt_row, render_imgtxt_sections

    root = Path(__file__).resolve().parents[1] / "benchmarks"
    with (root / "results" / "multimodal_mini.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(is_imgtxt_row(r) for r in rows) and {r["tier"] for r in rows} == {"mini"}
    text = "# Leaderboard\n" + "\n" + "\n".join(render_imgtxt_sections(rows))
    assert text == (root / "LEADERBOARD_multimodal_mini.md").read_text()
