"""One pair path: the benchmark trains on exactly the pairs (and batches) ``Causal3DIdent`` + ``EpochSampler`` give."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import DataLoader

from causal3dident import Causal3DIdent, EpochSampler, noise
from causal3dident.benchmarks.augment import normalize, to_float
from causal3dident.benchmarks.data import load_data
from causal3dident.benchmarks.methods import SimCLR
from causal3dident.benchmarks.models import build_encoder
from causal3dident.benchmarks.settings import load_settings, parse_setting
from causal3dident.benchmarks.tiers import load_tier
from causal3dident.benchmarks.train import Trainer
from causal3dident.cli import main
from causal3dident.errors import ConfigError
from causal3dident.pairs import NEAREST_VERSION, NearestPairs, sample_z_tilde
from causal3dident.testing import make_synthetic_dataset
from causal3dident.transformations import LatentTransformation

DOCS = Path(__file__).resolve().parents[1] / "docs"
N = 160  # the smoke tier holds out the last 32 rows of a single file


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("pairpath") / "train.h5", n=N, resolution=32,
                                  pairs=("hues", "positions"), seed=5)


def trainer(data_file: Path, setting_spec: dict, overrides: list[str], seed: int) -> Trainer:
    setting = parse_setting("mine", {"views": "mine", "style": [], **setting_spec})
    tier = load_tier("smoke", overrides)
    data = load_data(data_file, setting, tier, seed=seed)
    model = build_encoder(tier.model, tier.resolution)
    return Trainer(SimCLR(), model, setting, tier, data, seed, torch.device("cpu"), "fp")


def test_counter_based_uniforms_at_any_indices_equal_the_range_draw():
    idx = np.array([70_000, 3, 65_535, 65_536, 3, 131_071])
    whole = noise.uniforms(4, "s", 0, 131_072, 2, key=(7,))
    np.testing.assert_array_equal(noise.uniforms_at(4, "s", idx, 2, key=(7,)), whole[:, idx])
    assert not np.allclose(noise.uniforms_at(4, "s", idx, 2, key=(8,)), whole[:, idx])  # the key is an epoch
    # without a key the stream is the one every file was generated with
    old = np.random.Generator(np.random.PCG64(np.random.SeedSequence(4, spawn_key=(noise.stream_id("s"), 1))))
    np.testing.assert_array_equal(noise.uniforms(4, "s", 65_536, 65_540, 2), old.random((2, noise.BLOCK))[:, :4])


def test_z_tilde_is_a_function_of_seed_lt_epoch_and_index():
    rng = np.random.default_rng(0)
    z = rng.uniform(-1, 1, (300, 10)).astype(np.float32)
    lt = LatentTransformation.parse("positions+hues")
    every = sample_z_tilde(lt, z, np.arange(300), seed=1, epoch=2)
    some = np.array([299, 0, 17, 17])
    np.testing.assert_array_equal(sample_z_tilde(lt, z[some], some, seed=1, epoch=2), every[some])
    unchanged = [c for c in range(10) if c not in lt.columns]
    np.testing.assert_array_equal(every[:, unchanged], z[:, unchanged])
    assert ((every >= -1) & (every <= 1)).all() and (every[:, lt.columns] != z[:, lt.columns]).all()
    for other in ({"seed": 2, "epoch": 2}, {"seed": 1, "epoch": 3}):
        assert not np.isclose(sample_z_tilde(lt, z, np.arange(300), **other), every)[:, lt.columns].any()
    with pytest.raises(ConfigError, match="epoch must be >= 0"):
        sample_z_tilde(lt, z, np.arange(300), seed=1, epoch=-1)


@pytest.mark.parametrize("overrides, pool", [([], N - 32), (["train.max_samples=100"], 100)])
def test_benchmark_and_dataset_make_the_same_nearest_pairs(data_file, tmp_path, overrides, pool):
    """Every anchor's partner (and z~) over two epochs; and the trainer's views are the dataset's images."""
    t = trainer(data_file, {"lt": "hues", "lt_pairs": "nearest"}, overrides, seed=11)
    assert len(t.data.train) == pool
    path = shutil.copy(data_file, tmp_path / "train.h5")  # the dataset caches its neighbour index beside the file
    ds = Causal3DIdent(path, pairs="nearest:hues", seed=11, num_samples=pool, image_format="tensor",
                       target_type=["index", "index2", "z_tilde"])
    assert len(ds) == pool
    per_epoch = t.per_epoch
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        items = ds.__getitems__(list(range(pool)))
        index2 = np.array([int(item[2][1]) for item in items])
        np.testing.assert_array_equal(index2, t.data.nearest.partners(epoch))
        np.testing.assert_array_equal(np.stack([item[2][2].numpy() for item in items]),
                                      t.data.nearest.z_tilde(epoch))
        # the batches of the run, through a DataLoader with the sampler: same anchors, same partner pixels
        sampler = EpochSampler(pool, seed=11)
        sampler.set_epoch(epoch)
        loader = DataLoader(ds, batch_size=t.tier.train.batch_size, sampler=sampler, drop_last=True)
        batches = list(loader)
        assert len(batches) == per_epoch
        for k, (view1, view2, (index, partner, _)) in enumerate(batches):
            step = epoch * per_epoch + k
            assert torch.equal(index, t.batch_indices(step))
            x1, x2 = t.views(step)
            assert torch.equal(x1, normalize(to_float(view1))) and torch.equal(x2, normalize(to_float(view2)))
    assert (t.data.nearest.partners(0) != t.data.nearest.partners(1)).any()


def test_nearest_pairs_use_the_files_recorded_sigma_in_both(data_file, tmp_path):
    path = shutil.copy(data_file, tmp_path / "train.h5")
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["config"])
        for lt in config["pairs"]:
            lt["sigma"] = 0.25
        f.attrs["config"] = json.dumps(config)
    t = trainer(path, {"lt": "hues", "lt_pairs": "nearest"}, [], seed=0)
    ds = Causal3DIdent(path, pairs="nearest:hues", seed=0, num_samples=len(t.data.train), target_type="index2")
    assert t.data.nearest.lt.sigma == ds.pair_spec.lt.sigma == 0.25
    np.testing.assert_array_equal([ds[i][2] for i in range(len(ds))], t.data.nearest.partners(0))


def test_exact_partner_of_each_anchor_is_the_datasets_pair_view(data_file):
    t = trainer(data_file, {"lt": "positions"}, ["train.max_samples=100"], seed=3)
    ds = Causal3DIdent(data_file, pairs="positions", num_samples=100, image_format="tensor", target_type="index")
    view2 = torch.stack([item[1] for item in ds.__getitems__(list(range(100)))])
    assert torch.equal(view2, t.data.pair_images)
    for step in (0, t.per_epoch + 1):  # two epochs
        idx = t.batch_indices(step)
        _, x2 = t.views(step)
        assert torch.equal(x2, normalize(to_float(view2[idx])))


def test_batch_order_is_the_benchmarks_unchanged_permutation(data_file):
    """The exact-pair runs of the committed leaderboard were ordered by this formula: it must not move."""
    t = trainer(data_file, {"lt": "hues"}, [], seed=2)
    for epoch in (0, 3):
        mixed = int(np.random.SeedSequence([2, 1, epoch]).generate_state(2, np.uint64)[0] >> np.uint64(1))
        order = torch.randperm(len(t.data.train), generator=torch.Generator().manual_seed(mixed))
        sampler = EpochSampler(len(t.data.train), 2)
        sampler.set_epoch(epoch)
        assert list(sampler) == order.tolist()
        b = t.tier.train.batch_size
        for k in range(t.per_epoch):
            assert torch.equal(t.batch_indices(epoch * t.per_epoch + k), order[k * b:(k + 1) * b])


def test_nearest_pairs_class_builds_its_index_and_caches_one_epoch():
    rng = np.random.default_rng(1)
    z, c = rng.uniform(-1, 1, (50, 10)).astype(np.float32), rng.integers(0, 3, 50)
    pairs = NearestPairs(LatentTransformation.parse("rotations"), z, c, seed=4)
    partners = pairs.partners(0)
    assert pairs.partners(0) is partners and (partners != np.arange(50)).all() and (c[partners] == c).all()
    sub = np.array([7, 3, 7])
    np.testing.assert_array_equal(pairs.pairs(0, sub)[1], partners[sub])
    assert pairs.describe()["version"] == NEAREST_VERSION and pairs.describe()["pool"] == 50
    with pytest.raises(ConfigError, match="independent LT"):
        NearestPairs(LatentTransformation.parse("hues", mode="interventional"), z, c, seed=0)


def test_num_samples_is_checked(data_file):
    with pytest.raises(ConfigError, match="num_samples must be an integer in 1..160"):
        Causal3DIdent(data_file, num_samples=161)
    assert len(Causal3DIdent(data_file, pairs="hues", num_samples=5)) == 5


def test_run_json_records_how_the_pairs_were_made(data_file, tmp_path):
    extra = tmp_path / "nearest.yaml"
    extra.write_text("settings:\n  lt_hues_nearest:\n    lt: hues\n    lt_pairs: nearest\n    style: [hues]\n")
    out = tmp_path / "runs"
    for setting in ("lt_hues_nearest", "lt_hues_exact"):
        result = CliRunner().invoke(main, ["bench", "run", "--setting", setting, "--settings", str(extra), "--tier",
                                           "smoke", "--seed", "1", "--data", str(data_file), "--out", str(out)],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
    nearest = json.loads((out / "smoke/simclr/lt_hues_nearest/seed1/run.json").read_text())["dataset"]["pairs"]
    assert nearest["mode"] == "nearest" and nearest["version"] == NEAREST_VERSION and nearest["seed"] == 1
    assert nearest["implementation"] == "causal3dident.pairs.NearestPairs" and nearest["pool"] == N - 32
    assert nearest["dataset"] == f"Causal3DIdent(train_file, pairs='nearest:hues', seed=1, num_samples={N - 32})"
    exact = json.loads((out / "smoke/simclr/lt_hues_exact/seed1/run.json").read_text())["dataset"]["pairs"]
    assert exact["mode"] == "exact" and exact["source"] == "/pairs/hues/images"


def doc_example(page: str, name: str) -> str:
    """The python block of ``docs/<page>`` that defines ``name``."""
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), flags=re.S)
               if "EpochSampler" in b and name in b]
    return code


def bench_run(tmp_path: Path, data_file: Path, setting: str) -> Path:
    """A smoke run of ``setting`` (lt_hues: nearest pairs, lt_hues_exact: rendered views) on a copy of the file."""
    extra = tmp_path / "nearest.yaml"
    extra.write_text("settings:\n  lt_hues_nearest:\n    lt: hues\n    lt_pairs: nearest\n    style: [hues]\n")
    path = shutil.copy(data_file, tmp_path / "train.h5")
    result = CliRunner().invoke(main, ["bench", "run", "--setting", setting, "--settings", str(extra), "--tier",
                                       "smoke", "--data", str(path), "--out", str(tmp_path / "runs")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return path


def test_loading_docs_example_replays_a_runs_nearest_pairs(data_file, tmp_path, monkeypatch):
    path = bench_run(tmp_path, data_file, "lt_hues")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(doc_example("loading.md", "trained_together").replace("runs/mini/", "runs/smoke/"), namespace)
    t = trainer(path, {"lt": "hues", "lt_pairs": "nearest"}, [], seed=0)
    together = namespace["trained_together"]
    assert sorted(together) == list(range(2 * t.per_epoch))
    for step, (anchors, partners) in together.items():
        assert torch.equal(anchors, t.batch_indices(step))
        np.testing.assert_array_equal(partners.numpy(), t.data.nearest.partners(step // t.per_epoch)[anchors])


def test_benchmark_docs_example_gives_a_runs_first_exact_pairs(data_file, tmp_path, monkeypatch):
    path = bench_run(tmp_path, data_file, "lt_hues_exact")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(doc_example("benchmark.md", "first_step").replace("runs/mini/", "runs/smoke/"), namespace)
    t = trainer(path, {"lt": "hues"}, [], seed=0)
    view1, view2, index = (torch.stack([torch.as_tensor(s[k]) for s in namespace["first_step"]]) for k in range(3))
    assert torch.equal(index, t.batch_indices(0))
    x1, x2 = t.views(0)
    assert torch.equal(x1, normalize(to_float(view1))) and torch.equal(x2, normalize(to_float(view2)))


def test_checkpoints_of_another_nearest_scheme_are_not_resumed_exact_ones_are():
    from causal3dident.benchmarks.runner import _fingerprint

    base = {"method_spec": "simclr", "setting": {"id": "x"}, "tier": {"name": "smoke"}, "seed": 0}
    before = {**base, "dataset": {"sha256": "abc"}}  # a record written before run.json had dataset.pairs
    exact = {**base, "dataset": {"sha256": "abc", "pairs": {"mode": "exact", "source": "/pairs/hues/images"}}}
    assert _fingerprint(before) == _fingerprint(exact)
    nearest = [{**base, "dataset": {"sha256": "abc", "pairs": {"mode": "nearest", "version": v}}} for v in (1, 2)]
    assert _fingerprint(nearest[0]) != _fingerprint(nearest[1]) != _fingerprint(before)
