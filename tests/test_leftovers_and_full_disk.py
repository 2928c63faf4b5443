"""No hidden leftovers, and full disks in one line.

Real kills (SIGKILL of a ``c3di`` subprocess while it writes) during a render job's assembly, ``convert``
and ``repack``: the rerun removes the killed run's temporary and writes the right file. Temporaries of
live writers are never touched. Full disks are real small tmpfs mounts: ``c3di latents`` and the
assembly refuse before writing when the space is short, and when a write still meets the full disk
(the pre-check switched off in the subprocess) the error is one line, not a crash; the old output and
the work folder stay, and no temporary is left.

The render jobs here assemble chunks of seeded noise made by a stand-in backend (no Blender): what is
tested is the assembly, which is the same for every backend.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from causal3dident.generate import build_config, write_latents_file
from causal3dident.render import job as job_mod
from causal3dident.render.config import render_config
from causal3dident.render.devices import CPU
from causal3dident.store import create_image_dataset, open_dataset

C3DI = str(Path(sys.executable).with_name("c3di"))
NO_PRECHECK = """
import sys
from causal3dident import diskspace
diskspace.check_free_space = lambda path, needed: None  # skip the pre-check: let the write meet the full disk
from causal3dident.cli import main
sys.argv = ["c3di", *sys.argv[1:]]
main()
"""


def c3di(*args: object, precheck: bool = True, assets: Path | None = None) -> subprocess.Popen[str]:
    """``c3di ARGS`` as a subprocess; ``precheck=False``: with the free-space pre-check switched off."""
    env = dict(os.environ) if assets is None else dict(os.environ, C3DI_ASSETS=str(assets))
    cmd = [C3DI] if precheck else [sys.executable, "-c", NO_PRECHECK]
    return subprocess.Popen([*cmd, *map(str, args)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=240)
    return proc.returncode, out, err


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp-*"))


def kill_9_while_writing(proc: subprocess.Popen[str], out: Path, min_bytes: int) -> Path:
    """SIGKILL ``proc`` once its temporary of ``out`` holds ``min_bytes``; returns that temporary."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for tmp in out.parent.glob(f".{out.name}.tmp-*"):
            try:
                size = tmp.stat().st_size
            except FileNotFoundError:
                continue
            if size >= min_bytes:
                os.kill(proc.pid, signal.SIGKILL)
                proc.communicate()
                return tmp
        assert proc.poll() is None, f"{proc.args} ended before it could be killed mid-write: {proc.communicate()}"
        time.sleep(0.005)
    proc.kill()
    raise AssertionError(f"{proc.args} did not write {out} in time")


def single_line_error(code: int, err: str, *message: str) -> None:
    assert code == 2, f"exit code {code}: {err}"
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for part in message:
        assert part in err, err


# -- a render job's assembly ------------------------------------------------------------------------------
def noise(chunk: int, stream: int, rows: int, side: int) -> np.ndarray:
    """The stand-in 'render' of a chunk: seeded noise, which no codec shrinks (files as large as their pixels)."""
    return np.random.default_rng([chunk, stream]).integers(0, 256, (rows, side, side, 3), dtype=np.uint8)


class NoiseBackend:
    """A ``RenderBackend`` drawing ``noise``; ``stop``: then stop the job as Ctrl-C would (chunks stay in .parts)."""

    def __init__(self, stop: bool) -> None:
        self.stop = stop

    def render(self, tasks, context, on_image, on_done):  # type: ignore[no-untyped-def]
        side = context.config.resolution
        for task in tasks:
            on_done(task, {name: noise(task.key, k, len(task.classes), side) for k, name in enumerate(task.streams)})
            on_image(task.num_images)
        if self.stop:
            raise KeyboardInterrupt
        return 1


def noise_job(n: int, side: int, chunk: int) -> list[str]:
    """The ``c3di render`` options of a job whose chunks ``rendered_chunks`` made."""
    return ["--n", str(n), "--seed", "3", "--resolution", str(side), "--quality", "preview", "--device", "cpu",
            "--quiet", "--chunk-size", str(chunk)]


def rendered_chunks(out: Path, assets: Path, n: int, side: int, chunk: int) -> Path:
    """Every chunk of ``noise_job(n, side, chunk)`` in OUT.parts/, as a job killed before assembling leaves them."""
    inp = job_mod.sampled_input("causal3dident", n, 3)
    with pytest.raises(KeyboardInterrupt):
        job_mod.run_job(inp, out, render_config("preview", side), [CPU], assets=assets, chunk_size=chunk,
                        progress=False, backend=NoiseBackend(stop=True))
    parts = out.with_name(out.name + ".parts")
    assert len(list(parts.glob("chunk-*.npz"))) == -(-n // chunk)
    return parts


def expected_images(n: int, side: int, chunk: int) -> np.ndarray:
    return np.concatenate([noise(c, 0, min(chunk, n - a), side) for c, a in enumerate(range(0, n, chunk))])


@pytest.mark.render
def test_kill_9_mid_assembly_then_the_rerun_removes_the_temporary(assets_dir: Path, tmp_path: Path) -> None:
    n, side, chunk = 1000, 64, 100
    out = tmp_path / "out.h5"
    parts = rendered_chunks(out, assets_dir, n, side, chunk)
    tmp = kill_9_while_writing(c3di("render", *noise_job(n, side, chunk), "--out", out, assets=assets_dir), out,
                               min_bytes=2 * 2**20)
    assert tmp.exists() and not out.exists()  # half a dataset, left by the kill
    code, _, err = finish(c3di("render", *noise_job(n, side, chunk), "--out", out, assets=assets_dir))
    assert code == 0, err
    assert temporaries(tmp_path) == [] and not parts.exists()
    with h5py.File(out) as f:
        assert np.array_equal(f["images"][...], expected_images(n, side, chunk))


def test_many_unusable_chunks_are_named_in_a_few_lines(assets_dir: Path, tmp_path: Path, capsys) -> None:
    """Chunks of an older causal3dident (no fingerprint), e.g. after an upgrade mid-job: five are named,
    the rest counted; all are rendered again."""
    n, side, chunk = 16, 8, 2
    out = tmp_path / "out.h5"
    parts = rendered_chunks(out, assets_dir, n, side, chunk)
    for path in parts.glob("chunk-*.npz"):
        with np.load(path) as data:
            np.savez_compressed(path, images=data["images"])  # the same pixels, without the job's stamp
    capsys.readouterr()
    job_mod.run_job(job_mod.sampled_input("causal3dident", n, 3), out, render_config("preview", side), [CPU],
                    assets=assets_dir, chunk_size=chunk, progress=False, backend=NoiseBackend(stop=False))
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.split(": ")[1] for line in lines[:5]] == ["it carries no job fingerprint (written by an older "
                                                           "causal3dident); rendering it again"] * 5, lines
    assert lines[5:] == [f"discarded 3 more chunks in {parts} that this job cannot use; rendering them again"]
    with h5py.File(out) as f:
        assert np.array_equal(f["images"][...], expected_images(n, side, chunk))


@pytest.mark.render
def test_assembly_on_a_full_disk_is_one_line_and_keeps_everything(assets_dir: Path, small_tmpfs) -> None:
    disk = small_tmpfs("3m")
    n, side, chunk = 200, 32, 50
    out = disk / "out.h5"
    parts = rendered_chunks(out, assets_dir, n, side, chunk)
    out.write_bytes(b"an older dataset that --overwrite replaces only when the new one is complete")
    old = out.read_bytes()
    chunks = {p.name: p.read_bytes() for p in [*parts.glob("chunk-*.npz"), parts / "job.json"]}
    filler = disk / "filler"
    filler.write_bytes(b"\0" * (os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize - 300 * 1024))
    job = ["render", *noise_job(n, side, chunk), "--out", out, "--overwrite"]

    code, _, err = finish(c3di(*job, assets=assets_dir))  # refused before writing
    single_line_error(code, err, f"{out} needs about", " but ", " free; free some space there")
    code, _, err = finish(c3di(*job, precheck=False, assets=assets_dir))  # the write meets the full disk
    single_line_error(code, err, f"no space left on device writing {out}: it needs about", " free; free some")
    for _ in range(2):
        assert out.read_bytes() == old
        assert temporaries(disk) == []
        assert {p.name: p.read_bytes() for p in [*parts.glob("chunk-*.npz"), parts / "job.json"]} == chunks

    filler.unlink()
    code, _, err = finish(c3di(*job, assets=assets_dir))
    assert code == 0, err
    with h5py.File(out) as f:
        assert np.array_equal(f["images"][...], expected_images(n, side, chunk))
    assert sorted(p.name for p in disk.iterdir()) == ["out.h5"]


# -- convert and repack -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def noise_h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 600-sample, 64 px dataset file of noise images (gzip)."""
    n, side = 600, 64
    path = write_latents_file(tmp_path_factory.mktemp("noise") / "train.h5", build_config("causal3dident", n), 0)
    with open_dataset(path, "r+") as f:
        create_image_dataset(f, "images", n, side, side)[...] = noise(0, 0, n, side)
        f.attrs["num_rendered"] = n
    return path


def test_kill_9_mid_repack_then_the_rerun_removes_the_temporary(noise_h5: Path, tmp_path: Path) -> None:
    out = tmp_path / "lz4.h5"
    tmp = kill_9_while_writing(c3di("repack", noise_h5, out, "--compression", "lz4"), out, min_bytes=2**20)
    assert tmp.exists() and not out.exists()
    code, _, err = finish(c3di("repack", noise_h5, out, "--compression", "lz4"))
    assert code == 0, err
    assert temporaries(tmp_path) == []
    with h5py.File(noise_h5) as a, h5py.File(out) as b:
        assert np.array_equal(a["images"][...], b["images"][...])


def test_kill_9_mid_convert_then_the_rerun_removes_the_temporary(noise_h5: Path, tmp_path: Path) -> None:
    from causal3dident.convert import export

    source = export(noise_h5, tmp_path / "original", fmt="original", unbalanced="keep")
    out = tmp_path / "converted.h5"
    tmp = kill_9_while_writing(c3di("convert", source, out), out, min_bytes=2**20)
    assert tmp.exists() and not out.exists()
    code, _, err = finish(c3di("convert", source, out))
    assert code == 0, err
    assert temporaries(tmp_path) == []
    with h5py.File(noise_h5) as a, h5py.File(out) as b:
        assert np.array_equal(np.sort(a["images"][...].reshape(-1)), np.sort(b["images"][...].reshape(-1)))
        by_class = np.argsort(a["classes"][...], kind="stable")  # the original layout groups samples by class
        assert np.array_equal(a["images"][...][by_class], b["images"][...])


def test_only_temporaries_of_gone_writers_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "z.h5"
    live = subprocess.Popen(["sleep", "120"])
    gone = [subprocess.Popen(["true"]) for _ in range(2)]
    for proc in gone:
        proc.wait()
    planted = {name: tmp_path / f".z.h5.tmp-{proc.pid}" for name, proc in
               [("live writer", live), ("killed run", gone[0]), ("writer on another machine", gone[1])]}
    for path in planted.values():
        path.write_bytes(b"half a dataset")
    held = os.open(planted["writer on another machine"], os.O_RDONLY)  # its lock is held; its pid means nothing here
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        code, _, err = finish(c3di("latents", "--n", 5, "--out", out))
        assert code == 0, err
        assert planted["live writer"].exists() and planted["writer on another machine"].exists()
        assert not planted["killed run"].exists()
    finally:
        live.kill()
        live.wait()
        os.close(held)


def test_filesystems_without_locks_still_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Where flock fails (e.g. NFS without lockd): temporaries are judged by their pid alone, and a render
    job warns that it runs unprotected."""
    import errno

    from causal3dident.render.lock import OutputLock

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = tmp_path / f".z.h5.tmp-{gone.pid}"
    stale.write_bytes(b"half a dataset")
    monkeypatch.setattr(fcntl, "flock", no_locks)
    write_latents_file(tmp_path / "z.h5", build_config("causal3dident", 5), 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["z.h5"]
    with OutputLock(tmp_path / "out.h5.parts", tmp_path / "out.h5"):
        assert "warning: cannot lock" in capsys.readouterr().err
    assert not (tmp_path / "out.h5.parts").exists()


# -- latents on a full disk -------------------------------------------------------------------------------
def test_latents_on_a_full_disk_is_one_line_and_keeps_the_old_file(small_tmpfs) -> None:
    disk = small_tmpfs("1m")
    out = disk / "z.h5"
    code, _, err = finish(c3di("latents", "--n", 10, "--out", out))
    assert code == 0, err
    old = out.read_bytes()
    big = ["latents", "--n", 50000, "--pairs", "hues", "--out", out, "--overwrite"]
    code, _, err = finish(c3di(*big))
    single_line_error(code, err, f"{out} needs about 4.9 MiB but {disk} has", "nothing was written")
    code, _, err = finish(c3di(*big, precheck=False))
    single_line_error(code, err, f"no space left on device writing {out}: it needs about 4.9 MiB, {disk} has")
    assert out.read_bytes() == old
    assert sorted(p.name for p in disk.iterdir()) == ["z.h5"]


@pytest.mark.parametrize("command", ["repack", "convert"])
def test_repack_and_convert_on_a_full_disk_are_one_line_before_and_during_the_write(
        command: str, noise_h5: Path, tmp_path: Path, small_tmpfs) -> None:
    from causal3dident.convert import export

    source = noise_h5 if command == "repack" else export(noise_h5, tmp_path / "original", fmt="original",
                                                          unbalanced="keep")
    disk = small_tmpfs("2m")  # the source's 600 noise images need about 7 MiB in any codec
    out = disk / "out.h5"
    args = [command, source, out, "--quiet"] + (["--compression", "lz4"] if command == "repack" else [])
    code, _, err = finish(c3di(*args))
    single_line_error(code, err, f"{out} needs about", f"but {disk} has", "nothing was written")
    code, _, err = finish(c3di(*args, precheck=False))
    single_line_error(code, err, f"no space left on device writing {out}")
    assert list(disk.iterdir()) == []
