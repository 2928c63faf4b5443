"""``c3di bench temporal``: a small autoencoder on a sequence file's frames, evaluated by CITRIS's matrices
(benchmarks.temporal_smoke), on synthetic-image sequences (fast) and on a real 32 px render (slow); and the
evaluation itself on the true variables (diag near 1) and on noise (near 0)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks.temporal_smoke import SmokeConfig, causal_variables, evaluate_encodings, run_temporal_smoke
from causal3dident.checksums import seal
from causal3dident.cli import main
from causal3dident.errors import ConfigError
from causal3dident.store import create_image_dataset, open_dataset
from causal3dident.temporal import load_temporal, to_package_classes
from causal3dident.testing import draw_images, make_synthetic_dataset

C3DI = [sys.executable, "-c", "from causal3dident.cli import main; main()"]
VARIABLES = ["pos_x", "pos_y", "pos_z", "rot_alpha", "rot_beta", "spot_pos", "hue_obj", "hue_spot", "hue_bg", "class"]
SMALL = ["--steps", "20", "--batch-size", "8", "--latent-dim", "6", "--eval-epochs", "5"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def synthetic_sequence(path: Path, n: int, seed: int = 0, resolution: int = 32) -> Path:
    """A temporal sequence file with ``draw_images`` pixels (no Blender): the run's path, not the renderer."""
    result = CliRunner().invoke(main, ["latents", "--preset", "temporal_causal3dident", "--n", str(n), "--seed",
                                       str(seed), "--out", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with open_dataset(path, "r+") as f:
        create_image_dataset(f, "images", n, resolution, resolution)[...] = draw_images(
            f["latents"][...], f["classes"][...], resolution)
        f.attrs["num_rendered"] = n
        seal(f, source="synthetic images")
    return path


def c3di(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*C3DI, *args], capture_output=True, text=True, timeout=600)


def check_run(folder: Path, latent_dim: int, seed: int) -> dict:
    """The run folder's files, their shapes and names; returns matrices.json."""
    matrices = json.loads((folder / "matrices.json").read_text())
    assert matrices["variables"] == VARIABLES
    assert np.shape(matrices["r2"]) == np.shape(matrices["spearman"]) == (10, 10)
    assert np.shape(matrices["r2_per_latent"]) == np.shape(matrices["assignment"]) == (latent_dim, 10)
    assert (np.sum(matrices["assignment"], axis=1) == 1).all()
    for key in ("r2", "spearman"):
        with (folder / f"{key}.csv").open(newline="") as fh:
            table = list(csv.reader(fh))
        assert table[0] == ["group", *VARIABLES] and [r[0] for r in table[1:]] == VARIABLES
        np.testing.assert_allclose(np.array([r[1:] for r in table[1:]], dtype=float), matrices[key], atol=1e-6)
    with (folder / "results.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 + 2 * 10
    assert {r["probe"] for r in rows} == {"citris"} and {r["tier"] for r in rows} == {"temporal_smoke"}
    summary = {r["metric"]: float(r["value"]) for r in rows if r["factor"] == "all"}
    assert summary["r2_diag"] == pytest.approx(np.mean(np.diag(matrices["r2"])), abs=1e-6)
    record = json.loads((folder / "run.json").read_text())
    assert record["seed"] == seed and record["config"]["latent_dim"] == latent_dim
    assert record["summary"]["r2_diag"] == pytest.approx(summary["r2_diag"], abs=1e-6)
    return matrices


def test_cli_run_writes_the_matrices_and_is_deterministic(tmp_path):
    data = synthetic_sequence(tmp_path / "seq.h5", 48)
    done = c3di("bench", "temporal", "--data", str(data), "--out", str(tmp_path / "runs"), "--seed", "3", *SMALL)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "runs" / "temporal_smoke" / "autoencoder" / "temporal_causal3dident" / "seed3"
    assert "r2_diag" in done.stdout and str(folder / "results.csv") in done.stdout
    first = check_run(folder, latent_dim=6, seed=3)
    record = json.loads((folder / "run.json").read_text())
    assert record["train_frames"] == 24 and record["held_out_frames"] == 24 and record["dataset"]["resolution"] == 32
    # the same run in this process: the same numbers, bit for bit
    config = SmokeConfig(steps=20, batch_size=8, latent_dim=6, eval_epochs=5)
    again = run_temporal_smoke(data, tmp_path / "again", seed=3, config=config)
    assert json.loads((again / "matrices.json").read_text()) == first
    assert (again / "results.csv").read_bytes() == (folder / "results.csv").read_bytes()
    other = run_temporal_smoke(data, tmp_path / "other", seed=4, config=config)
    assert json.loads((other / "matrices.json").read_text())["r2_per_latent"] != first["r2_per_latent"]


def test_bad_inputs_are_one_line(tmp_path):
    latents_only = tmp_path / "latents.h5"
    assert CliRunner().invoke(main, ["latents", "--preset", "temporal_causal3dident", "--n", "40", "--out",
                                     str(latents_only)]).exit_code == 0
    done = c3di("bench", "temporal", "--data", str(latents_only), "--out", str(tmp_path / "runs"), *SMALL)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "no images" in done.stderr
    iid = make_synthetic_dataset(tmp_path / "iid.h5", n=40, resolution=32)
    short = synthetic_sequence(tmp_path / "short.h5", 10)
    odd = synthetic_sequence(tmp_path / "odd.h5", 40, resolution=20)
    for path, message in ((iid, "holds no sequence"), (short, "at least 8"), (odd, "multiple of 8")):
        with pytest.raises(ConfigError, match=message) as error:
            run_temporal_smoke(path, tmp_path / "runs", config=SmokeConfig(steps=1))
        assert "\n" not in str(error.value)
    assert not (tmp_path / "runs" / "temporal_smoke").exists()


def test_evaluation_of_the_true_variables_and_of_noise():
    """The evaluation the run applies, with the encoder replaced by the true causal variables (each latent should
    be assigned its own variable, diag near 1) and by noise (diag near 0)."""
    model = load_temporal("temporal_causal3dident")
    frames = model.sample(1, 0, 600)
    variables = causal_variables(model, frames.latents, to_package_classes(model, frames.classes))
    assert variables.names == VARIABLES and variables.var_info[:4] == ["continuous_2"] * 3 + ["angle"]
    truth = evaluate_encodings(variables.values, variables, epochs=100)
    np.testing.assert_array_equal(truth["assignment"], np.eye(10))
    assert truth["r2_diag"] > 0.8 and truth["spearman_diag"] > 0.85, (truth["r2_diag"], truth["spearman_diag"])
    noise = np.random.default_rng(0).normal(size=(600, 10))
    chance = evaluate_encodings(noise, variables, epochs=20)
    assert chance["r2_diag"] < 0.1 and chance["spearman_diag"] < 0.2, (chance["r2_diag"], chance["spearman_diag"])
    assert chance["r2_sep"] < 0.1


@pytest.mark.slow
def test_a_real_render_runs_end_to_end(tmp_path, assets_dir):
    """Render 40 frames of the preset at 32 px with Blender, then the smoke run on them."""
    data = tmp_path / "seq.h5"
    done = c3di("render", "--preset", "temporal_causal3dident", "--n", "40", "--seed", "0", "--resolution", "32",
                "--device", "cpu", "--out", str(data))
    assert done.returncode == 0, done.stderr
    done = c3di("bench", "temporal", "--data", str(data), "--out", str(tmp_path / "runs"), *SMALL)
    assert done.returncode == 0, done.stderr
    check_run(tmp_path / "runs" / "temporal_smoke" / "autoencoder" / "temporal_causal3dident" / "seed0", 6, 0)
