"""Sequence files (causal3dident.temporal_store) from ``c3di latents``, and ``c3di export --format citris``.

With their code: ``C3DI_CITRIS`` (a checkout of phlippe/CITRIS) runs its ``experiments/datasets.py``
(``Causal3DDataset``), unmodified, on our export in a subprocess. Their code is never copied here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from causal3dident.checksums import seal
from causal3dident.cli import main
from causal3dident.citris_export import CITRIS_CLASSES, export_citris
from causal3dident.errors import ConfigError
from causal3dident.latents import CLASS_NAMES
from causal3dident.store import create_image_dataset, open_dataset, verify
from causal3dident.temporal import load_temporal
from causal3dident.testing import draw_images

C3DI = [sys.executable, "-c", "from causal3dident.cli import main; main()"]


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def c3di(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*C3DI, *args], capture_output=True, text=True, timeout=300)


def sequence_file(path: Path, n: int, seed: int, preset: str = "temporal_causal3dident", images: bool = False) -> Path:
    result = run("latents", "--preset", preset, "--n", str(n), "--seed", str(seed), "--out", str(path))
    assert result.exit_code == 0, result.output
    if images:  # synthetic pixels (causal3dident.testing): the export's format, not the renderer, is tested here
        with open_dataset(path, "r+") as f:
            create_image_dataset(f, "images", n, 16, 16)[...] = draw_images(f["latents"][...], f["classes"][...], 16)
            f.attrs["num_rendered"] = n
            seal(f, source="synthetic images")
    return path


@pytest.mark.parametrize("preset", ["temporal_causal3dident", "instantaneous_temporal_causal3dident"])
def test_latents_writes_the_sequence_and_verify_regenerates_it(preset, tmp_path):
    out = tmp_path / "seq.h5"
    result = c3di("latents", "--preset", preset, "--n", "300", "--seed", "4", "--out", str(out))
    assert result.returncode == 0, result.stderr
    model = load_temporal(preset)
    frames = model.sample(4, 0, 300)
    with h5py.File(out) as f:
        np.testing.assert_array_equal(f["sequence/latents"][...], frames.latents)
        np.testing.assert_array_equal(f["sequence/targets"][...], frames.targets)
        assert [x.decode() if isinstance(x, bytes) else x for x in f["sequence/targets"].attrs["names"]] == \
            list(model.target_names)
        names = [CLASS_NAMES[c] for c in f["classes"][...]]
        assert names == [model.class_names[c] for c in frames.classes]
        z = f["latents"][...]
        assert z.dtype == np.float32 and (np.abs(z) <= 1).all()
        np.testing.assert_allclose(z[:, 9], frames.latents[:, 9] / np.pi - 1, atol=1e-6)  # hue_bg: [0, 2pi) -> [-1, 1)
        np.testing.assert_allclose(z[:, 0], frames.latents[:, 0] / 2, atol=1e-6)  # pos_x: [-2, 2] -> [-1, 1]
        assert json.loads(f.attrs["config"])["temporal"]["name"] == preset
    assert verify(out) == []
    with h5py.File(out, "r+") as f:
        f["sequence/targets"][5, 7] ^= 1
    assert any("sequence" in p for p in verify(out))


def test_sequence_options_that_do_not_apply_are_one_line(tmp_path):
    out = tmp_path / "seq.h5"
    result = c3di("latents", "--preset", "temporal_causal3dident", "--n", "10", "--out", str(out), "--pairs", "hues")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and "--pairs" in result.stderr
    assert not out.exists()
    result = c3di("render", "--preset", "temporal_causal3dident", "--n", "4", "--out", str(out), "--resolution", "32",
                  "--intervene", "hue_bg=0")
    assert result.returncode == 2 and "samples a sequence" in result.stderr and "--intervene" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_citris_export_has_their_keys_order_and_classes(tmp_path):
    path = sequence_file(tmp_path / "train.h5", 200, 8, images=True)
    target = export_citris(path, tmp_path / "citris")
    assert target == tmp_path / "citris" / "train.npz"
    arrays = np.load(target)
    assert sorted(arrays.files) == ["imgs", "interventions", "raw_latents", "shape_latents"]
    with h5py.File(path) as f:
        images, classes = f["images"][...], f["classes"][...]
        latents, targets = f["sequence/latents"][...], f["sequence/targets"][...]
    np.testing.assert_array_equal(arrays["imgs"], images)
    assert arrays["interventions"].shape == (199, 12)
    np.testing.assert_array_equal(arrays["interventions"], targets[1:])
    assert arrays["raw_latents"].dtype == np.float32
    np.testing.assert_array_equal(arrays["raw_latents"], latents.astype(np.float32))
    assert arrays["shape_latents"].shape == (200, 2) and not arrays["shape_latents"][:, 1].any()
    for ours, theirs in zip(classes, arrays["shape_latents"][:, 0]):
        assert CITRIS_CLASSES[theirs] == CLASS_NAMES[ours]
    assert CITRIS_CLASSES.index("hare") == 2 and CITRIS_CLASSES.index("armadillo") == 1  # their bunny, 2nd
    # the CLI, into another split name; an existing file is not replaced without --overwrite
    result = c3di("export", str(path), str(tmp_path / "citris"), "--format", "citris", "--split", "val_indep")
    assert result.returncode == 0, result.stderr
    assert np.array_equal(np.load(tmp_path / "citris" / "val_indep.npz")["imgs"], images)
    result = c3di("export", str(path), str(tmp_path / "citris"), "--format", "citris", "--split", "val_indep")
    assert result.returncode == 2 and "--overwrite" in result.stderr


def test_citris_export_refuses_files_without_images_or_sequence(tmp_path):
    path = sequence_file(tmp_path / "train.h5", 20, 1)
    result = c3di("export", str(path), str(tmp_path / "out"), "--format", "citris")
    assert result.returncode == 2 and "render" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    plain = tmp_path / "plain.h5"
    assert run("latents", "--n", "20", "--out", str(plain)).exit_code == 0
    result = c3di("export", str(plain), str(tmp_path / "out"), "--format", "citris")
    assert result.returncode == 2 and "no sequence" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.render
def test_a_rendered_sequence_exports(tmp_path):
    """``c3di render seq.h5`` keeps /latents and /classes only: the export regenerates the sequence (and checks it)."""
    pytest.importorskip("bpy")
    seq = sequence_file(tmp_path / "seq.h5", 3, 2)
    rendered = tmp_path / "test_indep.h5"
    result = c3di("render", str(seq), "--out", str(rendered), "--resolution", "32", "--quality", "preview",
                  "--device", "cpu", "--quiet")
    assert result.returncode == 0, result.stderr
    assert verify(rendered) == []
    target = export_citris(rendered, tmp_path / "citris", split="test_indep")
    arrays = np.load(target)
    with h5py.File(seq) as f:
        np.testing.assert_array_equal(arrays["raw_latents"], f["sequence/latents"][...].astype(np.float32))
        np.testing.assert_array_equal(arrays["interventions"], f["sequence/targets"][1:])
    assert arrays["imgs"].shape == (3, 32, 32, 3) and arrays["imgs"].std() > 0


CITRIS_DRIVER = r"""
import json, sys
import numpy as np
from experiments.datasets import Causal3DDataset
root, expected = sys.argv[1], np.load(sys.argv[2])
imgs, targets, latents = expected["imgs"], expected["interventions"], expected["latents"]
ds = Causal3DDataset(root, split="train", seq_len=2, coarse_vars=True, return_latents=True)
names = ds.target_names()
assert len(ds) == len(imgs) - 1, (len(ds), len(imgs))
keep = [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]  # their columns left: rot-gamma and obj-material never change
for i in range(len(ds)):
    x, t, z = ds[i]
    want = np.transpose(imgs[i:i + 2], (0, 3, 1, 2)).astype(np.float32) / 255.0 * 2.0 - 1.0
    assert np.array_equal(x.numpy(), want), i
    row = targets[i]
    coarse = [row[0:3].any(), row[3:6].any(), row[6], row[7], row[8], row[9], row[10]]
    assert np.array_equal(t.numpy()[0], np.array(coarse, dtype=t.numpy().dtype)), (i, t, row)
    assert np.allclose(z.numpy(), latents[i:i + 2][:, keep]), i
single = Causal3DDataset(root, split="train", single_image=True, return_latents=True)
assert len(single) == len(imgs)
print(json.dumps({"items": len(ds), "names": names}))
"""


def test_citris_loader_reads_our_export(tmp_path):
    checkout = os.environ.get("C3DI_CITRIS")
    if not checkout or not Path(checkout, "experiments", "datasets.py").is_file():
        pytest.skip("set C3DI_CITRIS to a checkout of phlippe/CITRIS to run its Causal3DDataset on our export")
    pytest.importorskip("torch")
    path = sequence_file(tmp_path / "train.h5", 300, 12, images=True)
    export_citris(path, tmp_path / "citris")
    with h5py.File(path) as f:
        latents = np.concatenate([f["sequence/latents"][...].astype(np.float32),
                                  np.load(tmp_path / "citris" / "train.npz")["shape_latents"][:, :1]], axis=1)
        expected = {"imgs": f["images"][...], "interventions": f["sequence/targets"][1:], "latents": latents}
    np.savez(tmp_path / "expected.npz", **expected)
    env = dict(os.environ, PYTHONPATH=checkout)
    result = subprocess.run([sys.executable, "-c", CITRIS_DRIVER, str(tmp_path / "citris"),
                             str(tmp_path / "expected.npz")], cwd=checkout, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"items": 299, "names": ["pos", "rot", "rot-spot", "hue-object", "hue-spot", "hue-back",
                                              "obj-shape"]}


def test_sequence_dataset_items_match_the_citris_export(tmp_path):
    """Our loader's windows equal CITRIS's sequence mode on our export: imgs[i:i+L], targets[i:i+L-1], latents."""
    torch = pytest.importorskip("torch")
    from causal3dident.sequence_dataset import TemporalCausal3DIdent

    path = sequence_file(tmp_path / "train.h5", 40, 3, images=True)
    arrays = np.load(export_citris(path, tmp_path / "citris"))
    ds = TemporalCausal3DIdent(path, seq_len=3)
    assert len(ds) == 38 and ds.target_names[-2:] == ["class", "material"]
    for i in range(len(ds)):
        frames, latents, targets = ds[i]
        assert frames.dtype == torch.uint8 and frames.shape == (3, 3, 16, 16)
        np.testing.assert_array_equal(frames.permute(0, 2, 3, 1).numpy(), arrays["imgs"][i:i + 3])
        np.testing.assert_array_equal(latents.numpy(), arrays["raw_latents"][i:i + 3])
        np.testing.assert_array_equal(targets.numpy(), arrays["interventions"][i:i + 2])
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert [tuple(x.shape) for x in batch] == [(4, 3, 3, 16, 16), (4, 3, 10), (4, 2, 12)]
    pil = TemporalCausal3DIdent(tmp_path, split="train", seq_len=1, image_format="pil")
    assert len(pil) == 40 and np.array_equal(np.asarray(pil[5][0][0]), arrays["imgs"][5]) and pil[5][2].shape == (0, 12)
    with pytest.raises(ConfigError, match="seq_len"):
        TemporalCausal3DIdent(path, seq_len=41)
