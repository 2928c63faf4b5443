"""Render settings, quality presets, device choice and output naming (no Blender needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from causal3dident.errors import ConfigError
from causal3dident.render.config import QUALITY_PRESETS, RenderConfig, from_dict, render_config
from causal3dident.render.devices import CPU, DeviceSpec, select_devices
from causal3dident.render.job import output_path, worker_specs


def test_paper_preset_is_blender_291_defaults() -> None:
    paper = render_config("paper", 224)
    assert (paper.samples, paper.denoise, paper.adaptive_sampling, paper.max_bounces) == (512, True, False, 0)
    assert paper.view_transform == "Standard" and paper.resolution == 224
    assert (paper.lens_mm, paper.sensor_mm, paper.camera_location) == (35.0, 50.0, (8.0, 0.0, 8.0))
    assert (paper.object_saturation, paper.spot_saturation, paper.ground_saturation) == (1.0, 0.8, 0.6)
    fast, preview = render_config("fast", 224), render_config("preview", 32)
    assert preview.samples < fast.samples < paper.samples
    assert set(QUALITY_PRESETS) == {"paper", "fast", "preview"}


def test_settings_round_trip_through_json() -> None:
    config = render_config("fast", 64, seed=3)
    assert from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize("call, message", [
    (lambda: render_config("ultra"), "unknown --quality"),
    (lambda: render_config("paper", samples_per_pixel=3), "samples_per_pixel: unknown key; known keys: resolution"),
    (lambda: RenderConfig(resolution=4), "--resolution"),
])
def test_bad_settings_are_config_errors(call, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()


def test_sampling_pattern_and_denoiser_passes_are_validated_and_recorded_only_when_changed() -> None:
    for quality in ("paper", "preview"):  # the defaults are what the renderer always used: pixels unchanged
        config = render_config(quality, 64)
        assert (config.sampling_pattern, config.denoising_input_passes) == ("TABULATED_SOBOL", "RGB_ALBEDO_NORMAL")
        assert not {"sampling_pattern", "denoising_input_passes"} & set(config.to_dict())  # job ids unchanged
    fast = render_config("fast", 64).to_dict()  # blue noise since 2026-11-30: recorded, so older fast jobs differ
    assert fast["sampling_pattern"] == "BLUE_NOISE" and "denoising_input_passes" not in fast
    changed = render_config("paper", 64, sampling_pattern="BLUE_NOISE", denoising_input_passes="RGB_ALBEDO")
    recorded = json.loads(json.dumps(changed.to_dict()))
    assert (recorded["sampling_pattern"], recorded["denoising_input_passes"]) == ("BLUE_NOISE", "RGB_ALBEDO")
    assert from_dict(recorded) == changed
    with pytest.raises(ConfigError, match="sampling_pattern.*BLUE_NOISE") as bad:
        render_config("fast", 64, sampling_pattern="SOBOL_BURLEY")
    assert "\n" not in str(bad.value)
    with pytest.raises(ConfigError, match="denoising_input_passes.*RGB_ALBEDO") as bad:
        render_config("fast", 64, denoising_input_passes="ALBEDO")
    assert "\n" not in str(bad.value)


def test_device_choice() -> None:
    gpus = [DeviceSpec("CUDA", "CUDA_0", "a"), DeviceSpec("CUDA", "CUDA_1", "b"), DeviceSpec("OPTIX", "O_0", "a")]
    assert select_devices("auto", gpus) == [gpus[2]]  # OptiX first
    assert select_devices("cuda", gpus) == gpus[:2]
    assert select_devices("auto", []) == [CPU]
    assert select_devices("cpu") == [CPU]
    with pytest.raises(ConfigError, match="no HIP GPU"):
        select_devices("hip", gpus)
    with pytest.raises(ConfigError, match="unknown --device"):
        select_devices("tpu", gpus)


def test_one_worker_per_gpu_and_shared_cpu_cores() -> None:
    gpus = [DeviceSpec("CUDA", f"CUDA_{i}", "g") for i in range(3)]
    specs = worker_specs(render_config("fast"), gpus, [], workers=None)
    assert [s.device for s in specs] == gpus
    cpu = worker_specs(render_config("fast"), [CPU], [], workers=2)
    assert len(cpu) == 2 and all(s.threads >= 1 for s in cpu)
    with pytest.raises(ConfigError, match="--workers"):
        worker_specs(render_config("fast"), [CPU], [], workers=0)


def test_output_path_for_files_folders_and_shards(tmp_path: Path) -> None:
    assert output_path(tmp_path / "x.h5", None, None) == tmp_path / "x.h5"
    assert output_path(tmp_path, None, None) == tmp_path / "causal3dident.h5"
    assert output_path(tmp_path, 3, 8) == tmp_path / "causal3dident-shard00003-of-00008.h5"
