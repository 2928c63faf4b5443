"""Shared fixtures: the mesh folder (C3DI_ASSETS) and small synthetic dataset files."""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Readers cache statistics and neighbour indexes in the user cache folder: a private one for the test run
# (subprocesses of the CLI inherit it), so tests never write to ~/.cache nor read what another run left.
if "C3DI_CACHE_DIR" not in os.environ:
    os.environ["C3DI_CACHE_DIR"] = tempfile.mkdtemp(prefix="c3di-test-cache-")
    atexit.register(shutil.rmtree, os.environ["C3DI_CACHE_DIR"], True)


HAS_BPY = importlib.util.find_spec("bpy") is not None
"""bpy (the render extra) installs on Python 3.11 only; without it the tests that render are skipped."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAS_BPY:
        return
    skip = pytest.mark.skip(reason="bpy is not installed (the render extra; Python 3.11 only): rendering untested")
    for item in items:
        if "render" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def assets_dir() -> Path:
    """The local mesh mirror: $C3DI_ASSETS (CI sets it to ../shared/assets)."""
    env = os.environ.get("C3DI_ASSETS")
    path = Path(env) if env else REPO.parent / "shared" / "assets"
    if not (path / "manifest.json").is_file():
        pytest.skip(f"no mesh mirror at {path}; set C3DI_ASSETS to a folder with manifest.json and meshes/")
    return path


@pytest.fixture(scope="session")
def synthetic_h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64-sample, 32 px synthetic dataset with 'hues' and 'positions' pairs (read-only: do not modify)."""
    from causal3dident.testing import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic") / "train.h5", n=64, resolution=32,
                                  pairs=("hues", "positions"), seed=3)


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    """``small_tmpfs('2m')``: a folder on a freshly mounted tmpfs of that size, to fill a disk for real
    (needs root; skipped where mounting is not permitted). Unmounted at the end of the test."""
    import subprocess

    mounted: list[Path] = []

    def mount(size: str) -> Path:
        folder = tmp_path / f"tmpfs{len(mounted)}"
        folder.mkdir()
        try:
            result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                    capture_output=True, text=True)
            why = result.stderr.strip() if result.returncode else ""
        except OSError as exc:
            why = str(exc)
        if why:
            pytest.skip(f"cannot mount a {size} tmpfs to fill a disk for real ({why}); run as root "
                        f"(CAP_SYS_ADMIN) to test full disks")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "--lazy", str(folder)], capture_output=True)


@pytest.fixture()
def one_torch_thread():
    """Tiny networks and image-sized ops one thread at a time: torch's thread pool only adds waiting, a lot of
    it on a busy 2-core machine (9 s instead of 0.2 s). Use with ``pytestmark = pytest.mark.usefixtures(...)``."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
