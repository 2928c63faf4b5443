"""``c3di card`` and ``c3di figures`` on sequence and triplet files (causal3dident.temporal_card): the filmstrip
with its intervention targets, the preset's equations and interventions, the CITRIS reference."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

pytest.importorskip("matplotlib")

from causal3dident.citris_convert import convert_citris  # noqa: E402
from causal3dident.citris_export import export_citris  # noqa: E402
from causal3dident.cli import main  # noqa: E402
from causal3dident.figures import FILMSTRIP_FRAMES, _target_colours, filmstrip_figure  # noqa: E402
from causal3dident.temporal_card import configured_rates, temporal_facts  # noqa: E402
from causal3dident.temporal import load_temporal  # noqa: E402
from test_citris_convert import sequence_file  # noqa: E402

C3DI = [sys.executable, "-c", "from causal3dident.cli import main; main()"]


def c3di(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*C3DI, *args], capture_output=True, text=True, timeout=300)


def run(*args: str) -> tuple[int, str]:
    """The CLI in this process (fast); c3di() runs the real command where its exit code and stderr are tested."""
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def seq(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sequence_file(tmp_path_factory.mktemp("seq") / "train.h5", 400, 5)


def test_filmstrip_has_each_frame_above_its_targets(seq: Path) -> None:
    facts = temporal_facts(seq)
    with h5py.File(seq) as f:
        images = f["images"][:FILMSTRIP_FRAMES]
    fig = filmstrip_figure(images, facts.targets[:FILMSTRIP_FRAMES], facts.target_names, "x")
    assert len(fig.axes) == 2 * FILMSTRIP_FRAMES  # a frame and a target grid per frame
    frames, grids = fig.axes[0::2], fig.axes[1::2]
    assert [ax.get_title() for ax in frames] == [f"t = {t}" for t in range(FILMSTRIP_FRAMES)]
    colours = _target_colours(facts.target_names)
    for t, (frame, grid) in enumerate(zip(frames, grids)):
        assert np.array_equal(frame.get_images()[0].get_array(), images[t])
        cells = np.asarray(grid.get_images()[0].get_array())[0]
        marked = ~np.all(cells == 1.0, axis=1)
        assert np.array_equal(marked, facts.targets[t].astype(bool)), t
        assert np.allclose(cells[marked], colours[marked])
        names = [n for n, v in zip(facts.target_names, facts.targets[t]) if v]
        assert grid.get_xlabel().replace("\n", " ") == (", ".join(names) or "-")
    assert facts.targets[:FILMSTRIP_FRAMES].any()  # the seed shows some interventions in the first frames


def test_figures_of_a_sequence_are_its_filmstrip_and_latents(seq: Path, tmp_path: Path) -> None:
    """The old code stopped here with 'do not support sequences' (exit 2)."""
    result = c3di("figures", str(seq), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["filmstrip.png", "sequence_latents.png"]
    facts = temporal_facts(seq)
    with h5py.File(seq) as f:
        fig = filmstrip_figure(f["images"][:16], facts.targets[:16], facts.target_names, "x")
    width, height = fig.get_size_inches() * 110
    assert Image.open(tmp_path / "filmstrip.png").size == (round(width), round(height))  # 2 rows of 8 frames
    result = c3di("figures", str(seq), "--out", str(tmp_path))
    assert result.returncode == 2 and "filmstrip.png" in result.stderr and len(result.stderr.splitlines()) == 1


def test_card_of_a_sequence_states_the_preset_interventions_and_cites_citris(seq: Path, tmp_path: Path) -> None:
    code, output = run("card", str(seq), "--out", str(tmp_path))
    assert code == 0, output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "filmstrip.png", "preset.yaml",
                                                          "sequence_latents.png"]
    text = (tmp_path / "README.md").read_text()
    assert "# Temporal Causal3DIdent (temporal_causal3dident: train)" in text
    assert "**Intervention probability:** 0.142857 per step" in text
    assert "pos_x, pos_y, pos_z; rot_alpha, rot_beta, rot_gamma" in text
    assert "| `pos_x` | linear | [-2, 2] | 0.1 | 0.5 | `1.5 * sin(prev_rot_beta)` | prev_rot_beta |" in text
    assert "switches with probability 0.05" in text
    assert "arXiv:2202.03169" in text and "Lippe, Phillip" in text and "{CITRIS}" in text
    assert "iCITRIS" not in text and "![" in text and "(filmstrip.png)" in text
    facts = temporal_facts(seq)
    steps = facts.targets[1:]
    hue_bg = facts.target_names.index("hue_bg")
    assert f"| `hue_bg` | {steps[:, hue_bg].sum()} | {steps[:, hue_bg].mean():.3f} | 0.143 |" in text
    assert "| `material` | 0 | 0.000 | 0.000 |" in text


def test_preset_yaml_of_the_card_samples_the_same_sequence(seq: Path, tmp_path: Path) -> None:
    assert run("card", str(seq), "--out", str(tmp_path), "--no-figures")[0] == 0
    assert yaml.safe_load((tmp_path / "preset.yaml").read_text())["name"] == "temporal_causal3dident"
    code, output = run("latents", "--preset", str(tmp_path / "preset.yaml"), "--n", "400", "--seed", "5",
                       "--out", str(tmp_path / "again.h5"))
    assert code == 0, output
    with h5py.File(seq) as a, h5py.File(tmp_path / "again.h5") as b:
        assert np.array_equal(a["sequence/latents"][...], b["sequence/latents"][...])
        assert np.array_equal(a["sequence/targets"][...], b["sequence/targets"][...])


def test_measured_rates_match_the_configured_probability(seq: Path) -> None:
    """The card's 'configured' column: a group's members share its draw (rot_gamma too), material is never set."""
    facts = temporal_facts(seq)
    configured = configured_rates(facts.model)
    steps = facts.targets[1:]
    for j, name in enumerate(facts.target_names):
        p = configured[name]
        assert abs(steps[:, j].mean() - p) <= 4 * np.sqrt(p * (1 - p) / len(steps)) + 1e-12, name
    assert configured["rot_gamma"] == configured["rot_alpha"] > 0 and configured["material"] == 0


def test_instantaneous_card_cites_icitris_and_states_the_order(tmp_path: Path) -> None:
    path = tmp_path / "train.h5"
    code, output = run("latents", "--preset", "instantaneous_temporal_causal3dident", "--n", "50", "--out", str(path))
    assert code == 0, output
    code, output = run("card", str(path), "--out", str(tmp_path / "card"))
    assert code == 0, output
    assert sorted(p.name for p in (tmp_path / "card").iterdir()) == ["README.md", "preset.yaml",
                                                                     "sequence_latents.png"]  # no images: no strip
    text = (tmp_path / "card" / "README.md").read_text()
    assert "arXiv:2206.06169" in text and "arXiv:2202.03169" in text
    order = ", ".join(load_temporal("instantaneous_temporal_causal3dident").order)
    assert f"computed in the order {order}" in text


def test_card_of_converted_citris_files_and_triplets(seq: Path, tmp_path: Path) -> None:
    npz = export_citris(seq, tmp_path / "release")
    converted = convert_citris(npz, tmp_path / "train.h5")
    assert run("card", str(converted), "--out", str(tmp_path / "card"))[0] == 0
    text = (tmp_path / "card" / "README.md").read_text()
    assert "Converted by `c3di convert --format citris` from CITRIS's `train.npz`" in text
    arrays = np.load(npz)
    n = 5
    triplets = {"imgs": np.stack([arrays["imgs"][:n], arrays["imgs"][1:n + 1], arrays["imgs"][2:n + 2]], axis=1),
                "interventions": np.eye(n, 12, dtype=np.int64),
                "raw_latents": np.stack([arrays["raw_latents"][k:k + n] for k in range(3)], axis=1),
                "shape_latents": np.stack([arrays["shape_latents"][k:k + n] for k in range(3)], axis=1)}
    np.savez(tmp_path / "release" / "val_triplets.npz", **triplets)
    trip = convert_citris(tmp_path / "release", tmp_path / "val.h5", split="val")
    code, output = run("card", str(trip), "--out", str(tmp_path / "tcard"))
    assert code == 0, output
    assert sorted(p.name for p in (tmp_path / "tcard").iterdir()) == ["README.md", "preset.yaml", "triplets.png"]
    text = (tmp_path / "tcard" / "README.md").read_text()
    assert "5 triplets (fine masks)" in text and "arXiv:2202.03169" in text
    assert Image.open(tmp_path / "tcard" / "triplets.png").size[0] > 0


def test_card_options_for_iid_files_are_refused_on_a_sequence(seq: Path, tmp_path: Path) -> None:
    board = tmp_path / "LEADERBOARD.md"
    board.write_text("x")
    result = c3di("card", str(seq), "--out", str(tmp_path / "card"), "--leaderboard", str(board))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and "--leaderboard" in result.stderr
    assert not (tmp_path / "card").exists()
