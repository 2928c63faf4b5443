"""The GPU side of the training pipeline, checked on the CPU: where images are kept, and that the loop built for an
asynchronous device computes what the CPU loop computes."""

from __future__ import annotations

import csv

import pytest
import torch

from causal3dident.benchmarks import device as D
from causal3dident.benchmarks.augment import PairAugmenter, to_float
from causal3dident.benchmarks.data import load_data
from causal3dident.benchmarks.methods import SimCLR
from causal3dident.benchmarks.models import build_encoder
from causal3dident.benchmarks.settings import load_settings
from causal3dident.benchmarks.tiers import load_tier
from causal3dident.benchmarks.train import TRAIN_LOG, Rows, Trainer, derived_seed
from causal3dident.errors import ConfigError

GB = 10 ** 9
PAPER_IMAGES = 250_000 * 3 * 224 * 224  # bytes of the paper's anchors (uint8), as many again for one LT view set


# -- placement -------------------------------------------------------------------------------------
@pytest.mark.parametrize("sizes, free, reserve, expected", [
    ([37 * GB, 37 * GB], 140 * GB, 40 * GB, [True, True]),
    ([37 * GB, 37 * GB], 75 * GB, 40 * GB, [False, False]),  # 35 GB to spare: not even the anchors
    ([37 * GB, 37 * GB], 85 * GB, 40 * GB, [True, False]),
    ([10 * GB, 37 * GB, 5 * GB], 60 * GB, 40 * GB, [True, False, True]),  # greedy, in order, on what is left
    ([1 * GB], 20 * GB, 30 * GB, [False]),  # reserve above what is free
    ([0, 0], 0, 0, [True, True]),
])
def test_plan_placement_keeps_what_fits_beside_the_reserve(sizes, free, reserve, expected):
    assert D.plan_placement(sizes, free, reserve) == expected


def test_paper_tier_keeps_anchors_and_views_on_an_h200_but_not_on_small_gpus():
    tier = load_tier("paper")
    model = build_encoder(tier.model, tier.resolution)
    reserve = D.training_reserve_bytes(model, tier.resolution, tier.train.batch_size)
    assert 25 * GB < reserve < 70 * GB  # ResNet-18, 2 x 512 views at 224 px: tens of GB of activations
    h200 = 139 * 2 ** 30
    assert D.plan_placement([PAPER_IMAGES, PAPER_IMAGES], h200, reserve) == [True, True]
    assert D.plan_placement([PAPER_IMAGES, PAPER_IMAGES], 80 * 2 ** 30, reserve) == [True, False]
    assert D.plan_placement([PAPER_IMAGES, PAPER_IMAGES], 24 * 2 ** 30, reserve) == [False, False]
    gpu = load_tier("gpu")
    anchors = gpu.data.train * 3 * gpu.resolution ** 2
    gpu_reserve = D.training_reserve_bytes(build_encoder(gpu.model, gpu.resolution), gpu.resolution,
                                           gpu.train.batch_size)
    assert D.plan_placement([anchors, anchors], 24 * 2 ** 30, gpu_reserve) == [True, True]


def test_activation_estimate_scales_and_leaves_the_model_and_rng_alone():
    tier = load_tier("smoke")  # global average pooling: any resolution
    model = build_encoder(tier.model, 32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    one, four = D.saved_activation_bytes(model, 32, 2), D.saved_activation_bytes(model, 32, 8)
    assert one > 3 * 32 * 32 * 4 * 2 and four == 4 * one  # at least the input images, linear in the batch
    assert D.saved_activation_bytes(model, 64, 2) > 3.5 * one  # and in the pixels
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BatchNorm statistics too


def test_host_tensors_stay_put_on_the_cpu():
    x = torch.arange(6)
    cpu = torch.device("cpu")
    assert D.to_device(x, cpu) is x and D.resolve(cpu) == cpu
    rows = Rows(torch.arange(20).view(10, 2), torch.tensor([3, 1]))
    assert torch.equal(rows.on(cpu), torch.tensor([[6, 7], [2, 3]]))
    gathered = Rows(rows.images, rows.index, gathered=torch.tensor([[6, 7], [2, 3]]))
    assert gathered.on(cpu) is gathered.gathered


# -- the CPU path, and the asynchronous loop run on the CPU ---------------------------------------------
def make_trainer(data_file, setting_id: str, *overrides: str, method=None) -> Trainer:
    setting = load_settings()[setting_id]
    tier = load_tier("smoke", ["train.steps=6", "train.log_every=3", "train.checkpoint_every=100", *overrides])
    data = load_data(data_file, setting, tier, seed=0)
    torch.manual_seed(0)
    model = build_encoder(tier.model, tier.resolution)
    return Trainer(method or SimCLR(), model, setting, tier, data, 0, torch.device("cpu"), "fp")


def test_cpu_views_are_the_documented_draws(synthetic_h5):
    trainer = make_trainer(synthetic_h5, "da_crop_small_colour")
    for step in (0, 5):
        idx = trainer.batch_indices(step)
        x = to_float(trainer.data.train.images[idx])
        g = torch.Generator().manual_seed(derived_seed(0, 2, step))
        expected = PairAugmenter(["crop_small", "colour"], 32)(x, x, g)
        for got, want in zip(trainer.views(step), expected):
            assert torch.equal(got, want)


@pytest.mark.parametrize("setting_id", ["lt_hues", "da_rotation_colour"])
def test_asynchronous_loop_trains_the_same_weights(synthetic_h5, tmp_path, setting_id):
    sync, async_ = make_trainer(synthetic_h5, setting_id), make_trainer(synthetic_h5, setting_id)
    async_.asynchronous = True  # the CUDA loop: host work on the prefetch thread, the loss read at log steps
    seen: dict[str, list[tuple[int, float]]] = {"sync": [], "async": []}
    sync.train(tmp_path / "sync", lambda s, loss: seen["sync"].append((s, loss)))
    summary = async_.train(tmp_path / "async", lambda s, loss: seen["async"].append((s, loss)))
    for (name, a), b in zip(sync.model.state_dict().items(), async_.model.state_dict().values()):
        assert torch.equal(a, b), name
    losses = dict(seen["sync"])
    assert [s for s, _ in seen["async"]] == list(losses)
    assert all((loss == losses[s]) if s % 3 == 0 else loss != loss for s, loss in seen["async"])  # NaN between logs
    assert summary["final_loss"] == losses[6] and summary["placement"]["images"] == "cpu"
    logs = [[float(r["loss"]) for r in csv.DictReader((tmp_path / run / TRAIN_LOG).open())] for run in
            ("sync", "async")]
    assert len(logs[0]) == 2 and logs[0] == pytest.approx(logs[1], abs=2e-5)


class NaNFrom:
    """SimCLR until step ``k``, then a non-finite loss."""

    def __init__(self, k: int) -> None:
        self.k, self.calls, self.simclr = k, 0, SimCLR()

    def loss(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        loss = self.simclr.loss(z1, z2)
        return loss * float("nan") if self.calls > self.k else loss


@pytest.mark.parametrize("asynchronous, message", [(False, "at step 4"), (True, "between steps 3 and 6")])
def test_a_non_finite_loss_stops_training(synthetic_h5, tmp_path, asynchronous, message):
    trainer = make_trainer(synthetic_h5, "lt_hues", method=NaNFrom(4))
    trainer.asynchronous = asynchronous
    with pytest.raises(ConfigError, match=f"the loss became nan {message}; lower train.lr"):
        trainer.train(tmp_path)


def test_compile_flag_wraps_the_forward_only(synthetic_h5, monkeypatch):
    compiled = []

    def fake_compile(model):
        compiled.append(model)
        return lambda x: model(x)

    monkeypatch.setattr(torch, "compile", fake_compile)
    assert make_trainer(synthetic_h5, "lt_hues").forward is not None and compiled == []
    trainer = make_trainer(synthetic_h5, "lt_hues", "train.compile=true")
    assert compiled == [trainer.model] and trainer.forward is not trainer.model
    with pytest.raises(ConfigError, match="train.compile must be true or false"):
        load_tier("smoke", ["train.compile=fast"])


def test_gpu_tier_is_provisional_and_declares_its_data():
    from causal3dident.benchmarks.tier_data import split_specs

    gpu, mini, paper = load_tier("gpu"), load_tier("mini"), load_tier("paper")
    assert gpu.provisional and "measured on a GPU" in gpu.description and not gpu.train.compile
    assert mini.resolution <= gpu.resolution <= paper.resolution and gpu.model.encoder == "resnet18"
    assert mini.train.steps < gpu.train.steps < paper.train.steps and len(gpu.seeds) == 3
    train, test = split_specs(gpu)
    assert train.pairs == ()  # the LT settings pair anchors with their nearest neighbours: no views to render
    assert train.resolution == gpu.resolution and test.n >= gpu.eval.samples
