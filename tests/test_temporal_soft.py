"""Soft interventions of temporal presets (``interventions: {kind: soft, soft: ...}``): an intervened latent keeps
its mechanism with a shifted goal and scaled noise. Checked here against a transcription of that rule on the model's
own noise streams, on the step statistics, on the intervention rates, and for bad specs."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
import yaml
from scipy import stats
from scipy.special import ndtri

from causal3dident import noise
from causal3dident.errors import ConfigError
from causal3dident.scm import load_preset_dict
from causal3dident.store import verify
from causal3dident.temporal import STREAMS, TemporalModel

TWO_PI = 2 * np.pi
C3DI = [sys.executable, "-c", "from causal3dident.cli import main; main()"]
SOFT = {"shift": 0.8, "sigma_scale": 2.0,
        "latents": {"pos_x": {"shift": 0.5}, "pos_y": {"shift": -3.0}, "pos_z": {"sigma_scale": 0.5},
                    "rot_alpha": {"shift": 5.0}}}  # pos_y: clipped; rot_alpha: wrapped


def soft_preset(probability=0.3, soft=SOFT, name="temporal_causal3dident"):
    data = copy.deepcopy(load_preset_dict(name))
    data["interventions"].update(probability=probability, kind="soft", soft=copy.deepcopy(soft))
    return data


def hue_obj_goal(shape, hue_spot, hue_bg):
    """CITRIS's per-shape goal of the object hue (teapot, armadillo, hare, cow, dragon, head, horse)."""
    mean = np.arctan2((np.sin(hue_spot) + np.sin(hue_bg)) / 2, (np.cos(hue_spot) + np.cos(hue_bg)) / 2)
    goal = [0.0, TWO_PI / 5, mean, 2 * TWO_PI / 5, np.pi + mean, 3 * TWO_PI / 5, 4 * TWO_PI / 5][shape]
    return goal % TWO_PI


def step_noise(seed, n):
    """The standard normal step noise [n, 10] of frames 0 .. n - 1."""
    return ndtri(np.maximum(noise.uniforms(seed, STREAMS["noise"], 0, n, 10), 2.0 ** -54)).T


def expected_frame(seed, t, prev, prev_class, targets, soft, z):
    """Frame t of the (non-instantaneous) preset from frame t - 1 and its step noise z [10], written from the rule in
    docs/temporal.md: the goal (+ shift where intervened; a position's clipped to [-2, 2]), half the short way
    there, plus sigma (x sigma_scale where intervened) times z; positions redrawn from the redraw stream while
    outside [-2, 2]."""
    goals = {0: 1.5 * np.sin(prev[4]), 1: 1.5 * np.sin(prev[3]), 2: 1.5 * np.cos(prev[3]), 3: prev[9], 4: prev[7],
             6: np.arctan2(prev[0], prev[1]) % TWO_PI, 7: hue_obj_goal(prev_class, prev[8], prev[9]),
             8: TWO_PI - prev[9], 9: prev[9]}
    names = ["pos_x", "pos_y", "pos_z", "rot_alpha", "rot_beta", "rot_gamma", "spot_pos", "hue_obj", "hue_spot",
             "hue_bg"]
    out = np.zeros(10)
    for j, goal in goals.items():
        sigma = 0.1 if j < 3 else 0.15
        if targets[j]:
            own = soft["latents"].get(names[j], {})
            goal = goal + own.get("shift", soft["shift"])
            goal = min(max(goal, -2.0), 2.0) if j < 3 else goal
            sigma = sigma * own.get("sigma_scale", soft["sigma_scale"])
        if j < 3:
            mean = prev[j] + (goal - prev[j]) / 2
            value, attempt = mean + sigma * z[j], 0
            while abs(value) > 2:
                u = noise.uniforms_at(seed, STREAMS["redraw"], np.array([t]), 1, key=(j, attempt))[0, 0]
                value, attempt = mean + sigma * ndtri(max(u, 2.0 ** -54)), attempt + 1
            out[j] = value
        else:
            short = (goal - prev[j] + np.pi) % TWO_PI - np.pi  # the signed short way to the goal
            out[j] = (prev[j] + short / 2 + sigma * z[j]) % TWO_PI
    return out


def circular_gap(a, b):
    d = np.abs(a - b) % TWO_PI
    return np.minimum(d, TWO_PI - d)


def test_intervened_steps_follow_the_soft_mechanism_and_the_others_the_original():
    seed, n = 5, 2000
    model = TemporalModel.from_dict(soft_preset())
    frames = model.sample(seed, 0, n)
    hit = frames.targets[1:, :10].astype(bool)
    assert hit[:, [0, 3, 6, 7, 8, 9]].sum(axis=0).min() > 400  # every kind of column is intervened often
    worst_linear = worst_angle = 0.0
    z = step_noise(seed, n)
    for t in range(1, n):
        want = expected_frame(seed, t, frames.latents[t - 1], frames.classes[t - 1], frames.targets[t], SOFT, z[t])
        worst_linear = max(worst_linear, np.abs(frames.latents[t, :3] - want[:3]).max())
        worst_angle = max(worst_angle, circular_gap(frames.latents[t, 3:], want[3:]).max())
    assert worst_linear < 1e-9 and worst_angle < 1e-9, (worst_linear, worst_angle)
    assert (frames.latents[:, 5] == 0).all()  # rot_gamma stays constant (it is excluded)
    # the class column is still a perfect intervention: an intervened step takes the class stream's draw
    new_class = np.minimum((noise.uniforms(seed, STREAMS["class"], 0, n, 1)[0] * 7).astype(int), 6)
    cls = frames.targets[:, model.target_names.index("class")].astype(bool)
    np.testing.assert_array_equal(frames.classes[cls], new_class[cls])


def test_soft_step_statistics():
    """hue_bg is a random walk (goal: its own previous value): a soft step moves it by shift / 2 on average with
    noise std 0.15 * sigma_scale; an ordinary step by 0 with std 0.15."""
    soft = {"shift": np.pi / 2, "sigma_scale": 2.0, "latents": {}}
    frames = TemporalModel.from_dict(soft_preset(soft=soft)).sample(8, 0, 10000)
    steps = (np.diff(frames.latents[:, 9]) + np.pi) % TWO_PI - np.pi
    hit = frames.targets[1:, 9].astype(bool)
    for part, mean, std in ((steps[hit], np.pi / 4, 0.3), (steps[~hit], 0.0, 0.15)):
        assert abs(part.mean() - mean) < 4.5 * std / np.sqrt(len(part)), (part.mean(), mean)
        assert abs(part.std() / std - 1) < 0.05, (part.std(), std)
        assert stats.kstest((part - mean) / std, "norm").pvalue > 1e-3


def _binomial_ok(k, n, p, z=4.5):
    return abs(k - n * p) <= z * np.sqrt(n * p * (1 - p))


def test_rates_match_the_probability_and_the_recorded_targets():
    """Which steps were softly intervened, read from the values alone (a step that the unshifted mechanism does not
    reproduce), equals the recorded targets, and its rate matches the probability."""
    seed, n, p = 3, 6000, 0.2
    soft = {"shift": 1.0, "sigma_scale": 1.0, "latents": {}}
    model = TemporalModel.from_dict(soft_preset(probability=p, soft=soft))
    frames = model.sample(seed, 0, n)
    plain, z = {"shift": 0.0, "sigma_scale": 1.0, "latents": {}}, step_noise(seed, n)
    moved = np.array([circular_gap(frames.latents[t, 9], expected_frame(
        seed, t, frames.latents[t - 1], frames.classes[t - 1], np.zeros(12), plain, z[t])[9]) > 1e-9
        for t in range(1, n)])
    np.testing.assert_array_equal(moved, frames.targets[1:, 9].astype(bool))
    assert _binomial_ok(int(moved.sum()), n - 1, p), moved.mean()
    # the kind changes what an intervention does, not where: the perfect preset of the same seed has the same targets
    perfect = copy.deepcopy(load_preset_dict("temporal_causal3dident"))
    perfect["interventions"]["probability"] = p
    np.testing.assert_array_equal(TemporalModel.from_dict(perfect).targets(seed, 0, n), frames.targets)


def test_instantaneous_soft_children_read_the_intervened_parent():
    """iCITRIS's same-frame graph: a softly intervened hue_bg is what hue_spot's goal reads in the same frame."""
    data = soft_preset(name="instantaneous_temporal_causal3dident", soft={"shift": 2.0, "sigma_scale": 1.0})
    frames = TemporalModel.from_dict(data).sample(4, 0, 400)
    z = step_noise(4, 400)
    hits = np.flatnonzero(frames.targets[:, 9] & ~frames.targets[:, 8])
    assert len(hits) > 20
    for t in hits:
        prev, cur = frames.latents[t - 1], frames.latents[t]
        short = ((TWO_PI - cur[9]) - prev[8] + np.pi) % TWO_PI - np.pi
        assert circular_gap(cur[8], prev[8] + short / 2 + 0.15 * z[t, 8]) < 1e-9


@pytest.mark.parametrize("change,message", [
    ({"kind": "gentle"}, "interventions.kind must be"),
    ({"kind": "perfect"}, "kind is perfect"),
    ({"soft": None}, "needs interventions.soft"),
    ({"soft": {"shift": 0.0}}, "unchanged"),
    ({"soft": {"shift": 1.0, "latents": {"rot_gamma": {"shift": 2.0}}}}, "rot_gamma is constant or excluded"),
    ({"soft": {"shift": 1.0, "latents": {"hue_sky": {"shift": 2.0}}}}, "hue_sky"),
    ({"soft": {"shift": 1.0, "sigma_scale": -1}}, "sigma_scale must be"),
    ({"soft": {"shift": 1.0, "latents": {"pos_x": {"shift": 1.0, "rate": 2}}}}, "unknown key"),
])
def test_bad_soft_specs_are_one_line_errors(change, message):
    data = soft_preset()
    data["interventions"].update(change)
    with pytest.raises(ConfigError, match=message) as error:
        TemporalModel.from_dict(data)
    assert "\n" not in str(error.value)


def test_cli_records_soft_sequences_and_refuses_bad_ones(tmp_path):
    preset = tmp_path / "soft.yaml"
    preset.write_text(yaml.safe_dump(soft_preset()))
    out = tmp_path / "seq.h5"
    done = subprocess.run([*C3DI, "latents", "--preset", str(preset), "--n", "200", "--seed", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    frames = TemporalModel.from_dict(soft_preset()).sample(2, 0, 200)
    with h5py.File(out) as f:
        np.testing.assert_array_equal(f["sequence/latents"][...], frames.latents)
        np.testing.assert_array_equal(f["sequence/targets"][...], frames.targets)
        assert json.loads(f.attrs["config"])["temporal"]["interventions"]["kind"] == "soft"
    assert verify(out) == []  # regenerated from the recorded soft preset and the seed
    bad = soft_preset()
    bad["interventions"]["soft"] = {"shift": 0}
    preset.write_text(yaml.safe_dump(bad))
    refused = tmp_path / "bad.h5"
    done = subprocess.run([*C3DI, "latents", "--preset", str(preset), "--n", "20", "--out", str(refused)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "unchanged" in done.stderr and not refused.exists()
