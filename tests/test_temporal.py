"""Temporal latent models (causal3dident.temporal) against CITRIS's generator, re-implemented here on fixed noise.

``citris_sequence`` transcribes ``perform_time_step``, ``_take_step`` and the loop of ``main`` in
data_generation/temporal_causal3dident/data_generation_causal3dident.py (github.com/phlippe/CITRIS) with its
arrays of random numbers passed in (built from the model's noise streams), in float64 (CITRIS stores float32).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy import stats
from scipy.special import ndtri

from causal3dident import noise
from causal3dident.errors import ConfigError
from causal3dident.scm import load_preset_dict
from causal3dident.temporal import STREAMS, TemporalModel, load_temporal

TWO_PI = 2 * np.pi
ANGLES = [3, 4, 5, 6, 7, 8, 9]


# -- CITRIS, transcribed --------------------------------------------------------------------------
def angle_mean(angles):
    angles = np.array(angles)
    return np.arctan2(np.sin(angles).mean(), np.cos(angles).mean())


def correct_angle(val):
    while val >= 2 * np.pi:
        val -= 2 * np.pi
    while val < 0.0:
        val += 2 * np.pi
    return val


def hue_obj_goal(shape, hue_spot, hue_bg):
    if shape == 0:
        goal = 0.0
    elif shape == 1:
        goal = 2 * np.pi * (1.0 / 5.0)
    elif shape == 2:
        goal = angle_mean([hue_spot, hue_bg])
    elif shape == 3:
        goal = 2 * np.pi * (2.0 / 5.0)
    elif shape == 4:
        goal = np.pi + angle_mean([hue_spot, hue_bg])
    elif shape == 5:
        goal = 2 * np.pi * (3.0 / 5.0)
    else:
        goal = 2 * np.pi * (4.0 / 5.0)
    return correct_angle(goal)


def take_step(current_val, goal_val, noise_val, redraw, angle=False, pos_std=0.1):
    step = (goal_val - current_val) / 2.0
    if angle:
        if abs(goal_val - current_val) > np.pi:
            if step < 0.0:
                step += np.pi
            elif step > 0.0:
                step -= np.pi
    next_val = current_val + step + noise_val
    while not angle and abs(next_val) > 2:
        next_val = current_val + step + pos_std * redraw()  # CITRIS: stds[0]
    return next_val


def perform_time_step(latents_t, noise_t, shape, interventions, intv_vals, redraws, instantaneous, pos_std):
    if not instantaneous:
        goals = np.zeros_like(latents_t)
        goals[0] = 1.5 * np.sin(latents_t[4])
        goals[1] = 1.5 * np.sin(latents_t[3])
        goals[2] = 1.5 * np.cos(latents_t[3])
        goals[3] = latents_t[9]
        goals[4] = latents_t[7]
        goals[8] = 2 * np.pi - latents_t[9]
        goals[6] = correct_angle(np.arctan2(latents_t[0], latents_t[1]))
        goals[7] = hue_obj_goal(shape, latents_t[8], latents_t[9])
        goals[9] = latents_t[9]
        new_vals = latents_t * 0.0
        for i in range(goals.shape[0]):
            new_vals[i] = take_step(latents_t[i], goals[i], noise_t[i], redraws[i], angle=(i in ANGLES),
                                    pos_std=pos_std)
        return new_vals
    new_vals = latents_t * 0.0

    def step_with_intv(index, goal):
        if interventions[index]:
            new_vals[index] = intv_vals[index]
        else:
            new_vals[index] = take_step(latents_t[index], goal, noise_t[index], redraws[index],
                                        angle=(index in ANGLES), pos_std=pos_std)

    step_with_intv(9, latents_t[9])
    step_with_intv(8, 2 * np.pi - new_vals[9])
    step_with_intv(7, hue_obj_goal(shape, new_vals[8], new_vals[9]))
    step_with_intv(3, new_vals[9])
    step_with_intv(4, new_vals[7])
    step_with_intv(0, 1.5 * np.sin(new_vals[4]))
    step_with_intv(1, 1.5 * np.sin(new_vals[3]))
    step_with_intv(2, 1.5 * np.cos(new_vals[3]))
    step_with_intv(6, correct_angle(np.arctan2(new_vals[0], new_vals[1])))
    return new_vals


def citris_sequence(seed, n, *, instantaneous, coarse=True, pos_std=0.1, single_targets=False):
    """CITRIS's main loop on the model's noise: (latents [n, 10], shapes [n], interventions [n - 1, 12], redraws).

    ``pos_std``: the positions' noise (CITRIS: 0.1, which almost never leaves [-2, 2]; larger to test redraws)."""
    num_cont_vars, exclude_vars = 10, [5, 11]
    int_probs = 1.0 / (12 - len(exclude_vars) - (4 if coarse else 0) + 1)
    stds = np.array([pos_std] * 3 + [0.15] * 4 + [0.15] * 3)
    u = noise.uniforms(seed, STREAMS["values"], 0, n, 10).T
    random_latents = u.copy()
    random_latents[:, :3] = (random_latents[:, :3] - 0.5) * 2 * 2
    random_latents[:, 3:] *= 2 * np.pi
    random_shapes = np.minimum((noise.uniforms(seed, STREAMS["class"], 0, n, 1)[0] * 7).astype(int), 6)
    random_trans = ndtri(np.maximum(noise.uniforms(seed, STREAMS["noise"], 0, n, 10), 2.0 ** -54)).T[1:]
    random_trans_shapes = noise.uniforms(seed, STREAMS["switch"], 0, n, 1)[0][1:]
    interventions = (noise.uniforms(seed, STREAMS["targets"], 0, n, 12).T[1:] < int_probs).astype(np.int64)
    interventions[:, exclude_vars] = 0
    if single_targets:  # --single_targets, with np.random.rand replaced by the model's stream
        if coarse:
            interventions[:, 1:3] = 0
            interventions[:, 4:6] = 0
        cont_prob = interventions * noise.uniforms(seed, STREAMS["single"], 0, n, 12).T[1:]
        one_hot = np.zeros_like(interventions)
        one_hot[np.arange(one_hot.shape[0]), cont_prob.argmax(axis=-1)] = 1
        interventions = interventions * one_hot
    if coarse:
        interventions[:, 0:3] = interventions[:, :1]
        interventions[:, 3:6] = interventions[:, 3:4]
    latents = np.zeros((n, num_cont_vars))
    shapes = np.zeros(n, dtype=np.int64)
    latents[0], shapes[0] = random_latents[0], random_shapes[0]
    redraw_count = [0]

    def redraw_fn(t, j):
        attempt = [0]

        def draw():
            value = noise.uniforms_at(seed, STREAMS["redraw"], np.array([t]), 1, key=(j, attempt[0]))[0, 0]
            attempt[0] += 1
            redraw_count[0] += 1
            return float(ndtri(max(value, 2.0 ** -54)))
        return draw

    for i in range(1, n):
        switch = interventions[i - 1, 10] or random_trans_shapes[i - 1] < 0.05
        shapes[i] = random_shapes[i] if switch else shapes[i - 1]
        latents[i] = perform_time_step(latents[i - 1], random_trans[i - 1] * stds,
                                       shapes[i - 1] if not instantaneous else shapes[i],
                                       interventions[i - 1, :num_cont_vars], random_latents[i],
                                       [redraw_fn(i, j) for j in range(10)], instantaneous, pos_std)
        latents[i] = np.where(interventions[i - 1, :num_cont_vars], random_latents[i], latents[i])
        for j in range(3):
            while abs(latents[i, j]) > 2:  # never taken: _take_step already redrew
                raise AssertionError("CITRIS's second redraw loop ran")
        latents[i, 3:] = np.fmod(latents[i, 3:], 2 * np.pi) + 2 * np.pi * (latents[i, 3:] < 0)
    latents[:, 5] = 0.0
    return latents, shapes, interventions, redraw_count[0]


def assert_same_latents(ours, theirs, atol=1e-9):
    np.testing.assert_allclose(ours[:, :3], theirs[:, :3], rtol=0, atol=atol)
    diff = np.abs(ours[:, 3:] - theirs[:, 3:])
    np.testing.assert_allclose(np.minimum(diff, TWO_PI - diff), 0.0, rtol=0, atol=atol)


# -- the dynamics -------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset,instantaneous", [("temporal_causal3dident", False),
                                                   ("instantaneous_temporal_causal3dident", True)])
def test_matches_citris_on_fixed_noise(preset, instantaneous):
    n, seed = 1500, 11
    frames = load_temporal(preset).sample(seed, 0, n)
    latents, shapes, interventions, _ = citris_sequence(seed, n, instantaneous=instantaneous)
    assert interventions.any(axis=0)[[0, 3, 6, 7, 8, 9, 10]].all()
    np.testing.assert_array_equal(frames.classes, shapes)
    np.testing.assert_array_equal(frames.targets[1:], interventions)
    assert not frames.targets[0].any()
    assert_same_latents(frames.latents, latents)


@pytest.mark.parametrize("preset,instantaneous", [("temporal_causal3dident", False),
                                                   ("instantaneous_temporal_causal3dident", True)])
def test_position_redraws_match_citris(preset, instantaneous):
    """CITRIS's positions (std 0.1) almost never leave [-2, 2]; with std 0.6 they often do, and are redrawn."""
    data = copy.deepcopy(load_preset_dict(preset))
    for name in ("pos_x", "pos_y", "pos_z"):
        data["latents"][name]["sigma"] = 0.6
    frames = TemporalModel.from_dict(data).sample(2, 0, 600)
    latents, shapes, interventions, redraws = citris_sequence(2, 600, instantaneous=instantaneous, pos_std=0.6)
    assert redraws > 50
    np.testing.assert_array_equal(frames.targets[1:], interventions)
    assert_same_latents(frames.latents, latents)


def test_single_targets_match_citris():
    """CITRIS's --single_targets: of the variables drawn in a step, one (uniformly chosen) is intervened."""
    data = copy.deepcopy(load_preset_dict("temporal_causal3dident"))
    data["interventions"]["mode"] = "single"
    model = TemporalModel.from_dict(data)
    frames = model.sample(6, 0, 800)
    latents, shapes, interventions, _ = citris_sequence(6, 800, instantaneous=False, single_targets=True)
    np.testing.assert_array_equal(frames.targets[1:], interventions)
    np.testing.assert_array_equal(frames.classes, shapes)
    assert_same_latents(frames.latents, latents)
    n = 100_000
    targets = model.targets(6, 0, n)[1:]
    causal = targets[:, [0, 3, 6, 7, 8, 9, 10]]  # one column per coarse causal variable
    assert causal.sum(axis=1).max() == 1
    p_any = 1 - (1 - model.probability) ** 7
    assert _binomial_ok(int(causal.any(axis=1).sum()), n - 1, p_any)
    for j in range(7):  # each variable equally often
        assert _binomial_ok(int(causal[:, j].sum()), n - 1, p_any / 7)


def test_fine_variables_match_citris():
    """Without groups and with CITRIS's fine-variable probability 1/11 (its default without --coarse_vars)."""
    data = copy.deepcopy(load_preset_dict("temporal_causal3dident"))
    data["interventions"]["groups"] = []
    data["interventions"]["probability"] = 1 / 11
    frames = TemporalModel.from_dict(data).sample(5, 0, 800)
    latents, shapes, interventions, _ = citris_sequence(5, 800, instantaneous=False, coarse=False)
    np.testing.assert_array_equal(frames.targets[1:], interventions)
    np.testing.assert_array_equal(frames.classes, shapes)
    assert_same_latents(frames.latents, latents)


def test_instantaneous_differs_from_temporal():
    a = load_temporal("temporal_causal3dident").sample(3, 0, 50).latents
    b = load_temporal("instantaneous_temporal_causal3dident").sample(3, 0, 50).latents
    np.testing.assert_array_equal(a[0], b[0])  # the same first frame
    assert not np.allclose(a[1:], b[1:])


# -- interventions ------------------------------------------------------------------------------------
def _binomial_ok(k, n, p, z=4.5):
    return abs(k - n * p) <= z * np.sqrt(n * p * (1 - p))


def test_intervention_rates_and_groups():
    model = load_temporal("temporal_causal3dident")
    n = 200_000
    targets = model.targets(7, 0, n)
    names = model.target_names
    assert names[-2:] == ("class", "material")
    assert not targets[0].any()
    col = {name: i for i, name in enumerate(names)}
    for group in (["pos_x", "pos_y", "pos_z"], ["rot_alpha", "rot_beta", "rot_gamma"]):
        for member in group[1:]:
            np.testing.assert_array_equal(targets[:, col[member]], targets[:, col[group[0]]])
    assert not targets[:, col["material"]].any()
    p = model.probability
    assert p == pytest.approx(1 / 7)
    for name in ("pos_x", "rot_alpha", "spot_pos", "hue_obj", "hue_spot", "hue_bg", "class"):
        k = int(targets[1:, col[name]].sum())
        assert _binomial_ok(k, n - 1, p), (name, k / (n - 1), p)
    # the independent columns are independent: joint rate p^2
    both = int((targets[1:, col["hue_obj"]] & targets[1:, col["hue_bg"]]).sum())
    assert _binomial_ok(both, n - 1, p * p)


def test_intervened_values_are_uniform_on_the_domain_and_class_switch_rate():
    model = load_temporal("temporal_causal3dident")
    frames = model.sample(21, 0, 6000)
    col = {name: i for i, name in enumerate(model.target_names)}
    hit = frames.targets[:, col["hue_bg"]].astype(bool)
    assert stats.kstest(frames.latents[hit, 9] / TWO_PI, "uniform").pvalue > 1e-3
    hit = frames.targets[:, col["pos_x"]].astype(bool)
    assert stats.kstest((frames.latents[hit, 0] + 2) / 4, "uniform").pvalue > 1e-3
    # the class switches (to a uniform class, possibly the same) with probability 0.05 or on intervention
    changed = int((frames.classes[1:] != frames.classes[:-1]).sum())
    p_redraw = 1 - (1 - 0.05) * (1 - model.probability)
    assert _binomial_ok(changed, len(frames.classes) - 1, p_redraw * 6 / 7)


# -- angles, domains, order ---------------------------------------------------------------------------
def _quiet(name="temporal_causal3dident"):
    """The preset with no interventions and no class switches."""
    data = copy.deepcopy(load_preset_dict(name))
    data["interventions"]["probability"] = 0.0
    data["classes"]["switch_probability"] = 0.0
    return data


def test_angles_move_the_short_way_and_wrap():
    data = _quiet()
    data["latents"]["hue_bg"] = {"type": "angle", "domain": [0, TWO_PI], "sigma": 0.0, "goal": 0.1}
    model = TemporalModel.from_dict(data)
    state = np.zeros(10)
    state[9] = 6.2
    frames = model.sample(0, 1, 3, state=(state, 0))
    first = 6.2 + (0.1 + TWO_PI - 6.2) / 2  # half of the 0.18 rad gap across 0, not of the 6.1 rad one
    assert frames.latents[0, 9] == pytest.approx(first - TWO_PI, abs=1e-12)
    assert frames.latents[1, 9] == pytest.approx((frames.latents[0, 9] + 0.1) / 2, abs=1e-12)
    everything = load_temporal("temporal_causal3dident").sample(2, 0, 2000).latents
    assert ((everything[:, 3:] >= 0) & (everything[:, 3:] < TWO_PI)).all()
    assert (np.abs(everything[:, :3]) <= 2).all()


def test_linear_latents_are_redrawn_inside_the_domain():
    """With rate 1 the mean is the goal, so the redraws make a normal truncated to the domain."""
    data = _quiet()
    data["latents"]["pos_x"] = {"type": "linear", "domain": [-2, 2], "sigma": 0.5, "rate": 1.0, "goal": 1.9}
    x = TemporalModel.from_dict(data).sample(4, 0, 3000).latents[1:, 0]
    assert (np.abs(x) <= 2).all()
    truncated = stats.truncnorm((-2 - 1.9) / 0.5, (2 - 1.9) / 0.5, loc=1.9, scale=0.5)
    assert stats.kstest(x, truncated.cdf).pvalue > 1e-3
    assert (x > 2 - 1e-9).sum() == 0 and (x < 1.0).any()


def test_a_goal_far_outside_the_domain_is_one_error():
    data = _quiet()
    data["latents"]["pos_x"] = {"type": "linear", "domain": [-2, 2], "sigma": 0.01, "rate": 1.0, "goal": 50}
    with pytest.raises(ConfigError, match="outside its domain"):
        TemporalModel.from_dict(data).sample(0, 0, 3)


def test_instantaneous_parents_come_first_whatever_the_yaml_order():
    data = load_preset_dict("instantaneous_temporal_causal3dident")
    model = TemporalModel.from_dict(data)
    order = model.order
    for child, parents in {"hue_spot": ["hue_bg"], "hue_obj": ["hue_spot", "hue_bg"], "rot_alpha": ["hue_bg"],
                           "rot_beta": ["hue_obj"], "pos_x": ["rot_beta"], "pos_y": ["rot_alpha"],
                           "spot_pos": ["pos_x", "pos_y"]}.items():
        assert all(order.index(p) < order.index(child) for p in parents), (child, order)
    reversed_data = {**data, "latents": dict(reversed(list(data["latents"].items())))}
    a = model.sample(9, 0, 200)
    b = TemporalModel.from_dict(reversed_data).sample(9, 0, 200)
    np.testing.assert_array_equal(a.latents, b.latents)


def test_same_frame_cycles_and_unknown_names_are_config_errors():
    data = _quiet("instantaneous_temporal_causal3dident")
    data["latents"]["hue_bg"] = {**data["latents"]["hue_bg"], "goal": "rot_alpha"}
    with pytest.raises(ConfigError, match="cycle"):
        TemporalModel.from_dict(data)
    data = _quiet()
    data["latents"]["hue_bg"] = {**data["latents"]["hue_bg"], "goal": "prev_hue_sky"}
    with pytest.raises(ConfigError, match="prev_hue_sky"):
        TemporalModel.from_dict(data)
    data = _quiet()
    data["interventions"]["groups"] = [["pos_x", "pos_w"]]
    with pytest.raises(ConfigError, match="pos_w"):
        TemporalModel.from_dict(data)


# -- determinism and chunks ---------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["temporal_causal3dident", "instantaneous_temporal_causal3dident"])
def test_chunks_equal_one_run_and_seeds_decide(preset):
    model = load_temporal(preset)
    whole = model.sample(123, 0, 400)
    again = model.sample(123, 0, 400)
    np.testing.assert_array_equal(whole.latents, again.latents)
    pieces, state = [], None
    for a, b in [(0, 1), (1, 150), (150, 151), (151, 400)]:
        part = model.sample(123, a, b, state=state)
        pieces.append(part)
        state = part.state(b - 1)
    for key in ("latents", "classes", "targets"):
        np.testing.assert_array_equal(np.concatenate([getattr(p, key) for p in pieces]), getattr(whole, key))
    other = model.sample(124, 0, 400)
    assert not np.array_equal(other.latents, whole.latents)
    with pytest.raises(ValueError):
        model.sample(123, 5, 10)  # frames after 0 need the state before them
