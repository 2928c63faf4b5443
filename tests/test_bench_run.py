"""Benchmark runs end to end on synthetic files: results rows, resume, checkpoints, nearest pairs, errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from causal3dident.benchmarks.data import load_data
from causal3dident.benchmarks.methods import SimCLR
from causal3dident.benchmarks.models import build_encoder
from causal3dident.benchmarks.settings import load_settings
from causal3dident.benchmarks.tiers import load_tier
from causal3dident.benchmarks.train import CHECKPOINT, Trainer
from causal3dident.cli import main
from causal3dident.errors import ConfigError
from causal3dident.latents import LATENT_NAMES


def bench(*args: str):
    return CliRunner().invoke(main, ["bench", *args], catch_exceptions=False)


def read_results(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_smoke_run_writes_results_rows_and_record(synthetic_h5, tmp_path):
    result = bench("run", "--setting", "da_crop_small_colour", "--tier", "smoke", "--seed", "1",
                   "--data", str(synthetic_h5), "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    run = tmp_path / "smoke" / "simclr" / "da_crop_small_colour" / "seed1"
    rows = read_results(run / "results.csv")
    assert list(rows[0]) == ["method", "setting", "tier", "seed", "layer", "probe", "factor", "metric", "value"]
    assert len(rows) == 98
    identity = {(r["method"], r["setting"], r["tier"], r["seed"]) for r in rows}
    assert identity == {("simclr", "da_crop_small_colour", "smoke", "1")}
    assert {r["layer"] for r in rows} == {"final", "hidden"}
    probes = {(r["probe"], r["metric"]) for r in rows}
    assert probes == {("logistic", "accuracy"), ("kernel_ridge", "r2"), ("linear", "r2"), ("mlp", "accuracy"),
                      ("mcc", "mcc_pearson"), ("mcc", "mcc_spearman"), ("dci", "disentanglement"),
                      ("dci", "completeness"), ("dci", "informativeness")}
    assert {r["factor"] for r in rows} == {"class", *LATENT_NAMES, "all", "content"}
    assert all(np.isfinite(float(r["value"])) for r in rows)
    record = json.loads((run / "run.json").read_text())
    assert record["seed"] == 1 and record["tier"]["name"] == "smoke" and len(record["dataset"]["sha256"]) == 64
    assert record["package_version"] and record["train"]["steps"] == 4 and record["finished"]
    assert record["eval"]["fit_samples"] + record["eval"]["score_samples"] == 32
    assert record["eval"]["probes"]["mcc"]["content"] == ["rot_alpha", "rot_beta", "rot_gamma"]  # the rest is style
    assert record["eval"]["probes"]["mlp"]["hidden_layer_sizes"] == [100]
    assert set(record["eval"]["layers"]["hidden"]["field"]) == {"mlp", "mcc_matched_dims", "dci_r2"}
    assert (run / CHECKPOINT).is_file() and (run / "train_log.csv").is_file()


def test_resume_continues_at_the_checkpointed_step(synthetic_h5, tmp_path):
    setting = load_settings()["lt_hues"]
    tier = load_tier("smoke", ["train.steps=6", "train.checkpoint_every=2", "train.schedule=cosine"])
    data = load_data(synthetic_h5, setting, tier, seed=0)

    def trainer(fingerprint: str = "fp") -> Trainer:
        torch.manual_seed(0)
        model = build_encoder(tier.model, tier.resolution)
        return Trainer(SimCLR(), model, setting, tier, data, 0, torch.device("cpu"), fingerprint)

    straight = trainer()
    straight.train(tmp_path / "straight")

    class Interrupted(Exception):
        pass

    def interrupt(step: int, loss: float) -> None:
        if step == 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        trainer().train(tmp_path / "cut", interrupt)
    assert torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=True)["step"] == 2
    seen: list[int] = []
    resumed = trainer()
    summary = resumed.train(tmp_path / "cut", lambda step, loss: seen.append(step))
    assert summary["resumed_at"] == 2 and seen == [3, 4, 5, 6]
    assert resumed.scheduler.last_epoch == straight.scheduler.last_epoch == 6
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)
    with pytest.raises(ConfigError, match="another configuration"):
        trainer("other").train(tmp_path / "cut")


def test_checkpoint_evaluates_as_an_encoder(synthetic_h5, tmp_path):
    assert bench("run", "--setting", "lt_positions", "--tier", "smoke", "--data", str(synthetic_h5),
                 "--out", str(tmp_path)).exit_code == 0
    trained = tmp_path / "smoke" / "simclr" / "lt_positions" / "seed0"
    result = bench("run", "--setting", "lt_positions", "--tier", "smoke", "--data", str(synthetic_h5),
                   "--encoder", str(trained / CHECKPOINT), "--method", "reloaded", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    key = ("layer", "probe", "factor", "metric")
    again = {tuple(r[k] for k in key): r["value"] for r in read_results(trained / "results.csv")}
    reloaded = read_results(tmp_path / "smoke" / "reloaded" / "lt_positions" / "seed0" / "results.csv")
    assert len(reloaded) == len(again) and all(again[tuple(r[k] for k in key)] == r["value"] for r in reloaded)


def test_nearest_pairs_are_same_class_and_never_the_anchor(synthetic_h5, tmp_path):
    extra = tmp_path / "nearest.yaml"
    extra.write_text("settings:\n  lt_rotations_nearest:\n    lt: rotations\n    lt_pairs: nearest\n"
                     "    style: [rotations]\n")
    setting = load_settings([extra])["lt_rotations_nearest"]
    data = load_data(synthetic_h5, setting, load_tier("smoke"), seed=0)
    assert data.pair_images is None and data.nearest is not None
    p0, p1 = data.nearest.partners(0), data.nearest.partners(1)
    anchors = np.arange(len(p0))
    assert (p0 != anchors).all() and (data.train.classes[p0] == data.train.classes).all()
    assert (p0 != p1).any()  # z~ is redrawn every epoch
    result = bench("run", "--setting", "lt_rotations_nearest", "--settings", str(extra), "--tier", "smoke",
                   "--data", str(synthetic_h5), "--out", str(tmp_path / "runs"))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("args, message", [
    (["--setting", "da_blur"], "unknown setting 'da_blur'"),
    (["--setting", "lt_rotations_exact"], "has no /pairs/rotations/images"),
    (["--setting", "da_colour", "--set", "eval.samples=60"], "too few for batch"),
    (["--setting", "da_colour", "--method", "nope"], "unknown method 'nope'"),
    (["--setting", "da_colour", "--method", "no_such_module:f"], "cannot import 'no_such_module'"),
    (["--setting", "da_colour", "--data", "{tmp}/missing.h5"], "no such file"),
    (["--setting", "da_colour", "--encoder", "torch.nn:Identity", "--method", "a/b"], "must be letters"),
])
def test_user_errors_are_one_line_exit_2(synthetic_h5, tmp_path, args, message):
    argv = ["bench", "run", "--tier", "smoke", "--data", str(synthetic_h5), "--out", str(tmp_path)]
    result = CliRunner().invoke(main, argv + [a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_sweep_skips_finished_runs(synthetic_h5, tmp_path):
    args = ["sweep", "--tier", "smoke", "--data", str(synthetic_h5), "--out", str(tmp_path),
            "--setting", "da_colour", "--setting", "lt_hues", "--set", "train.steps=2"]
    first = bench(*args)
    assert first.exit_code == 0, first.output
    second = bench(*args)
    assert second.output.count("finished, skipped") == 2


def test_bf16_precision_trains_on_cpu_and_is_recorded(synthetic_h5, tmp_path):
    result = bench("run", "--setting", "lt_hues", "--tier", "smoke", "--data", str(synthetic_h5),
                   "--out", str(tmp_path), "--device", "cpu", "--set", "train.precision=bf16")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "smoke" / "simclr" / "lt_hues" / "seed0" / "run.json").read_text())
    assert record["mixed_precision"] == "bf16" and record["tier"]["train"]["precision"] == "bf16"
    assert np.isfinite(record["train"]["final_loss"])


def test_unknown_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="train.precision must be one of auto, fp32, bf16"):
        load_tier("smoke", ["train.precision=fp16"])


def test_learning_curve_probes_every_n_steps_and_leaves_training_unchanged(synthetic_h5, tmp_path):
    common = ["run", "--setting", "lt_hues", "--tier", "smoke", "--data", str(synthetic_h5), "--set", "train.steps=5"]
    plain = bench(*common, "--out", str(tmp_path / "plain"))
    curved = bench(*common, "--out", str(tmp_path / "curved"), "--eval-every", "2")
    assert plain.exit_code == 0 and curved.exit_code == 0, plain.output + curved.output
    run = ("smoke", "simclr", "lt_hues", "seed0")
    assert read_results(tmp_path.joinpath("plain", *run, "results.csv")) == \
        read_results(tmp_path.joinpath("curved", *run, "results.csv"))
    assert not tmp_path.joinpath("plain", *run, "curve.csv").exists()
    curve = read_results(tmp_path.joinpath("curved", *run, "curve.csv"))
    assert sorted({int(r["step"]) for r in curve}) == [2, 4, 5]  # every 2 steps, and the last
    assert {int(r["images_seen"]) for r in curve} == {32, 64, 80}  # steps x batch 16
    final_class = [r for r in curve if r["step"] == "5" and r["factor"] == "class"]
    result_class = [r for r in read_results(tmp_path.joinpath("curved", *run, "results.csv"))
                    if r["layer"] == "final" and r["probe"] == "logistic"]
    assert float(final_class[0]["value"]) == pytest.approx(float(result_class[0]["value"]))
