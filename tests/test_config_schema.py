"""Configuration that cannot silently do the wrong experiment: typed schemas for tiers, settings, presets,
render settings and method parameters (unknown keys with their path, bad types, lossless coercion,
enumerations), and resource limits on preset expressions (``9 ** 9 ** 9``, NaN)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import h5py
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from causal3dident.benchmarks.methods import Method, SimCLR, method_params, resolve_method
from causal3dident.benchmarks.settings import load_settings
from causal3dident.benchmarks.tiers import load_tier, tier_from_dict, upgrade_recorded
from causal3dident.cli import main
from causal3dident.errors import ConfigError
from causal3dident.expressions import MAX_LENGTH, Expression
from causal3dident.render.config import QUALITY_PRESETS, Quality, parse_overrides, render_config
from causal3dident.schema import PositiveFloat
from causal3dident.scm import SCM, load_preset, load_preset_dict

C3DI = str(Path(sys.executable).with_name("c3di"))


def config_error(call) -> str:
    """The message of the ConfigError ``call()`` raises; it must be one line."""
    with pytest.raises(ConfigError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, message
    return message


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def one_line_exit_2(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    return result.output


# -- tiers ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("item, message", [
    ("nosuch.key=1", "tier 'smoke': nosuch: unknown key; known keys: name, description, resolution"),
    ("train.stpes=3", "train.stpes: unknown key; known keys: batch_size, steps, lr,"),
    ("model.encoder.depth=3", "model.encoder is a value, not a section"),
    ("name=mini", "name is set by the run"),
])
def test_tier_unknown_keys_are_named_with_their_path(item, message):
    assert message in config_error(lambda: load_tier("smoke", [item]))


@pytest.mark.parametrize("item, message", [
    ("train.steps=2.5", "train.steps must be an integer (no fraction), got 2.5"),
    ("train.steps=true", "train.steps must be a number, not true/false, got True"),
    ("train.lr=fast", "train.lr must be a number, got 'fast'"),
    ("train.lr=.inf", "train.lr must be a finite number"),
    ("train.lr=0", "train.lr must be > 0, got 0"),
    ("model.widths=8", "model.widths must be a list, got 8"),
    ("eval.fit_fraction=1.5", "eval.fit_fraction must be < 1, got 1.5"),
    ("train=3", "train must be a mapping, got 3"),
])
def test_tier_values_are_refused_by_type_and_range(item, message):
    assert message in config_error(lambda: load_tier("smoke", [item]))


@pytest.mark.parametrize("item, message", [
    ("model.encoder=vit", "model.encoder must be one of resnet18, resnet10, convnet, got 'vit'"),
    ("model.pool=max", "model.pool must be one of avg, flatten, got 'max'"),
    ("train.schedule=step", "train.schedule must be one of constant, cosine, got 'step'"),
    ("train.precision=fp16", "train.precision must be one of auto, fp32, bf16, got 'fp16'"),
    ("data.quality=ultra", "data.quality must be one of paper, fast, preview, got 'ultra'"),
])
def test_tier_enumerations_list_the_allowed_values(item, message):
    assert message in config_error(lambda: load_tier("smoke", [item]))


def test_tier_values_are_coerced_where_nothing_is_lost():
    tier = load_tier("smoke", ["train.lr=1e-3", "train.steps=2e2", "train.log_every='5'"])
    assert tier.train.lr == 0.001 and isinstance(tier.train.lr, float)
    assert tier.train.steps == 200 and isinstance(tier.train.steps, int)
    assert tier.train.log_every == 5
    assert tier.overrides == ("train.lr=1e-3", "train.steps=2e2", "train.log_every='5'")


def test_bench_run_set_errors_exit_2_in_one_line(synthetic_h5, tmp_path):
    common = ["bench", "run", "--setting", "da_colour", "--tier", "smoke", "--data", str(synthetic_h5),
              "--out", str(tmp_path)]
    for item, message in [("nosuch.key=1", "nosuch: unknown key"), ("train.steps=2.5", "must be an integer"),
                          ("method.temprature=2", "method.temprature: unknown key; known keys: temperature")]:
        assert message in one_line_exit_2(cli(*common, "--set", item))
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_tier_data_section_is_typed():
    assert load_tier("mini").data.pairs == () and load_tier("smoke").data.pairs == ("hues",)
    assert load_tier("mini", ["data.pairs=[hues, rotations]"]).data.pairs == ("hues", "rotations")
    assert "data.train must be an integer" in config_error(lambda: load_tier("smoke", ["data.train=many"]))
    result = cli("bench", "data", "--tier", "smoke", "--out", "unused", "--set", "data.quality=ultra")
    assert "data.quality must be one of paper, fast, preview" in one_line_exit_2(result)


# -- method parameters ---------------------------------------------------------------------------------
class Margin(Method):
    name = "margin"

    def __init__(self, margin: float, mode: str) -> None:
        self.margin, self.mode = margin, mode


def margin_method(tier, *, margin: PositiveFloat = 1.0, mode: Literal["hinge", "square"] = "hinge") -> Method:
    """A plug-in declaring two parameters."""
    return Margin(margin, mode)


def test_builtin_method_parameters_come_from_the_tier_and_set():
    mini = load_tier("mini")
    assert method_params("simclr", mini) == {"temperature": 0.3}
    assert method_params("barlowtwins", mini) == {"off_diagonal_weight": 0.0051}
    assert resolve_method("barlowtwins", mini).off_diagonal_weight == 0.0051
    tier = load_tier("mini", ["method.temperature=5e-1"], method="simclr")
    method = resolve_method("simclr", tier)
    assert isinstance(method, SimCLR) and method.temperature == 0.5
    assert tier.method["simclr"] == {"temperature": 0.5} and tier.overrides == ("method.temperature=5e-1",)
    assert "method.temperature must be > 0, got -1" in config_error(
        lambda: resolve_method("simclr", load_tier("mini", ["method.temperature=-1"], method="simclr")))
    assert "this run's method is 'simclr'" in config_error(
        lambda: load_tier("mini", ["method.barlowtwins.off_diagonal_weight=1"], method="simclr"))
    assert "no method to set it for" in config_error(lambda: load_tier("mini", ["method.temperature=1"]))


def test_plugin_parameters_are_declared_by_its_signature():
    spec = f"{__file__}:margin_method"
    tier = load_tier("smoke", ["method.margin=2", "method.mode=square"], method=spec)
    method = resolve_method(spec, tier)
    assert (method.margin, method.mode) == (2.0, "square")
    assert method_params(spec, load_tier("smoke")) == {"margin": 1.0, "mode": "hinge"}
    message = config_error(lambda: resolve_method(spec, load_tier("smoke", ["method.margn=2"], method=spec)))
    assert "method.margn: unknown key; known keys: margin, mode" in message
    message = config_error(lambda: resolve_method(spec, load_tier("smoke", ["method.mode=cube"], method=spec)))
    assert "method.mode must be one of hinge, square, got 'cube'" in message


def test_method_parameters_round_trip_through_run_json(synthetic_h5, tmp_path):
    runs = tmp_path / "runs"
    result = cli("bench", "run", "--setting", "lt_hues", "--tier", "smoke", "--data", str(synthetic_h5),
                 "--out", str(runs), "--set", "method.temperature=0.25", "--set", "train.lr=1e-3")
    assert result.exit_code == 0, result.output
    run = runs / "smoke" / "simclr" / "lt_hues" / "seed0"
    record = json.loads((run / "run.json").read_text())
    assert record["method_params"] == {"temperature": 0.25}
    assert record["tier"]["method"]["simclr"] == {"temperature": 0.25} and record["tier"]["train"]["lr"] == 0.001
    assert record["tier"]["overrides"] == ["method.temperature=0.25", "train.lr=1e-3"]
    again = tier_from_dict("smoke", record["tier"])
    assert resolve_method("simclr", again).temperature == 0.25 and again.train.lr == 0.001
    frozen = cli("bench", "run", "--setting", "lt_hues", "--tier", "smoke", "--data", str(synthetic_h5),
                 "--out", str(tmp_path / "eval"), "--encoder", str(run / "checkpoint.pt"))
    assert frozen.exit_code == 0, frozen.output


def test_recorded_tiers_of_earlier_versions_still_load():
    old = load_tier("smoke").to_dict()
    old.pop("method")
    old["train"].update(temperature=0.3, barlow_lambda=0.01)
    old["data"] = {}
    tier = tier_from_dict("smoke", upgrade_recorded(old))
    assert method_params("simclr", tier) == {"temperature": 0.3}
    assert method_params("barlowtwins", tier) == {"off_diagonal_weight": 0.01}
    assert tier.data is None


# -- settings ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("entry, message", [
    ("    augment: colour\n", "setting 'x': augment must be a list, got 'colour'"),
    ("    augment: [colour]\n    lt_pairs: approx\n", "lt_pairs must be one of exact, nearest, got 'approx'"),
    ("    augment: [colour]\n    stlye: [hues]\n", "stlye: unknown key; known keys: views, augment, lt, lt_pairs"),
])
def test_settings_entries_are_typed(tmp_path, entry, message):
    path = tmp_path / "mine.yaml"
    path.write_text("settings:\n  x:\n" + entry)
    assert message in config_error(lambda: load_settings([path]))


def test_settings_table_numbers_are_labels(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("settings:\n  x:\n    augment: [colour]\n    style: [hues]\n    table: 7\n")
    assert load_settings([path])["x"].table == "7"


# -- presets -------------------------------------------------------------------------------------------
def preset_file(tmp_path: Path, edit) -> Path:
    data = load_preset_dict("causal3dident")
    edit(data)
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["latents"]["pos_x"].update(sgima=0.5),
     "latents.pos_x.sgima: unknown key; known keys: distribution, sigma, low, high, parents, mean"),
    (lambda d: d["latents"]["spot_pos"].update(sigma=0.5), "latents.spot_pos.sigma: unknown key"),
    (lambda d: d.update(seed=1), "seed: unknown key; known keys: name, description, reference, scene, classes, latents"),
    (lambda d: d["latents"]["pos_x"].update(sigma="wide"), "latents.pos_x.sigma must be a number, got 'wide'"),
    (lambda d: d["latents"]["pos_x"].update(mean={"bunny": 0}), "latents.pos_x.mean.bunny must be one of teapot"),
    (lambda d: d["latents"]["pos_x"].update(mean=[0]), "latents.pos_x.mean must be a number or a string"),
    (lambda d: d["latents"]["hue_bg"].update(low=0.5, high=0.2), "latents.hue_bg must be a range with low < high"),
    (lambda d: d["latents"]["hue_bg"].update(distribution="beta"),
     "latents.hue_bg.distribution must be one of uniform, truncnorm, constant, discrete, got 'beta'"),
])
def test_preset_files_are_typed(tmp_path, edit, message):
    assert message in config_error(lambda: load_preset(preset_file(tmp_path, edit)))


def test_preset_numbers_are_coerced_where_nothing_is_lost(tmp_path):
    path = preset_file(tmp_path, lambda d: d["latents"]["pos_z"].update(sigma="5e-1", low="-1"))
    assert load_preset(path).mechanisms["pos_z"].sigma == 0.5


def test_bad_preset_file_on_the_cli_is_one_line(tmp_path):
    path = preset_file(tmp_path, lambda d: d["latents"]["pos_x"].update(sgima=0.5))
    result = cli("latents", "--preset", str(path), "--n", "3", "--out", str(tmp_path / "z.h5"))
    assert "latents.pos_x.sgima: unknown key" in one_line_exit_2(result)
    assert not (tmp_path / "z.h5").exists()


# -- render settings -----------------------------------------------------------------------------------
def test_render_settings_set_is_typed():
    config = render_config("fast", 32, **parse_overrides(["samples=32", "denoise=false", "adaptive_threshold=1e-3",
                                                          "camera_location=[8, 0, 9]"]))
    assert (config.samples, config.denoise, config.adaptive_threshold) == (32, False, 0.001)
    assert config.camera_location == (8.0, 0.0, 9.0) and config.quality == "fast"
    for items, message in [
        (["sampels=32"], "sampels: unknown key; known keys: resolution, samples,"),
        (["samples=2.5"], "samples must be an integer (no fraction), got 2.5"),
        (["denoise=maybe"], "denoise must be true or false, got 'maybe'"),
        (["denoiser_prefilter=BEST"], "denoiser_prefilter must be one of NONE, FAST, ACCURATE, got 'BEST'"),
        (["camera_location=[1, 2]"], "camera_location has too few items"),
        (["quality=paper"], "use --quality"),
    ]:
        assert message in config_error(lambda: render_config("fast", 32, **parse_overrides(items)))
    assert set(QUALITY_PRESETS) == set(Quality.__args__)


def test_render_set_errors_exit_2_before_any_work(tmp_path):
    result = cli("render", "--n", "2", "--resolution", "32", "--out", str(tmp_path / "x.h5"), "--set", "samples=0")
    assert "render settings: samples must be > 0, got 0" in one_line_exit_2(result)
    assert not any(tmp_path.iterdir())


@pytest.mark.render
def test_render_set_is_recorded_in_the_file(tmp_path, assets_dir):
    out = tmp_path / "x.h5"
    result = cli("render", "--n", "1", "--resolution", "32", "--quality", "preview", "--device", "cpu", "--quiet",
                 "--assets", str(assets_dir), "--out", str(out), "--set", "samples=2", "--set", "denoise=false",
                 "--set", "spot_energy_w=1.5e3")
    assert result.exit_code == 0, result.output
    with h5py.File(out) as f:
        settings = json.loads(f.attrs["render_settings"])
    assert (settings["samples"], settings["denoise"], settings["spot_energy_w"]) == (2, False, 1500.0)
    assert settings["quality"] == "preview"


# -- expression limits ---------------------------------------------------------------------------------
def test_huge_powers_are_refused_at_once(tmp_path):
    path = preset_file(tmp_path, lambda d: d["latents"]["pos_z"].update(mean="9 ** 9 ** 9"))
    started = time.perf_counter()
    message = config_error(lambda: load_preset(path))
    assert time.perf_counter() - started < 1.0
    assert "latents.pos_z.mean: '9 ** 9 ** 9' gives inf" in message


def test_huge_powers_exit_2_through_the_cli(tmp_path):
    path = preset_file(tmp_path, lambda d: d["latents"]["pos_z"].update(mean="9 ** 9 ** 9"))
    proc = subprocess.run([C3DI, "latents", "--preset", str(path), "--n", "5", "--out", str(tmp_path / "z.h5")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "'9 ** 9 ** 9' gives inf" in proc.stderr
    assert not (tmp_path / "z.h5").exists()


def test_verify_refuses_a_recorded_config_with_a_huge_power(tmp_path):
    path = tmp_path / "z.h5"
    assert cli("latents", "--n", "5", "--out", str(path)).exit_code == 0
    with h5py.File(path, "r+") as f:  # a downloaded file whose recorded preset holds the expression
        config = json.loads(f.attrs["config"])
        config["preset"]["latents"]["hue_obj"]["mean"]["hare"] = "hue_bg + 9 ** 9 ** 9"
        f.attrs["config"] = json.dumps(config)
    proc = subprocess.run([C3DI, "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "recorded config: latents.hue_obj.mean.hare: 'hue_bg + 9 ** 9 ** 9' gives inf" in proc.stderr


def test_nan_results_name_the_latent_and_the_expression():
    data = load_preset_dict("causal3dident")
    data["latents"]["pos_z"] = {"distribution": "truncnorm", "sigma": 0.5, "parents": ["hue_bg"],
                                "mean": "log(hue_bg - 0.5)"}
    scm = SCM.from_dict(data, source="preset 'mine'")
    message = config_error(lambda: scm.sample(100, seed=0))
    assert "preset 'mine': latents.pos_z.mean: 'log(hue_bg - 0.5)' gives nan for hue_bg=" in message


@pytest.mark.parametrize("source, message", [
    ("x" * (MAX_LENGTH + 1), "characters long"),
    ("+".join(["x"] * 200), "more than 400 parts"),
    ("(" * 300 + "1" + ")" * 300, "cannot parse"),
    ("clip(hue_bg, 0)", "clip() takes 3 argument(s)"),
    ("1e400", "not finite"),
    ("9" * 400, "too large for a float"),
    ("0 / 0", "gives nan"),
])
def test_expression_limits(source, message):
    assert message in config_error(lambda: Expression(source, "latents.pos_z.mean"))


def test_expression_numbers_are_float64():
    assert Expression("7 % 3 + 2 ** 3 - 1 / 4")({}, 2).tolist() == [8.75, 8.75]
    values = {"hue_bg": np.array([-1.0, 0.5])}
    assert Expression("hue_bg ** 2 * 3", "m")(values, 2).tolist() == [3.0, 0.75]
