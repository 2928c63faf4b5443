"""The sampling pattern and the denoiser's input passes reach Cycles (a real render at 32 px)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from causal3dident.render.config import render_config


@pytest.mark.render
def test_sampling_pattern_and_denoiser_passes_change_the_pixels_and_repeat_exactly(assets_dir: Path) -> None:
    from causal3dident.render.devices import CPU
    from causal3dident.render.preview import class_latents, render_latents

    latents, classes = class_latents("causal3dident", 1, seed=5)
    pair, pair_classes = latents[[6, 6]].astype(np.float32), classes[[6, 6]]  # one image twice, in one worker

    def render(**changes: str) -> np.ndarray:
        config = render_config("paper", 32, samples=4, **changes)
        return render_latents(pair, pair_classes, config, [CPU], workers=1, assets=assets_dir, per_task=2)

    sobol, blue = render(), render(sampling_pattern="BLUE_NOISE")
    rgb_only = render(denoising_input_passes="RGB")
    assert np.array_equal(sobol[0], sobol[1]) and np.array_equal(blue[0], blue[1])  # each setting repeats exactly
    assert np.array_equal(sobol, render(sampling_pattern="TABULATED_SOBOL", denoising_input_passes="RGB_ALBEDO_NORMAL"))
    assert not np.array_equal(sobol[0], blue[0])  # the pattern reached Cycles
    assert not np.array_equal(sobol[0], rgb_only[0])  # so did the denoiser's passes
