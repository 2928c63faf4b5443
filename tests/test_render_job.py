"""Render jobs end to end (real bpy, 32 px): no bpy in the CLI process, determinism, shards + merge,
rendering an existing file, kill -9 and resume, worker recycling."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from causal3dident.cli import main
from causal3dident.generate import merge_files
from causal3dident.store import verify

pytestmark = pytest.mark.render

COMMON = ["--resolution", "32", "--quality", "preview", "--device", "cpu", "--quiet"]
C3DI = str(Path(sys.executable).with_name("c3di"))


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def cli_command(assets_dir: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    """A c3di command line for a subprocess, finding the meshes through C3DI_ASSETS."""
    return [C3DI, *args], dict(os.environ, C3DI_ASSETS=str(assets_dir))


def read_all(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of a file by path (latents, classes, index, images, pairs)."""
    out: dict[str, np.ndarray] = {}
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[...]) if isinstance(obj, h5py.Dataset) else None)
    return out


def processes_using(folder: Path) -> list[int]:
    """Pids of processes with a file open under ``folder`` (Linux /proc)."""
    pids = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd).startswith(str(folder)) for fd in fd_dir.iterdir()):
                pids.append(int(fd_dir.parent.name))
        except OSError:
            continue
    return pids


def kill_9_after_chunks(cmd: list[str], env: dict[str, str], parts: Path, chunks: int = 3,
                        timeout: float = 120) -> int:
    """Start ``cmd``, SIGKILL it once ``chunks`` chunks are in ``parts``, give its workers 10 s to let go of the
    folder, and return how many chunks were written."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while len(list(parts.glob("chunk-*.npz"))) < chunks and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(parts.glob("chunk-*.npz")))
    deadline = time.monotonic() + 10
    while processes_using(parts) and time.monotonic() < deadline:
        time.sleep(0.1)
    return done


def assert_same_data(a: Path, b: Path) -> None:
    da, db = read_all(a), read_all(b)
    assert sorted(da) == sorted(db)
    for name in da:
        assert np.array_equal(da[name], db[name]), name


@pytest.fixture(scope="module")
def job(assets_dir: Path) -> list[str]:
    """Options of the small job most tests render: 6 samples with their 'hues' views, 32 px."""
    return ["--n", "6", "--seed", "5", "--pairs", "hues", *COMMON, "--assets", str(assets_dir)]


@pytest.fixture(scope="module")
def reference(job: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted one-machine render, made in this very process through the CLI."""
    out = tmp_path_factory.mktemp("reference") / "ref.h5"
    code, output = run_cli("render", *job, "--out", str(out))
    assert code == 0, output
    assert "bpy" not in sys.modules  # the CLI process never imports Blender
    return out


def test_reference_is_complete(reference: Path) -> None:
    assert verify(reference) == []
    data = read_all(reference)
    assert data["images"].shape == (6, 32, 32, 3) and data["pairs/hues/images"].shape == (6, 32, 32, 3)
    assert data["images"].std() > 5 and not np.array_equal(data["images"], data["pairs/hues/images"])
    assert not (reference.parent / "ref.h5.parts").exists()
    with h5py.File(reference) as f:
        assert f.attrs["num_rendered"] == 6 and f.attrs["blender_version"].startswith("5.0")
        assert '"quality": "preview"' in f.attrs["render_settings"]
        assert "stats" in f.attrs  # sealed at assembly, with the pixels' checksums
        for name in ("images", "pairs/hues/images"):
            assert f[f"checksums/{name}"][...].tolist() == [zlib.crc32(im.tobytes()) for im in data[name]]


def test_deterministic_across_processes_workers_and_chunks(reference: Path, job: list[str], assets_dir: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "again.h5"
    cmd, env = cli_command(assets_dir, "render", *job, "--out", str(out), "--workers", "2", "--chunk-size", "1")
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=240)
    assert_same_data(reference, out)


@pytest.fixture(scope="module")
def shard_files(job: list[str], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The reference job rendered as two shards (as two machines would)."""
    folder = tmp_path_factory.mktemp("shards")
    for i in range(2):
        code, output = run_cli("render", *job, "--out", str(folder), "--shard", str(i), "--num-shards", "2")
        assert code == 0, output
    return sorted(folder.glob("causal3dident-shard*.h5"))


def test_shards_merge_to_the_one_machine_file(reference: Path, shard_files: list[Path], tmp_path: Path) -> None:
    assert [s.name for s in shard_files] == ["causal3dident-shard00000-of-00002.h5",
                                             "causal3dident-shard00001-of-00002.h5"]
    merged = merge_files(shard_files[::-1], tmp_path / "merged.h5")
    assert_same_data(reference, merged)


def test_merged_shards_verify(shard_files: list[Path], tmp_path: Path) -> None:
    assert verify(merge_files(shard_files, tmp_path / "merged.h5")) == []


def test_lz4_render_and_merge_hold_the_same_pixels(reference: Path, job: list[str], tmp_path: Path) -> None:
    from causal3dident.codecs import codec_of

    for i in range(2):
        code, output = run_cli("render", *job, "--out", str(tmp_path), "--shard", str(i), "--num-shards", "2",
                               "--compression", "lz4")
        assert code == 0, output
    merged = merge_files(sorted(tmp_path.glob("causal3dident-shard*.h5")), tmp_path / "merged.h5")
    assert_same_data(reference, merged)
    with h5py.File(merged) as f:
        assert codec_of(f["images"]) == "lz4" and codec_of(f["pairs/hues/images"]) == "lz4"
    assert verify(merged) == []


def test_render_existing_latents_file(reference: Path, assets_dir: Path, tmp_path: Path) -> None:
    latents = tmp_path / "z.h5"
    assert run_cli("latents", "--n", "6", "--seed", "5", "--pairs", "hues", "--out", str(latents))[0] == 0
    out = tmp_path / "from_file.h5"
    code, output = run_cli("render", str(latents), *COMMON, "--assets", str(assets_dir), "--out", str(out))
    assert code == 0, output
    assert_same_data(reference, out)
    code, output = run_cli("render", str(latents), "--pairs", "rotations", "--out", str(tmp_path / "x.h5"))
    assert code == 2 and "no pairs rotations" in output


def test_user_errors_exit_2_in_one_line(reference: Path, job: list[str], tmp_path: Path) -> None:
    for args, message in [(["render", "--out", str(tmp_path / "a.h5")], "give --n"),
                          (["render", *job, "--out", str(reference)], "already exists"),
                          (["render", *job, "--device", "cuda", "--out", str(tmp_path / "b.h5")], "no CUDA GPU")]:
        code, output = run_cli(*args)
        assert code == 2 and message in output and len(output.strip().splitlines()) == 1, output


def test_kill_9_then_resume_gives_the_uninterrupted_file(assets_dir: Path, tmp_path: Path) -> None:
    job = ["render", "--n", "40", "--seed", "2", "--pairs", "positions", "--chunk-size", "2", *COMMON]
    whole = tmp_path / "whole.h5"
    cmd, env = cli_command(assets_dir, *job, "--out", str(whole))
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=240)

    out = tmp_path / "killed.h5"
    parts = tmp_path / "killed.h5.parts"
    cmd, env = cli_command(assets_dir, *job, "--out", str(out))
    done = kill_9_after_chunks(cmd, env, parts)
    assert 3 <= done < 20 and not out.exists(), f"{done} of 20 chunks written before the kill"
    assert processes_using(parts) == [], "render workers outlived the killed CLI"

    code, output = run_cli(*job, "--resolution", "48", "--assets", str(assets_dir), "--out", str(out))
    # other settings than the killed job's: refused
    assert code == 2 and "unfinished render job" in output and "render_settings" in output
    # a render setting changed (as when a preset changes between versions): named, with the --set that finishes it
    code, output = run_cli(*job, "--set", "sampling_pattern=BLUE_NOISE", "--assets", str(assets_dir), "--out", str(out))
    assert code == 2 and len(output.strip().splitlines()) == 1, output
    assert ('(differs in: render_settings (sampling_pattern is "TABULATED_SOBOL" in the job, "BLUE_NOISE" here))'
            in output
            and "(here: add --set sampling_pattern=TABULATED_SOBOL)" in output), output

    cmd, env = cli_command(assets_dir, *job, "--out", str(out))
    result = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=240)
    assert "from an earlier run" in result.stdout
    assert not parts.exists()
    assert_same_data(whole, out)


def test_workers_are_recycled_without_changing_pixels(reference: Path, assets_dir: Path) -> None:
    from causal3dident.render import assets
    from causal3dident.render.config import render_config
    from causal3dident.render.devices import CPU
    from causal3dident.render.worker import Task, WorkerPool, WorkerSpec

    data = read_all(reference)
    spec = WorkerSpec(render_config("preview", 32), tuple(assets.resolve(assets_dir)), CPU, threads=1, max_images=4)
    tasks = [Task(key=i, classes=data["classes"][i:i + 1], streams={"images": data["latents"][i:i + 1]})
             for i in range(6)]
    got: dict[int, np.ndarray] = {}
    pool = WorkerPool([spec])
    starts = []
    original = pool._start
    pool._start = lambda i: (starts.append(i), original(i))  # count worker starts
    pool.run(tasks, lambda: None, lambda task, images: got.__setitem__(task.key, images["images"][0]))
    assert len(starts) == 2  # 6 images at most 4 per worker
    assert np.array_equal(np.stack([got[i] for i in range(6)]), data["images"])


def test_a_worker_forgets_bpy_script_folders_its_parent_passed_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """A parent that imported bpy has bpy/<version>/scripts/modules first on sys.path; spawn copies it, and that
    folder's pure-Python bpy package would shadow the real one in the worker ("No module named '_bpy'")."""
    import sys

    from causal3dident.render import worker

    site = "/env/lib/python3.11/site-packages"
    monkeypatch.setattr(sys, "path", [f"{site}/bpy/5.0/scripts/startup", f"{site}/bpy/5.0/scripts/modules", "/repo",
                                      site, f"{site}/bpy/5.0/scripts/addons_core"])
    worker._drop_bpy_script_paths()
    assert sys.path == ["/repo", site]
