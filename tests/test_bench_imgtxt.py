"""The Multimodal3DIdent benchmark: their loss and text encoder, their probe protocol, and a smoke run end to end
through the CLI (real training steps, real probes, results.csv, the leaderboard)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from causal3dident import multimodal_vocab as vocab
from causal3dident.benchmarks.imgtxt import TextEncoder2D, imgtxt_params, resolve_imgtxt_method, symmetric_infonce
from causal3dident.benchmarks.imgtxt_eval import FACTORS, Encoded, evaluate_imgtxt
from causal3dident.benchmarks.imgtxt_run import load_imgtxt_tier
from causal3dident.cli import main
from causal3dident.benchmarks.leaderboard import read_rows, render_markdown, write_leaderboard
from causal3dident.errors import ConfigError
from causal3dident.testing import make_synthetic_dataset

C3DI = [sys.executable, "-c", "import sys; from causal3dident.cli import main; sys.exit(main())"]


def _their_infonce(z1, z2, tau):
    """utils/losses.py infonce_loss of multimodal-contrastive-learning, transcribed."""
    sim = torch.nn.CosineSimilarity(dim=-1)
    sim11 = sim(z1.unsqueeze(-2), z1.unsqueeze(-3)) / tau
    sim22 = sim(z2.unsqueeze(-2), z2.unsqueeze(-3)) / tau
    sim12 = sim(z1.unsqueeze(-2), z2.unsqueeze(-3)) / tau
    d = sim12.shape[-1]
    sim11[..., range(d), range(d)] = float("-inf")
    sim22[..., range(d), range(d)] = float("-inf")
    raw = torch.cat([torch.cat([sim12, sim11], dim=-1), torch.cat([sim22, sim12.transpose(-1, -2)], dim=-1)], dim=-2)
    return torch.nn.CrossEntropyLoss()(raw, torch.arange(2 * d))


@pytest.mark.parametrize("tau", [1.0, 0.3])
def test_symmetric_infonce_is_theirs(tau):
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(12, 4, generator=g), torch.randn(12, 4, generator=g)
    theirs = 0.5 * (_their_infonce(z1, z2, tau) + _their_infonce(z2, z1, tau))
    assert torch.allclose(symmetric_infonce(z1, z2, tau), theirs, atol=1e-5)
    assert symmetric_infonce(z1, z1 * 3, tau) < symmetric_infonce(z1, z2, tau)  # aligned pairs cost less


def test_text_encoder_matches_their_sizes():
    enc = TextEncoder2D(len(vocab.words()), 4, vocab.max_length())
    assert vocab.max_length() == 24 and enc.ldim == 25 * 4 * 3 * 16  # their hard-coded ldim for lengths 24..31
    text = torch.nn.functional.one_hot(torch.tensor([vocab.encode("A red teapot is at the top left.")] * 3),
                                       len(vocab.words())).float()
    assert enc(text).shape == (3, 4)


def test_default_method_and_its_parameters():
    tier = load_imgtxt_tier("smoke", ["method.temperature=0.5"], method="imgtxt")
    assert imgtxt_params("imgtxt", tier) == {"temperature": 0.5, "max_grad_norm": 2.0, "text_embedding_dim": 128,
                                             "text_fbase": 25}
    method = resolve_imgtxt_method("imgtxt", tier)
    assert method.name == "imgtxt" and method.temperature == 0.5
    with pytest.raises(ConfigError, match="temprature: unknown key"):
        imgtxt_params("imgtxt", load_imgtxt_tier("smoke", ["method.temprature=0.5"], method="imgtxt"))
    with pytest.raises(ConfigError, match="unknown image-text method"):
        resolve_imgtxt_method("simclr", tier)


def _encoded(rng, n, informative):
    """Labels drawn as the release's; features that carry them (informative) or noise."""
    image = {f: rng.uniform(0, 1, n) for f in FACTORS["image"]}
    for f in ("object_shape", "object_ypos", "object_xpos"):
        image[f] = rng.integers(0, 7 if f == "object_shape" else 3, n)
    text = {f: image[f] for f in ("object_shape", "object_ypos", "object_xpos")}
    text |= {"object_color_index": rng.integers(0, 4, n), "text_phrasing": rng.integers(0, 5, n)}

    def feats(labels):
        if not informative:
            return rng.normal(size=(n, 8))
        cols = [np.eye(k)[labels[f].astype(int)] if f in ("object_shape", "object_ypos", "object_xpos",
                                                         "object_color_index", "text_phrasing")
                else labels[f][:, None] for f, k in zip(labels, [7, 3, 3] + [5] * 10)]
        return np.hstack(cols)

    return Encoded({"image": feats(image), "text": feats(text)}, {"image": image, "text": text})


def test_protocol_scores_informative_encodings_high_and_noise_low():
    rng = np.random.default_rng(0)
    good = evaluate_imgtxt(_encoded(rng, 150, True), _encoded(rng, 150, True), seed=0)
    noise = evaluate_imgtxt(_encoded(rng, 150, False), _encoded(rng, 150, False), seed=0)
    names = [f"{m}.{f}" for m, fs in FACTORS.items() for f in fs]
    for rows in (good, noise):
        assert {r.factor for r in rows} == set(names) and all(r.layer == "final" for r in rows)
        assert len(rows) == 2 * len(names)  # two probes per factor
    by = {(r.factor, r.probe): r.value for r in good}
    assert by[("image.object_alpharot", "kernel_ridge")] > 0.95 and by[("image.object_alpharot", "linear")] > 0.99
    assert by[("image.object_shape", "logistic")] == 1.0 and by[("text.text_phrasing", "mlp")] == 1.0
    for r in noise:
        assert (r.value < 0.1) if r.metric == "r2" else (r.value < 0.5)
    assert {r.probe for r in good if r.metric == "r2"} == {"linear", "kernel_ridge"}
    assert {r.probe for r in good if r.metric == "accuracy"} == {"logistic", "mlp"}


@pytest.fixture(scope="module")
def splits(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("m3di_bench")
    for seed, (split, n) in enumerate([("train", 32), ("val", 24), ("test", 24)]):
        make_synthetic_dataset(root / f"{split}.h5", n=n, resolution=16, pairs=(), preset="multimodal3dident",
                               seed=seed)
    return root


def _bench(*args: str) -> subprocess.CompletedProcess:
    """The CLI in a real subprocess (what a user runs)."""
    return subprocess.run([*C3DI, "bench", "run", "--dataset", "multimodal3dident", *args], capture_output=True,
                          text=True, timeout=300)


def _invoke(*args: str):
    """The CLI in this process (fast: no imports to repeat)."""
    return CliRunner().invoke(main, ["bench", "run", *args])


def test_smoke_run_end_to_end_and_its_leaderboard(splits, tmp_path):
    out = tmp_path / "runs"
    done = _bench("--tier", "smoke", "--data", str(splits), "--out", str(out), "--device", "cpu")
    assert done.returncode == 0, done.stderr
    run = out / "smoke" / "imgtxt" / "multimodal3dident" / "seed0"
    with (run / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 30 and {r["factor"] for r in rows} == {f"{m}.{f}" for m, fs in FACTORS.items() for f in fs}
    assert all(np.isfinite(float(r["value"])) for r in rows)
    log = list(csv.DictReader((run / "train_log.csv").open()))
    assert [int(r["step"]) for r in log] == [1, 2, 3, 4] and all(np.isfinite(float(r["loss"])) for r in log)
    record = json.loads((run / "run.json").read_text())
    assert record["train"]["steps"] == 4 and record["dataset"]["val_samples"] == 24
    assert record["method_params"]["temperature"] == 1.0 and len(record["dataset"]["sha256"]) == 64

    # the same command again resumes at step 4 and gives the same rows (deterministic training and probes)
    again = _invoke("--dataset", "multimodal3dident", "--tier", "smoke", "--data", str(splits), "--out", str(out))
    assert again.exit_code == 0, again.output
    assert list(csv.DictReader((run / "results.csv").open())) == rows

    md, pictures = write_leaderboard([out], tmp_path / "LB.md")
    text = md.read_text()
    assert pictures == [] and "## imgtxt, tier `smoke`, Multimodal3DIdent (`multimodal3dident`)" in text
    shape = next(r for r in rows if r["factor"] == "text.object_shape" and r["probe"] == "logistic")
    assert f"| text | object_shape |  |  | {float(shape['value']):.2f} |" in text


@pytest.mark.slow  # two training runs in one folder: ~45 s on 2 shared cores
def test_leaderboard_keeps_causal3dident_sections_as_they_were(splits, synthetic_h5, tmp_path):
    out = tmp_path / "runs"
    mm = _invoke("--dataset", "multimodal3dident", "--tier", "smoke", "--data", str(splits), "--out", str(out))
    assert mm.exit_code == 0, mm.output
    c3 = _invoke("--setting", "lt_hues", "--tier", "smoke", "--data", str(synthetic_h5), "--out", str(out))
    assert c3.exit_code == 0, c3.output
    md, _ = write_leaderboard([out], tmp_path / "LB.md")
    causal = [r for r in read_rows([out]) if "." not in r["factor"]]
    text = md.read_text()
    images = {("simclr", "smoke"): "LB_simclr_smoke.png"}
    assert text.startswith(render_markdown(causal, images=images)) and "Multimodal3DIdent" in text


def test_plugin_method_through_the_cli(splits, tmp_path):
    plugin = tmp_path / "mine.py"
    plugin.write_text(
        "from causal3dident.benchmarks.imgtxt import ImgTxt\n"
        "class Mine(ImgTxt):\n    name = 'mine'\n"
        "def make(tier, *, temperature: float = 0.7):\n    return Mine(temperature)\n")
    out = tmp_path / "runs"
    done = _invoke("--dataset", "multimodal3dident", "--tier", "smoke", "--method", f"{plugin}:make", "--set",
                   "method.temperature=0.2", "--data", str(splits), "--out", str(out))
    assert done.exit_code == 0, done.output
    record = json.loads((out / "smoke" / "mine" / "multimodal3dident" / "seed0" / "run.json").read_text())
    assert record["method_params"] == {"temperature": 0.2} and record["method"] == "mine"
    bad = _invoke("--dataset", "multimodal3dident", "--tier", "smoke", "--method", f"{plugin}:make", "--set",
                  "method.tau=0.2", "--data", str(splits), "--out", str(out))
    assert bad.exit_code == 2 and "method.tau: unknown key" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_a_missing_split_is_one_line(splits, tmp_path):
    folder = tmp_path / "partial"
    folder.mkdir()
    (folder / "train.h5").symlink_to(splits / "train.h5")
    done = _invoke("--dataset", "multimodal3dident", "--tier", "smoke", "--data", str(folder), "--out",
                   str(tmp_path / "runs"))
    assert done.exit_code == 2 and "no val.h5" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs" / "smoke").exists()



def test_tiers_load_and_paper_is_their_defaults():
    from causal3dident.benchmarks.imgtxt_run import tier_names

    assert tier_names() == ["smoke", "mini", "paper"]
    assert not load_imgtxt_tier("mini").provisional and not load_imgtxt_tier("smoke").provisional
    mini = load_imgtxt_tier("mini")  # chosen on real renders (docs/multimodal.md, "The mini tier")
    assert (mini.resolution, mini.train.steps, imgtxt_params("imgtxt", mini)["temperature"]) == (64, 2000, 0.3)
    paper = load_imgtxt_tier("paper")
    # main_imgtxt.py's argparse defaults: --encoding-size 4, --hidden-size 100, --tau 1.0, --lr 1e-5,
    # --batch-size 256, --train-steps 100001; ResNet-18 on 224 px images
    assert (paper.model.encoder, paper.model.content_dim, paper.model.hidden_dim, paper.resolution) == \
        ("resnet18", 4, 100, 224)
    assert (paper.train.lr, paper.train.batch_size, paper.train.steps) == (1e-5, 256, 100001)
    assert imgtxt_params("imgtxt", paper)["temperature"] == 1.0


def test_release_layout_loads_as_the_hdf5_files(splits, tmp_path):
    from causal3dident.benchmarks.imgtxt_run import load_split
    from causal3dident.convert import export

    for split in ("val", "test"):
        export(splits / f"{split}.h5", tmp_path / "m3di", fmt="multimodal3dident")
        a, b = load_split(splits, split, 16), load_split(tmp_path / "m3di", split, 16)
        assert torch.equal(a.images, b.images) and torch.equal(a.tokens, b.tokens)
        for m in FACTORS:
            for f in FACTORS[m]:
                assert np.array_equal(a.labels[m][f], b.labels[m][f]), (m, f)


def test_tiers_listing_and_unsupported_options(splits, tmp_path):
    listing = CliRunner().invoke(main, ["bench", "tiers", "--dataset", "multimodal3dident"])
    assert listing.exit_code == 0 and "mini: 64 px" in listing.output and "imgtxt temperature 0.3" \
        in listing.output and "provisional" not in listing.output
    refused = _invoke("--dataset", "multimodal3dident", "--tier", "smoke", "--eval-every", "2", "--data", str(splits),
                      "--out", str(tmp_path))
    assert refused.exit_code == 2 and "--eval-every" in refused.output and not any(tmp_path.iterdir())
