"""One output, one job (real bpy, 32 px): a second render job on the same --out is refused at once; chunks
of another job, truncated chunks and chunks with flipped bits are named, discarded and rendered again;
Ctrl-C says how to resume."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from causal3dident.cli import main
from causal3dident.render import job as job_mod
from causal3dident.render.config import render_config
from causal3dident.render.devices import CPU

pytestmark = pytest.mark.render

C3DI = str(Path(sys.executable).with_name("c3di"))
N, CHUNK = 9, 3
JOB = ["--n", str(N), "--seed", "5", "--resolution", "32", "--quality", "preview", "--device", "cpu", "--quiet",
       "--chunk-size", str(CHUNK)]


def images_of(path: Path) -> np.ndarray:
    with h5py.File(path) as f:
        return f["images"][...]


def cli(assets_dir: Path, *args: str, **popen: object) -> subprocess.Popen[str]:
    env = dict(os.environ, C3DI_ASSETS=str(assets_dir))
    # SIGINT as in a terminal even when this test process was started with it ignored (a background job)
    return subprocess.Popen([C3DI, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **popen)


def wait_for(condition, proc: subprocess.Popen[str], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the job ended before {what}: {proc.communicate()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def reference(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The job rendered by one uninterrupted job."""
    out = tmp_path_factory.mktemp("reference") / "ref.h5"
    result = CliRunner().invoke(main, ["render", *JOB, "--assets", str(assets_dir), "--out", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


def test_a_second_job_on_the_same_output_is_refused_at_once(reference: Path, assets_dir: Path,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "out.h5"
    many = ["--n", "60"]  # enough chunks that the first job is still running while the others try, on any machine
    first = cli(assets_dir, "render", *JOB, *many, "--chunk-size", "1", "--out", str(out))
    try:
        wait_for(lambda: (tmp_path / "out.h5.parts" / "job.json").exists(), first, "the first job started")
        for extra in (["--seed", "6", "--overwrite"], []):  # another job with --overwrite; the same job again
            second = cli(assets_dir, "render", *JOB, *many, *extra, "--out", str(out))
            _, err = second.communicate(timeout=120)
            assert second.returncode == 2, err
            assert err.strip().splitlines() == [err.strip()] and "Traceback" not in err, err
            assert f"is being rendered by another job (pid {first.pid} " in err, err
            assert first.poll() is None, "the first job had finished: the refusal proves nothing"
        _, err = first.communicate(timeout=240)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            first.kill()
    assert np.array_equal(images_of(out)[:N], images_of(reference))  # the first N of the same seed's draw
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]  # no work folder, lock or temporary left


class Interrupting(job_mod.LocalBackend):
    """Renders only the chunks in ``keep``, then stops the job as Ctrl-C would (its chunks stay in .parts)."""

    def __init__(self, keep: set[int]) -> None:
        self.keep = keep

    def render(self, tasks, context, on_image, on_done):  # type: ignore[no-untyped-def]
        super().render([t for t in tasks if t.key in self.keep], context, on_image, on_done)
        raise KeyboardInterrupt


def render_some_chunks(seed: int, keep: set[int], out: Path, assets_dir: Path) -> Path:
    """Chunks ``keep`` of the job (JOB with ``seed``), left in OUT.parts/ as a killed job leaves them."""
    inp = job_mod.sampled_input("causal3dident", N, seed)
    with pytest.raises(KeyboardInterrupt):
        job_mod.run_job(inp, out, render_config("preview", 32), [CPU], assets=assets_dir, chunk_size=CHUNK,
                        progress=False, backend=Interrupting(keep))
    parts = out.with_name(out.name + ".parts")
    assert sorted(p.name for p in parts.glob("chunk-*.npz")) == [f"chunk-{c:07d}.npz" for c in sorted(keep)]
    return parts


def test_foreign_and_damaged_chunks_are_named_discarded_and_rendered_again(reference: Path, assets_dir: Path,
                                                                          tmp_path: Path) -> None:
    out = tmp_path / "out.h5"
    parts = render_some_chunks(5, {0, 2}, out, assets_dir)
    foreign = render_some_chunks(6, {1}, tmp_path / "seed6.h5", assets_dir)  # same shapes, other latents
    shutil.copy(foreign / "chunk-0000001.npz", parts / "chunk-0000001.npz")
    truncated = parts / "chunk-0000000.npz"
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    flipped = parts / "chunk-0000002.npz"
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the deflated pixels: only reading them finds it (CRC-32)
    flipped.write_bytes(bytes(data))

    proc = cli(assets_dir, "render", *JOB, "--out", str(out))
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert f"discarding {truncated}: unreadable" in stderr, stderr
    assert f"discarding {parts / 'chunk-0000001.npz'}: it was written by another job" in stderr, stderr
    assert f"discarding {flipped}: unreadable (BadZipFile: Bad CRC-32" in stderr, stderr
    assert "Traceback" not in stderr
    assert "rendered 9 in" in stdout, stdout  # all three chunks again
    assert np.array_equal(images_of(out), images_of(reference))
    assert not parts.exists()


def test_ctrl_c_says_that_rerunning_resumes(assets_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.h5"
    parts = tmp_path / "out.h5.parts"
    many = 60  # enough chunks that the job is still running when the first one is seen, even on a loaded machine
    proc = cli(assets_dir, "render", *JOB, "--n", str(many), "--chunk-size", "1", "--out", str(out),
               start_new_session=True)
    try:
        wait_for(lambda: len(list(parts.glob("chunk-*.npz"))) >= 1, proc, "a chunk was written")
        os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C in a terminal: the CLI and its workers
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr and "Aborted" not in stderr, stderr
    done = len(list(parts.glob("chunk-*.npz")))
    assert lines[0] == (f"Error: interrupted; {done} of {many} chunks are finished in {parts}: rerun the same "
                        f"command to resume from them"), stderr
    assert 1 <= done < many and not out.exists()


def fill_up(folder: Path) -> None:
    """Write zeros into ``folder`` until its filesystem is full."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, bytes(1 << 16))
    except OSError:
        pass
    finally:
        os.close(fd)


def test_a_full_disk_while_writing_chunks_is_one_line(assets_dir: Path, small_tmpfs) -> None:
    disk = small_tmpfs("1m")
    parts = disk / "out.h5.parts"
    proc = cli(assets_dir, "render", *JOB, "--chunk-size", "1", "--out", str(disk / "out.h5"))
    try:
        wait_for(lambda: (parts / "chunk-0000000.npz").exists(), proc, "a chunk was written")
        fill_up(disk)
        _, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr, stderr
    assert "render worker 0 stopped: no space left on device writing " in stderr, stderr
    assert "chunk-" in stderr and "free some space there" in stderr, stderr
    assert not list(parts.glob(".chunk-*.tmp-*")) and not (disk / "out.h5").exists()


def test_an_output_folder_that_cannot_be_made_is_one_line(assets_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    result = CliRunner().invoke(main, ["render", *JOB, "--assets", str(assets_dir), "--out",
                                       str(tmp_path / "file" / "out.h5")])
    assert result.exit_code == 2 and "cannot create folder" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
