"""Scale-out on Ray, on a real two-node Ray cluster on loopback (a head and a worker node, 1 CPU each):
a ray-backend render equals the local one pixel for pixel, a render actor SIGKILLed mid-job loses and
duplicates nothing, and ``bench sweep --backend ray`` writes the runs and rows of the local sweep.

The cluster's processes are started in sessions of their own and killed by pid at the end (also on
failure); nothing else on the machine is touched (no broad ``ray stop``). Slow (deselected by
default): losing a whole node (its raylet SIGKILLed), and ``--backend ray`` without ``--address``.
"""

from __future__ import annotations

import csv
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from causal3dident.cli import main

ray = pytest.importorskip("ray")

BIN = Path(sys.executable).parent
RAY = str(BIN / "ray")
C3DI = str(BIN / "c3di")
COMMON = ["--resolution", "32", "--quality", "preview", "--device", "cpu", "--quiet"]
JOB = ["--n", "16", "--seed", "5", "--pairs", "hues", *COMMON]
# Long enough (200 chunks of one sample and its view) that the worker node's actor is still busy
# when the test kills its node, even on an idle machine.
NODE_JOB = ["--n", "200", "--seed", "6", "--pairs", "hues", *COMMON]
# Ray >= 2.5x turns token authentication on when ~/.ray/auth_token exists: give the test clusters and
# their drivers their own token so the tests neither depend on nor touch the user's.
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
DRIVER = """
import atexit, sys
atexit.register(lambda: print("bpy imported by the driver" if "bpy" in sys.modules else "driver without bpy",
                              file=sys.stderr))
from causal3dident.cli import main
sys.argv = ["c3di", *sys.argv[1:]]
main()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """``ray start --head`` plus one ``ray start --address`` worker node, 1 CPU each, on 127.0.0.1."""

    def __init__(self) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp = Path(tempfile.mkdtemp(prefix="c3ray-", dir="/tmp"))  # short: Ray's socket paths
        self.sessions: list[int] = []
        self.env = dict(os.environ, **RAY_ENV)
        self.env.pop("RAY_ADDRESS", None)

    def _start(self, *args: str) -> None:
        proc = subprocess.Popen([RAY, "start", "--num-cpus", "1", "--node-ip-address", "127.0.0.1",
                                 "--object-store-memory", str(100 * 2**20), "--disable-usage-stats", *args],
                                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)  # its daemons stay in the session proc.pid
        self.sessions.append(proc.pid)
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, output

    def __enter__(self) -> Cluster:
        try:
            self._start("--head", "--port", str(self.port), "--temp-dir", str(self.temp),
                        "--include-dashboard", "false", "--ray-client-server-port", str(free_port()))
            self._start("--address", self.address)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def members(self) -> dict[int, str]:
        """pid -> command line of every process of this cluster (the sessions its 'ray start's began;
        Ray workers get process groups of their own but stay in the session)."""
        found = {}
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if os.getsid(int(proc.name)) in self.sessions:
                    found[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                        errors="replace").strip()
            except (OSError, ValueError):
                continue
        return found

    def stop(self) -> None:
        for _ in range(3):  # a raylet may start a worker while we kill
            pids = self.members()
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if not pids:
                break
            time.sleep(0.2)
        shutil.rmtree(self.temp, ignore_errors=True)

    def pids(self, title: str) -> list[int]:
        """Processes of this cluster whose command line starts with ``title`` (e.g. 'ray::RenderActor')."""
        return [pid for pid, cmd in self.members().items() if cmd.startswith(title)]

    def worker_node_busy(self, title: str) -> bool:
        """Whether a process of the worker node (the second session) runs ``title``, e.g. 'ray::RenderActor.render'."""
        return any(cmd.startswith(title) and os.getsid(pid) == self.sessions[1] for pid, cmd in self.members().items())

    def worker_node_raylet(self) -> int:
        """The raylet of the worker node (started in the second session)."""
        for pid, cmd in self.members().items():
            if cmd.split(" ")[0].endswith("/raylet") and os.getsid(pid) == self.sessions[1]:
                return pid
        raise AssertionError("no raylet of the worker node found")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with Cluster() as c:
        yield c


def read_all(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[...]) if isinstance(obj, h5py.Dataset) else None)
    return out


def assert_same_data(a: Path, b: Path) -> None:
    da, db = read_all(a), read_all(b)
    assert sorted(da) == sorted(db)
    for name in da:
        assert np.array_equal(da[name], db[name]), name


def driver(*args: str, assets: Path | None = None) -> subprocess.Popen[str]:
    """``c3di ARGS`` as a subprocess (a Ray driver) that reports whether it imported bpy."""
    env = dict(os.environ, **RAY_ENV)
    if assets is not None:
        env["C3DI_ASSETS"] = str(assets)
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen([sys.executable, "-c", DRIVER, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def render_locally(job: list[str], assets: Path, out: Path) -> Path:
    """``job`` rendered by the local backend into ``out``."""
    result = CliRunner().invoke(main, ["render", *job, "--assets", str(assets), "--out", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def reference(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The job rendered by the local backend."""
    return render_locally(JOB, assets_dir, tmp_path_factory.mktemp("local") / "local.h5")


@pytest.mark.render
def test_ray_render_equals_local_render(cluster: Cluster, reference: Path, assets_dir: Path,
                                        tmp_path: Path) -> None:
    out = tmp_path / "ray.h5"
    proc = driver("render", *JOB, "--chunk-size", "3", "--backend", "ray", "--address", cluster.address,
                  "--out", str(out), assets=assets_dir)
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr
    assert "driver without bpy" in stderr
    assert "2 worker(s) on CPU" in stdout  # one actor per CPU slot: one on each node
    assert not out.with_name("ray.h5.parts").exists()
    assert_same_data(reference, out)


@pytest.mark.render
def test_killed_render_actor_loses_and_duplicates_nothing(cluster: Cluster, reference: Path, assets_dir: Path,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "killed.h5"
    parts = tmp_path / "killed.h5.parts"
    proc = driver("render", *JOB, "--chunk-size", "1", "--backend", "ray", "--address", cluster.address,
                  "--out", str(out), assets=assets_dir)
    try:
        victims: list[int] = []
        deadline = time.monotonic() + 120
        while not victims and proc.poll() is None and time.monotonic() < deadline:
            if len(list(parts.glob("chunk-*.npz"))) >= 2:
                victims = cluster.pids("ray::RenderActor")  # both actors are busy with chunks
            time.sleep(0.02)
        assert victims, "no render actor busy with a chunk was found"
        done_before = len(list(parts.glob("chunk-*.npz")))
        os.kill(victims[0], signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert done_before < 16, "the job was over before the kill"
    assert "lost the Ray render worker" in stderr and "goes back to the queue" in stderr, stderr
    assert "driver without bpy" in stderr
    assert_same_data(reference, out)


def read_rows(folder: Path) -> dict[str, list[dict[str, str]]]:
    return {str(p.relative_to(folder)): list(csv.DictReader(p.open(newline="")))
            for p in sorted(folder.rglob("results.csv"))}


def test_ray_sweep_writes_the_runs_of_the_local_sweep(cluster: Cluster, synthetic_h5: Path, tmp_path: Path) -> None:
    sweep = ["bench", "sweep", "--tier", "smoke", "--data", str(synthetic_h5), "--setting", "da_colour",
             "--setting", "lt_hues", "--set", "train.steps=2", "--device", "cpu"]
    # the local reference with one torch thread, as each Ray task (1 CPU) has: then the rows match exactly
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("RAY_ADDRESS", None)
    local = subprocess.Popen([C3DI, *sweep, "--out", str(tmp_path / "local")], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    remote = driver(*sweep, "--out", str(tmp_path / "ray"), "--backend", "ray", "--address", cluster.address)
    stdout, stderr = remote.communicate(timeout=240)
    assert remote.returncode == 0, stdout + stderr
    assert stdout.count(": finished on ") == 2, stdout
    output, _ = local.communicate(timeout=240)
    assert local.returncode == 0, output
    files = {p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*") if p.is_file()}
    assert files == {p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").rglob("*") if p.is_file()}
    assert len(files) == 8  # 2 runs x run.json, checkpoint.pt, train_log.csv, results.csv
    assert read_rows(tmp_path / "local") == read_rows(tmp_path / "ray")
    again = CliRunner().invoke(main, [*sweep, "--out", str(tmp_path / "ray"), "--backend", "ray", "--address",
                                      "127.0.0.1:1"], catch_exceptions=False)
    assert again.exit_code == 0 and again.output.count("finished, skipped") == 2  # no cluster needed


def test_errors_are_one_line_and_name_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    for args, message in [(["--backend", "ray", "--address", f"127.0.0.1:{port}"], "cannot connect to the Ray"),
                          (["--address", f"127.0.0.1:{port}"], "--address is for --backend ray")]:
        result = CliRunner().invoke(main, ["render", *JOB, "--out", str(tmp_path / "x.h5"), *args])
        assert result.exit_code == 2 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    result = CliRunner().invoke(main, ["render", *JOB, "--out", str(tmp_path / "x.h5"), "--backend", "ray"])
    assert result.exit_code == 2 and "pip install 'causal3dident[ray]'" in result.output, result.output


@pytest.mark.render
def test_render_survives_losing_a_node(assets_dir: Path, tmp_path: Path) -> None:
    """SIGKILL the worker node's raylet mid-job: its actor's chunk is rendered again on the head."""
    local = render_locally(NODE_JOB, assets_dir, tmp_path / "local.h5")
    out = tmp_path / "node.h5"
    with Cluster() as own:
        proc = driver("render", *NODE_JOB, "--chunk-size", "1", "--backend", "ray", "--address", own.address,
                      "--out", str(out), assets=assets_dir)
        try:
            # kill only once the worker node's actor has built its scene and holds a chunk: a kill while
            # it is still starting is a failed start (restarted quietly), not a lost chunk
            deadline = time.monotonic() + 120
            while not own.worker_node_busy("ray::RenderActor.render") and proc.poll() is None \
                    and time.monotonic() < deadline:
                time.sleep(0.02)
            assert proc.poll() is None, "the job ended before the worker node's actor rendered a chunk"
            os.kill(own.worker_node_raylet(), signal.SIGKILL)
            stdout, stderr = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, stderr
    assert "lost the Ray render worker" in stderr, stderr
    assert_same_data(local, out)


@pytest.mark.render
def test_ray_backend_without_address_starts_a_local_instance(reference: Path, assets_dir: Path,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "local-ray.h5"
    proc = driver("render", *JOB, "--backend", "ray", "--workers", "1", "--out", str(out), assets=assets_dir)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "1 worker(s) on CPU" in stdout
    assert_same_data(reference, out)
