"""CITRIS's triplets: the sampler against their triplet_generation_causal3dident.py (no rendering), then rendered
(real bpy, 16 px) from a sequence file, sharded, exported as <split>_triplets.npz and read by their Causal3DDataset
(set C3DI_CITRIS to a checkout of phlippe/CITRIS)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from causal3dident.citris_export import CITRIS_TARGETS, citris_classes, export_citris
from causal3dident.generate import merge_files
from causal3dident.store import verify
from causal3dident.temporal import load_temporal
from causal3dident.temporal_store import read_sequence
from causal3dident.triplets import sample_triplets
from test_render_job import assert_same_data, run_cli

COL = {name: i for i, name in enumerate(CITRIS_TARGETS)}


def citris_make_triplets(orig_arr: np.ndarray, indices: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """CITRIS's make_triplets, verbatim."""
    triplets = np.stack([orig_arr[indices[0]], orig_arr[indices[1]]], axis=0)
    new_vals = np.where(mask == 0.0, triplets[0], triplets[1])
    triplets = np.concatenate([triplets, new_vals[None]], axis=0)
    triplets = triplets.transpose(1, 0, 2)
    return triplets


@pytest.fixture(scope="module")
def sequence():
    model = load_temporal("temporal_causal3dident")
    return model, model.sample(7, 0, 500)


@pytest.mark.parametrize("masks", ["fine", "coarse"])
def test_triplets_follow_citris_rules(sequence, masks: str) -> None:
    model, seq = sequence
    t = sample_triplets(model, seq.latents, seq.classes, 3, 0, 4000, masks)
    assert t.sources.shape == (4000, 2) and t.sources.min() >= 0 and t.sources.max() < 500
    assert t.masks.shape == (4000, 12) and set(np.unique(t.masks)) == {0, 1}
    total = t.masks.sum(axis=1)
    assert ((total > 0) & (total < 12)).all()  # never all from one frame
    # excluded columns (rot-gamma, material) copy the first column's entry, as CITRIS's non_excl_var
    assert np.array_equal(t.masks[:, COL["material"]], t.masks[:, COL["pos_x"]])
    if masks == "coarse":
        assert (t.masks[:, 0:3] == t.masks[:, [0]]).all() and (t.masks[:, 3:6] == t.masks[:, [3]]).all()
    else:
        assert np.array_equal(t.masks[:, COL["rot_gamma"]], t.masks[:, COL["pos_x"]])
        free = [COL[c] for c in ("pos_y", "rot_alpha", "hue_bg", "class")]
        rate = t.masks[:, free].mean()
        assert abs(rate - 0.5) < 4 * np.sqrt(0.25 / (4000 * 4)), rate  # fair bits (degenerate redraws are rare)
        assert abs(np.corrcoef(t.masks[:, COL["pos_y"]], t.masks[:, COL["pos_z"]])[0, 1]) < 0.1
    # the frames are CITRIS's make_triplets of the same sources and masks (latents, and the shape column)
    expected = citris_make_triplets(seq.latents, t.sources.T, t.masks[:, :10])
    assert np.array_equal(t.latents, expected)
    shapes = citris_make_triplets(seq.classes[:, None], t.sources.T, t.masks[:, [COL["class"]]])[..., 0]
    assert np.array_equal(t.classes, shapes)
    # counter-based draws: triplets 1000..1500 alone are those of the whole run
    part = sample_triplets(model, seq.latents, seq.classes, 3, 1000, 1500, masks)
    assert np.array_equal(part.masks, t.masks[1000:1500]) and np.array_equal(part.latents, t.latents[1000:1500])


# -- rendered -----------------------------------------------------------------------------------------------------
RENDER = ["--resolution", "16", "--quality", "preview", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def rendered(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("triplets")
    seq, trip = folder / "seq.h5", folder / "val_triplets.h5"
    common = [*RENDER, "--assets", str(assets_dir)]
    code, output = run_cli("render", "--preset", "temporal_causal3dident", "--n", "24", "--seed", "2", *common,
                           "--out", str(seq))
    assert code == 0, output
    code, output = run_cli("render", str(seq), "--triplets", "8", "--seed", "5", "--split", "val", *common,
                           "--out", str(trip))
    assert code == 0, output
    return {"seq": seq, "triplets": trip, "folder": folder}


@pytest.mark.render
def test_rendered_triplets_hold_the_sequence_frames_and_their_mix(rendered: dict[str, Path]) -> None:
    assert verify(rendered["triplets"]) == []
    with h5py.File(rendered["seq"]) as s, h5py.File(rendered["triplets"]) as f:
        sources = f["triplets/sources"][...]
        # the source frames are the sequence's frames, rendered again bit for bit
        assert np.array_equal(f["triplets/first/images"][...], s["images"][...][sources[:, 0]])
        assert np.array_equal(f["triplets/second/images"][...], s["images"][...][sources[:, 1]])
        seq_latents = read_sequence(s)["latents"]
        assert np.array_equal(f["triplets/latents"][:, 0], seq_latents[sources[:, 0]])
        masks, mixed = f["triplets/masks"][...], f["triplets/latents"][:, 2]
        first, second = seq_latents[sources[:, 0]], seq_latents[sources[:, 1]]
        assert np.array_equal(mixed, np.where(masks[:, :10] == 0, first, second))
        images = f["images"][...]
    # a mixed frame whose scene differs from both sources' renders differently from both
    differs = [i for i in range(8) if not np.array_equal(mixed[i], seq_latents[sources[i, 0]])
               and not np.array_equal(mixed[i], seq_latents[sources[i, 1]])]
    assert differs
    for i in differs:
        with h5py.File(rendered["seq"]) as s:
            assert not np.array_equal(images[i], s["images"][sources[i, 0]])
            assert not np.array_equal(images[i], s["images"][sources[i, 1]])


@pytest.mark.render
def test_verify_regenerates_the_triplets(rendered: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "val_triplets.h5"
    shutil.copyfile(rendered["triplets"], copy)
    assert verify(copy) == []
    with h5py.File(copy, "r+") as f:
        f["triplets/masks"][3, 4] ^= 1
    assert verify(copy) == ["/triplets/masks differ from what the recorded config and seed generate"]


@pytest.mark.render
def test_triplets_export_as_citris_triplets_npz(rendered: dict[str, Path]) -> None:
    target = export_citris(rendered["triplets"], rendered["folder"] / "citris")
    assert target.name == "val_triplets.npz"
    arrays = np.load(target)
    assert sorted(arrays) == ["imgs", "interventions", "raw_latents", "shape_latents"]
    assert arrays["imgs"].shape == (8, 3, 16, 16, 3) and arrays["interventions"].shape == (8, 12)
    assert arrays["raw_latents"].shape == (8, 3, 10) and arrays["shape_latents"].shape == (8, 3, 2)
    with h5py.File(rendered["triplets"]) as f:
        assert np.array_equal(arrays["imgs"][:, 2], f["images"][...])
        assert np.array_equal(arrays["imgs"][:, 0], f["triplets/first/images"][...])
        assert np.array_equal(arrays["interventions"], f["triplets/masks"][...])
        assert np.array_equal(arrays["shape_latents"][..., 0], citris_classes(f["triplets/classes"][...]))


@pytest.mark.render
def test_triplet_shards_merge_to_the_whole_file(rendered: dict[str, Path], assets_dir: Path, tmp_path: Path) -> None:
    for i in range(2):
        code, output = run_cli("render", str(rendered["seq"]), "--triplets", "8", "--seed", "5", "--split", "val",
                               *RENDER, "--assets", str(assets_dir), "--out", str(tmp_path), "--shard", str(i),
                               "--num-shards", "2")
        assert code == 0, output
    shards = sorted(tmp_path.glob("causal3dident-shard*.h5"))
    assert [verify(s) for s in shards] == [[], []]  # each shard's triplets regenerate from their place
    merged = merge_files(shards, tmp_path / "merged.h5")
    assert_same_data(rendered["triplets"], merged)


@pytest.mark.render
def test_a_triplet_file_renders_again_from_what_it_records(rendered: dict[str, Path], assets_dir: Path,
                                                           tmp_path: Path) -> None:
    again = tmp_path / "again.h5"
    code, output = run_cli("render", str(rendered["triplets"]), *RENDER, "--assets", str(assets_dir),
                           "--out", str(again))
    assert code == 0, output
    assert_same_data(rendered["triplets"], again)


CITRIS_DRIVER = r"""
import json, sys
import numpy as np
from experiments.datasets import Causal3DDataset

root, expected = sys.argv[1], np.load(sys.argv[2])
names = ["pos-x", "pos-y", "pos-z", "rot-alpha", "rot-beta", "rot-spot", "hue-object", "hue-spot", "hue-back",
         "obj-shape"]  # what their training script passes (train_set.full_target_names)
ds = Causal3DDataset(root, split="val", triplet=True, return_latents=True, causal_vars=names)
for i in range(len(ds)):
    imgs, targets, latents = ds[i]
    assert np.array_equal(((imgs.numpy() + 1) / 2 * 255).round().astype(np.uint8),
                          expected["imgs"][i].transpose(0, 3, 1, 2)), i
    assert np.array_equal(targets.numpy(), expected["masks"][i]), i
    assert np.allclose(latents.numpy(), expected["latents"][i]), i
print(json.dumps({"items": len(ds), "names": ds.target_names()}))
"""


@pytest.mark.render
def test_citris_loader_reads_our_triplets(assets_dir: Path, tmp_path: Path) -> None:
    checkout = os.environ.get("C3DI_CITRIS")
    if not checkout or not Path(checkout, "experiments", "datasets.py").is_file():
        pytest.skip("set C3DI_CITRIS to a checkout of phlippe/CITRIS to run its Causal3DDataset on our triplets")
    pytest.importorskip("torch")
    out = tmp_path / "val_triplets.h5"  # 200 frames: CITRIS takes a hue with < 50 distinct values for a category
    code, output = run_cli("render", "--preset", "temporal_causal3dident", "--n", "200", "--triplets", "40", "--seed",
                           "1", *RENDER, "--assets", str(assets_dir), "--out", str(out))
    assert code == 0, output
    arrays = np.load(export_citris(out, tmp_path / "citris"))
    keep = [i for i, c in enumerate(CITRIS_TARGETS) if c not in ("rot_gamma", "material")]
    latents = np.concatenate([arrays["raw_latents"], arrays["shape_latents"][..., :1].astype(np.float32)], axis=-1)
    np.savez(tmp_path / "expected.npz", imgs=arrays["imgs"], masks=arrays["interventions"][:, keep],
             latents=latents[..., keep])
    driver = [sys.executable, "-c", CITRIS_DRIVER, str(tmp_path / "citris"), str(tmp_path / "expected.npz")]
    result = subprocess.run(driver, cwd=checkout, env=dict(os.environ, PYTHONPATH=checkout), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["items"] == 40 and report["names"][-1] == "obj-shape"
