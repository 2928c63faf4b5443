"""Our exports in the releases' layouts, as the original authors' loaders read them.

Always: the layout facts read from their code (file names, zero padding, .npy names, shapes, dtypes, order).
With their code: ``C3DI_CLICA`` (a checkout of brendel-group/cl-ica) runs its ``datasets/threedident_dataset.py``,
and ``C3DI_SSL_IDENTIFIABILITY`` (ysharma1126/ssl_identifiability) its ``datasets/clevr_dataset.py``, unmodified,
on our exports in a subprocess (both import faiss; skipped without it). Their code is never copied here.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from causal3dident import Causal3DIdent
from causal3dident.convert import export
from causal3dident.testing import make_synthetic_dataset


def _contents(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with h5py.File(path) as f:
        return f["latents"][...], f["classes"][...], f["images"][...]


def _npy_header(path: Path) -> dict:
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(fh)
    return {"shape": shape, "fortran_order": fortran, "dtype": dtype}


@pytest.mark.parametrize("n, digits", [(10, 1), (12, 2), (100, 2)])
def test_3dident_export_has_cl_icas_layout(n: int, digits: int, tmp_path: Path) -> None:
    """cl-ica's ThreeDIdentDataset: ``root/raw_latents.npy`` and ``root/images/{str(i).zfill(ceil(log10 n))}.png``;
    faiss indexes the raw latents as they are, so float32 and C order."""
    path = make_synthetic_dataset(tmp_path / "train.h5", n=n, resolution=16, pairs=(), preset="3dident", seed=n)
    latents, _, images = _contents(path)
    root = export(path, tmp_path / "release", fmt="3dident")
    assert root == tmp_path / "release" / "trainset" and sorted(p.name for p in root.iterdir()) == \
        ["images", "latents.npy", "raw_latents.npy"]
    assert digits == math.ceil(math.log10(n))
    assert sorted(p.name for p in (root / "images").iterdir()) == sorted(f"{str(i).zfill(digits)}.png" for i in range(n))
    assert _npy_header(root / "raw_latents.npy") == {"shape": (n, 10), "fortran_order": False,
                                                     "dtype": np.dtype("<f4")}
    assert np.array_equal(np.load(root / "raw_latents.npy"), latents)  # the file's order
    scale = np.array([3, 3, 3] + [np.pi / 2] * 7, dtype=np.float32)  # cl-ica's box latents: positions x3, rest x pi/2
    np.testing.assert_array_equal(np.load(root / "latents.npy"), latents * scale)
    for i in (0, n - 1):
        assert np.array_equal(np.asarray(Image.open(root / "images" / f"{str(i).zfill(digits)}.png")), images[i])
    ds = Causal3DIdent(tmp_path / "release")  # and our loader reads it back
    assert len(ds) == n and np.array_equal(np.asarray(ds[n - 1][0]), images[n - 1])


def test_3dident_export_refuses_other_classes(synthetic_h5: Path, tmp_path: Path) -> None:
    from causal3dident.errors import ConfigError

    with pytest.raises(ConfigError, match="holds other classes than the teapot .* --preset 3dident"):
        export(synthetic_h5, tmp_path / "x", fmt="3dident")
    assert not (tmp_path / "x").exists()


def test_causal3dident_export_has_ssl_identifiabilitys_layout(tmp_path: Path) -> None:
    """ssl_identifiability's CausalDataset: ``root/raw_latents_{c}.npy`` and
    ``root/images_{c}/{str(j).zfill(ceil(log10 n_c))}.png``, length 7 x n_0, item i = class i // n_0, row i % n_0."""
    path = make_synthetic_dataset(tmp_path / "test.h5", n=84, resolution=16, pairs=(), seed=4, balanced_classes=True)
    latents, classes, images = _contents(path)
    root = export(path, tmp_path / "release")
    assert root.name == "testset"  # the split the file records (its name)
    expected = {f"{kind}_{c}{ext}" for c in range(7) for kind, ext in (("images", ""), ("raw_latents", ".npy"),
                                                                       ("latents", ".npy"))}
    assert {p.name for p in root.iterdir()} == expected
    n0 = len(np.load(root / "raw_latents_0.npy"))
    assert n0 == 12 and 7 * n0 == len(latents)  # their __len__
    for item in range(7 * n0):  # their __getitem__, with their path rule
        c, j = item // n0, item % n0
        raw = np.load(root / f"raw_latents_{c}.npy")
        assert _npy_header(root / f"raw_latents_{c}.npy") == {"shape": (n0, 10), "fortran_order": False,
                                                              "dtype": np.dtype("<f4")}
        name = f"{str(j).zfill(int(np.ceil(np.log10(len(raw)))))}.png"
        row = np.flatnonzero(classes == c)[j]
        assert np.array_equal(raw[j], latents[row])
        assert np.array_equal(np.asarray(Image.open(root / f"images_{c}" / name)), images[row])


# -- their code, unmodified ---------------------------------------------------------------------------------------
THREEDIDENT_DRIVER = """
import json, sys
import numpy as np
import spaces, latent_spaces
from datasets.threedident_dataset import SequentialThreeDIdentDataset, ThreeDIdentDataset

root, expected = sys.argv[1], np.load(sys.argv[2])
seq = SequentialThreeDIdentDataset(root)
checked = 0
for i in range(len(seq)):
    z, x = seq[i]
    assert np.array_equal(z, expected["latents"][i]), i
    assert np.array_equal(np.asarray(x), expected["images"][i]), i
    checked += 1
space = latent_spaces.LatentSpace(spaces.NBoxSpace(10), lambda s, size, device: s.uniform(size, device=device),
                                  lambda s, z, size, device="cpu": s.normal(z, std=1.0, size=size, device=device))
pairs = ThreeDIdentDataset(root, latent_space=space)
for _ in range(8):
    (z, z_tilde), (x, x_tilde) = pairs[0]
    i, k = (int(np.flatnonzero((expected["latents"] == v).all(axis=1))[0]) for v in (z, z_tilde))
    assert i != k and np.array_equal(np.asarray(x), expected["images"][i])
    assert np.array_equal(np.asarray(x_tilde), expected["images"][k])
print(json.dumps({"items": checked, "len": len(seq)}))
"""

CAUSAL_DRIVER = """
import json, sys
import numpy as np
from datasets.clevr_dataset import CausalDataset

root, expected = sys.argv[1], np.load(sys.argv[2])
ds = CausalDataset(classes=np.arange(7), root=root, approximate_mode=False)
n0 = int((expected["classes"] == 0).sum())
checked = 0
for item in range(len(ds)):
    c, z, x = ds[item]
    row = np.flatnonzero(expected["classes"] == item // n0)[item % n0]  # class by class, in the file's order
    assert c == expected["classes"][row] and np.array_equal(z, expected["latents"][row]), item
    assert np.array_equal(np.asarray(x), expected["images"][row]), item
    checked += 1
pairs = CausalDataset(classes=np.arange(7), root=root, approximate_mode=False, biaugment=True, change_all_hues=True)
for item in (0, len(pairs) - 1):
    c, (z, z_tilde), (x, x_tilde) = pairs[item]
    rows = np.flatnonzero(expected["classes"] == c)
    k = int(np.flatnonzero((expected["latents"][rows] == z_tilde).all(axis=1))[0])
    assert not np.array_equal(z, z_tilde) and np.array_equal(np.asarray(x_tilde), expected["images"][rows[k]])
print(json.dumps({"items": checked, "len": len(ds)}))
"""


def run_their_loader(env_var: str, driver: str, root: Path, h5: Path, tmp_path: Path) -> dict:
    """Run ``driver`` with the checkout ``$env_var`` first on the path; it compares their items with ``h5``'s."""
    checkout = os.environ.get(env_var)
    if not checkout or not Path(checkout, "datasets").is_dir():
        pytest.skip(f"set {env_var} to a checkout of the original code to run its loader on our export")
    pytest.importorskip("faiss", reason="the original loaders import faiss (pip install faiss-cpu)")
    latents, classes, images = _contents(h5)
    expected = tmp_path / "expected.npz"
    np.savez(expected, latents=latents, classes=classes, images=images)
    env = dict(os.environ, PYTHONPATH=checkout)
    result = subprocess.run([sys.executable, "-c", driver, str(root), str(expected)], cwd=checkout, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_cl_icas_loader_reads_our_3dident_export(tmp_path: Path) -> None:
    path = make_synthetic_dataset(tmp_path / "train.h5", n=30, resolution=16, pairs=(), preset="3dident", seed=6)
    root = export(path, tmp_path / "release", fmt="3dident")
    assert run_their_loader("C3DI_CLICA", THREEDIDENT_DRIVER, root, path, tmp_path) == {"items": 30, "len": 30}


def test_ssl_identifiabilitys_loader_reads_our_balanced_export(tmp_path: Path) -> None:
    path = make_synthetic_dataset(tmp_path / "train.h5", n=42, resolution=16, pairs=(), seed=7, balanced_classes=True)
    root = export(path, tmp_path / "release")
    assert run_their_loader("C3DI_SSL_IDENTIFIABILITY", CAUSAL_DRIVER, root, path, tmp_path) == {"items": 42,
                                                                                              "len": 42}


def test_ssl_identifiabilitys_loader_skips_samples_of_an_unbalanced_export(synthetic_h5: Path, tmp_path: Path) -> None:
    """Why the export refuses unbalanced files: their length is 7 x class 0's count, here 7 x 5 of 64 samples
    (29 never seen; with class 0 the largest, indexing past a smaller class raises IndexError instead)."""
    root = export(synthetic_h5, tmp_path / "release", unbalanced="keep")
    assert run_their_loader("C3DI_SSL_IDENTIFIABILITY", CAUSAL_DRIVER, root, synthetic_h5, tmp_path) == {"items": 35,
                                                                                                      "len": 35}
