"""Figures and dependence statistics: drawn from the SCM and the file, so edits and any file draw themselves."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from scipy.stats import spearmanr

from causal3dident.cli import main
from causal3dident.dependence import VARIABLES, edge_dependence, mutual_information_matrix, spearman_matrix
from causal3dident.figures import draw_causal_graph, draw_lt_pairs, draw_sample_grid, graph_layout
from causal3dident.generate import build_config, write_latents_file
from causal3dident.scm import SCM, load_preset, load_preset_dict

pytest.importorskip("matplotlib")


def test_graph_layout_follows_the_edges_of_an_edited_preset(tmp_path):
    paper = graph_layout(load_preset("causal3dident"))
    assert {n for n, (x, _) in paper.items() if x == 0} == {"class", "pos_z", "spot_pos", "hue_spot", "hue_bg"}
    assert paper["pos_x"][0] == paper["hue_obj"][0] == 1
    config = load_preset_dict("causal3dident")
    config["latents"]["pos_z"] = {"distribution": "truncnorm", "sigma": 0.5, "mean": "hue_obj", "parents": ["hue_obj"]}
    edited = SCM.from_dict(config)
    assert graph_layout(edited)["pos_z"][0] == 2 and ("hue_obj", "pos_z") in edited.edges()
    path = draw_causal_graph(edited, tmp_path / "graph.png", intervened=("hue_bg",))
    with Image.open(path) as image:
        assert image.width > 400 and image.height > 300
        rgb = np.asarray(image.convert("RGB")).astype(int)
        assert ((rgb[..., 0] > 180) & (rgb[..., 1] < 80) & (rgb[..., 2] < 80)).sum() > 50  # the red outline


def test_dependence_statistics_detect_the_scm_and_not_independence():
    scm = load_preset("causal3dident")
    z, c = scm.sample(20_000, seed=1)
    rho = spearman_matrix(z)
    assert np.allclose(rho, spearmanr(z).statistic, atol=1e-9)
    mi = mutual_information_matrix(z, c)
    assert mi.shape == (11, 11) and np.allclose(mi, mi.T)
    assert mi[0, VARIABLES.index("rot_alpha")] > 0.15 and mi[0, VARIABLES.index("hue_bg")] < 0.01
    edges = {(e["parent"], e["child"]): e for e in edge_dependence(scm.edges(), z, c)}
    spot = edges[("spot_pos", "pos_x")]
    assert abs(spot["spearman"]) < 0.05 and abs(spot["spearman_within_class"]) > 0.6  # cancels in the marginal
    independent, ci = load_preset("3dident").sample(20_000, seed=1)
    assert np.nanmax(np.abs(spearman_matrix(independent) - np.eye(10))) < 0.05
    assert mutual_information_matrix(independent, ci)[~np.eye(11, dtype=bool)].max() < 0.02


def test_image_panels_need_images(tmp_path):
    h5 = write_latents_file(tmp_path / "z.h5", build_config("causal3dident", 8, pairs="hues"), seed=0)
    assert draw_sample_grid(h5, tmp_path / "grid.png") is None
    assert draw_lt_pairs(h5, tmp_path / "pairs.png") is None


def test_figures_command_draws_every_figure_of_a_synthetic_file(synthetic_h5, tmp_path):
    result = CliRunner().invoke(main, ["figures", str(synthetic_h5), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    names = ["causal_graph.png", "latent_histograms.png", "dependence.png", "dependence_pairs.png",
             "sample_grid.png", "lt_pairs.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    with Image.open(tmp_path / "lt_pairs.png") as pairs, Image.open(tmp_path / "sample_grid.png") as grid:
        assert pairs.size == (round((1.5 * 8 + 1.0) * 110), round(3.1 * 2 * 110))  # 8 samples, 2 transformations
        with h5py.File(synthetic_h5) as f:
            cols = max(min(8, int((f["classes"][:] == c).sum())) for c in range(7))
        assert grid.size == (round((1.2 * cols + 1.0) * 110), round(1.2 * 7 * 110))  # a row per class
        colours = np.asarray(grid.convert("RGB")).reshape(-1, 3)
        assert len(np.unique(colours, axis=0)) > 256  # real images, not a palette plot
    again = CliRunner().invoke(main, ["figures", str(synthetic_h5), "--out", str(tmp_path)])
    assert again.exit_code == 2 and "--overwrite" in again.output
