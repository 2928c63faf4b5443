"""The Causal3DIdent SCM: distributions (KS tests), determinism, sharding, presets as data."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from scipy import stats

from causal3dident import CLASS_NAMES, LATENT_NAMES, ConfigError, Intervention, load_preset
from causal3dident.scm import SCM, load_preset_dict

N = 70_000
ALPHA = 1e-3  # KS p-value threshold; tests are deterministic (fixed seed), so no flakiness
COL = {name: i for i, name in enumerate(LATENT_NAMES)}

ROT_MEANS = {  # spec: rotation mean (alpha, beta, gamma) per class
    "teapot": (-.35, .35, .35), "hare": (.35, -.35, .35), "dragon": (.35, .35, -.35), "cow": (.35, -.35, -.35),
    "armadillo": (-.35, .35, -.35), "horse": (-.35, -.35, .35), "head": (-.35, -.35, -.35),
}
POS_SIGN = {"teapot": 0, "hare": -1, "dragon": -1, "horse": -1, "cow": 1, "armadillo": 1, "head": 1}
HUE_OBJ_CONST = {"teapot": 0.0, "cow": -0.35, "armadillo": 0.7, "horse": -0.7, "head": 0.35}


@pytest.fixture(scope="module")
def sample() -> tuple[np.ndarray, np.ndarray]:
    return load_preset("causal3dident").sample(N, seed=11)


def _pit_uniform(x: np.ndarray, mean: np.ndarray | float, sigma: float = 0.5) -> float:
    """KS p-value that x ~ TruncNormal(mean, sigma, [-1, 1]) via the probability integral transform."""
    a, b = (-1 - np.asarray(mean)) / sigma, (1 - np.asarray(mean)) / sigma
    u = stats.truncnorm.cdf(x, a, b, loc=mean, scale=sigma)
    return stats.kstest(u, "uniform").pvalue


def test_independent_latents_are_uniform_and_classes_balanced(sample):
    z, c = sample
    for name in ("spot_pos", "hue_spot", "hue_bg"):
        assert stats.kstest(z[:, COL[name]], "uniform", args=(-1, 2)).pvalue > ALPHA, name
    counts = np.bincount(c, minlength=7)
    assert stats.chisquare(counts).pvalue > ALPHA
    assert z.dtype == np.float32 and c.dtype == np.int64 and z.shape == (N, 10)


@pytest.mark.parametrize("cls", CLASS_NAMES)
def test_rotations_match_truncated_normals_per_class(sample, cls):
    z, c = sample
    rows = c == CLASS_NAMES.index(cls)
    for axis, mean in zip(("rot_alpha", "rot_beta", "rot_gamma"), ROT_MEANS[cls]):
        assert _pit_uniform(z[rows, COL[axis]], mean) > ALPHA, (cls, axis)
        # and a wrong mean is rejected, so the test can fail
        assert _pit_uniform(z[rows, COL[axis]], -mean) < ALPHA, (cls, axis)


@pytest.mark.parametrize("cls", CLASS_NAMES)
def test_positions_depend_on_class_and_spotlight(sample, cls):
    z, c = sample
    rows = c == CLASS_NAMES.index(cls)
    s = z[rows, COL["spot_pos"]].astype(np.float64) * np.pi / 2
    sign = POS_SIGN[cls]
    assert _pit_uniform(z[rows, COL["pos_x"]], sign * np.sin(s)) > ALPHA
    assert _pit_uniform(z[rows, COL["pos_y"]], sign * np.cos(s)) > ALPHA
    assert _pit_uniform(z[rows, COL["pos_z"]], 0.0) > ALPHA
    if sign:
        assert _pit_uniform(z[rows, COL["pos_y"]], -sign * np.cos(s)) < ALPHA


@pytest.mark.parametrize("cls", CLASS_NAMES)
def test_object_hue_depends_on_class_and_hues(sample, cls):
    z, c = sample
    rows = c == CLASS_NAMES.index(cls)
    both = (z[rows, COL["hue_bg"]].astype(np.float64) + z[rows, COL["hue_spot"]]) / 2
    mean = {"hare": both, "dragon": -both}.get(cls, HUE_OBJ_CONST.get(cls))
    assert _pit_uniform(z[rows, COL["hue_obj"]], mean) > ALPHA


def test_same_seed_same_latents_different_seed_different():
    scm = load_preset("causal3dident")
    a, ca = scm.sample(5000, seed=1)
    b, cb = scm.sample(5000, seed=1)
    d, cd = scm.sample(5000, seed=2)
    assert np.array_equal(a, b) and np.array_equal(ca, cb)
    assert not np.array_equal(a, d) and not np.array_equal(ca, cd)


@pytest.mark.parametrize("k", [2, 3, 7])
def test_shards_concatenate_to_unsharded(k):
    from causal3dident.generate import shard_range

    scm = load_preset("causal3dident")
    n = 150_000  # spans several noise blocks, so shard edges fall inside blocks
    full, full_c = scm.sample(n, seed=5)
    parts = [scm.sample(stop - start, seed=5, start=start) for start, stop in
             (shard_range(n, i, k) for i in range(k))]
    assert np.array_equal(np.concatenate([p[0] for p in parts]), full)
    assert np.array_equal(np.concatenate([p[1] for p in parts]), full_c)


def test_3dident_preset_is_the_teapot_with_independent_uniform_latents():
    z, c = load_preset("3dident").sample(20_000, seed=0)
    for j in range(10):
        assert stats.kstest(z[:, j], "uniform", args=(-1, 2)).pvalue > ALPHA
    assert load_preset("3dident").edges() == []
    assert (c == 0).all()  # 3DIdent is the teapot alone (cl-ica's renderer has only ShapeTeapot)


def test_edited_preset_file_changes_the_scm(tmp_path):
    data = load_preset_dict("causal3dident")
    data["latents"]["rot_alpha"]["mean"]["teapot"] = 0.9           # a mean
    data["latents"]["pos_z"] = {"distribution": "truncnorm", "sigma": 0.2,  # an edge and a sigma
                                "parents": ["hue_bg"], "mean": "hue_bg"}
    data["classes"]["weights"] = [1, 0, 0, 0, 0, 0, 0]              # the class weights
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    scm = load_preset(str(path))
    z, c = scm.sample(20_000, seed=0)
    assert (c == 0).all()
    assert _pit_uniform(z[:, COL["rot_alpha"]], 0.9) > ALPHA
    assert _pit_uniform(z[:, COL["pos_z"]], z[:, COL["hue_bg"]].astype(np.float64), sigma=0.2) > ALPHA
    assert ("hue_bg", "pos_z") in scm.edges()


def test_preset_round_trips_through_to_dict():
    scm = load_preset("causal3dident")
    again = SCM.from_dict(scm.to_dict())
    assert np.array_equal(scm.sample(1000, 3)[0], again.sample(1000, 3)[0])


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["latents"]["pos_x"].update(sigma=-1), "sigma must be > 0"),
    (lambda d: d["latents"]["pos_x"].update(parents=["class"]), "does not list"),
    (lambda d: d["latents"]["pos_x"].update(mean="bogus(1)"), "not allowed"),
    (lambda d: d["latents"].pop("hue_bg"), "missing"),
    (lambda d: d["latents"]["spot_pos"].update(distribution="gamma"), "distribution must be one of"),
    (lambda d: d["latents"]["hue_spot"].update(distribution="truncnorm", sigma=0.5, parents=["hue_obj"],
                                                 mean="hue_obj"), "cycle"),
    (lambda d: d["classes"].update(weights=[1, 2]), "weights"),
])
def test_bad_presets_name_the_problem(edit, message):
    data = load_preset_dict("causal3dident")
    edit(data)
    with pytest.raises(ConfigError, match=message):
        SCM.from_dict(data)


def test_unknown_preset_lists_the_choices():
    with pytest.raises(ConfigError, match="choose one of 3dident, causal3dident"):
        load_preset("nope")


def test_intervention_do_value_and_shifted_distribution():
    scm = load_preset("causal3dident")
    z, c = scm.intervene([Intervention.parse("do(hue_bg=0.5)"), Intervention.parse("class=hare")]).sample(
        20_000, seed=4)
    assert (z[:, COL["hue_bg"]] == 0.5).all() and (c == 1).all()
    # descendants follow the intervened parent: hare's hue_obj mean is (hue_bg + hue_spot) / 2
    assert _pit_uniform(z[:, COL["hue_obj"]], (0.5 + z[:, COL["hue_spot"]].astype(np.float64)) / 2) > ALPHA
    shifted = scm.intervene([Intervention.parse("hue_bg~uniform(0.5,1)")]).sample(20_000, seed=4)[0]
    assert stats.kstest(shifted[:, COL["hue_bg"]], "uniform", args=(0.5, 0.5)).pvalue > ALPHA


@pytest.mark.parametrize("spec", ["hue_bg=2", "nope=0.1", "hue_bg~uniform(1,0.5)", "class=7", "hue_bg",
                                  "pos_x~truncnorm(0,-1)"])
def test_bad_interventions_are_config_errors(spec):
    with pytest.raises(ConfigError):
        Intervention.parse(spec)


def test_million_latents_sample_quickly():
    """Not a timing test: checks the vectorised path handles 1e6 rows and stays in range."""
    z, c = load_preset("causal3dident").sample(1_000_000, seed=0)
    assert z.shape == (1_000_000, 10) and np.abs(z).max() <= 1.0 and set(np.unique(c)) == set(range(7))
