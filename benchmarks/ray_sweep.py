"""``c3di bench sweep --backend ray``: a tier's settings x seeds as Ray tasks (``pip install 'causal3dident[ray]'``).

A run is the very same ``runner.run_benchmark`` call as in a local sweep; Ray only decides where it
runs: one task per (setting, seed) with one GPU when the cluster has GPUs (else one CPU), retried when
its worker or node dies. Finished runs (``results.csv`` under ``--out``) are skipped; an unfinished
run folder (checkpoint) is shipped to the task, which resumes from it.

No shared filesystem is needed for the results: each task runs into a temporary folder on its node
and returns the run folder's files, which the driver writes under ``--out`` (``results.csv`` last, so
a run only counts as finished once all its files are there). The data (``--data``) must be readable
at the same absolute path on every node, and ``--method file.py:function`` needs an absolute path (or
use ``module:function`` importable on every node).
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from causal3dident.errors import Causal3DIdentError, ConfigError

from .runner import RESULTS, is_finished, run_dir
from .settings import Setting
from .tiers import Tier

MAX_RETRIES = 2
"""Times Ray reruns a run whose worker process or node died."""
ENV = {"OMP_WAIT_POLICY": "PASSIVE"}  # as the c3di CLI sets it: shared cores collapse spinning OpenMP


class SweepError(Causal3DIdentError, RuntimeError):
    """Some runs of a Ray sweep failed (the others' results are written)."""


def run_on_node(setting: Setting, tier: Tier, seed: int, data: str, method: str, device: str,
                existing: dict[str, bytes]) -> tuple[dict[str, bytes], str, float]:
    """Ray task: one benchmark run in a temporary folder on this node, resuming from ``existing`` files.

    Returns the run folder's files (relative to the runs folder), the host and the seconds taken.
    """
    for key, value in ENV.items():  # before this worker process first imports torch
        os.environ.setdefault(key, value)
    from .runner import run_benchmark

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="c3di-sweep-") as tmp:
        for rel, blob in existing.items():
            path = Path(tmp) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(blob)
        path = run_benchmark(setting, tier, seed, data, tmp, method=method, device=device)
        files = {str(p.relative_to(tmp)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
    return files, socket.gethostname(), time.perf_counter() - started


def task_resources(ray: Any, device: str) -> tuple[dict[str, Any], str]:
    """Ray resources of one run and the torch device inside it: a GPU when there are any (``auto``), else a CPU."""
    gpus = int(ray.cluster_resources().get("GPU", 0))
    cpu, gpu = ({"num_cpus": 1, "num_gpus": 0}, "cpu"), ({"num_cpus": 1, "num_gpus": 1}, "cuda")
    if device == "cpu":
        return cpu
    if device == "auto":
        return gpu if gpus else cpu  # in a GPU task Ray sets CUDA_VISIBLE_DEVICES to its GPU: "cuda" is it
    if device == "cuda" or device.startswith("cuda:"):
        if not gpus:
            raise ConfigError(f"--device {device}: the Ray cluster has no GPUs; use --device auto or cpu")
        return gpu
    raise ConfigError(f"--device {device!r} with --backend ray: use auto, cpu or cuda (each run gets one GPU)")


def write_run(out: Path, files: dict[str, bytes]) -> None:
    """Write a run's files under ``out``, each atomically, ``results.csv`` (the finished mark) last."""
    for rel in sorted(files, key=lambda r: Path(r).name == RESULTS):
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_bytes(files[rel])
        os.replace(tmp, path)


def ray_sweep(jobs: Sequence[tuple[Setting, int]], tier: Tier, data: str | os.PathLike[str],
              out: str | os.PathLike[str], *, method: str, name: str, device: str = "auto",
              address: str | None = None, echo: Callable[[str], None] = print) -> list[Path]:
    """Run every unfinished (setting, seed) of ``jobs`` on Ray; returns the run folders written."""
    from causal3dident.render.ray_backend import init_ray

    out = Path(out)
    data_path = str(Path(data).resolve())
    todo = []
    for k, (setting, seed) in enumerate(jobs, 1):
        path = run_dir(out, tier.name, name, setting.id, seed)
        if is_finished(path):
            echo(f"[{k}/{len(jobs)}] {setting.id} seed {seed}: finished, skipped")
        else:
            todo.append((k, setting, seed, path))
    if not todo:
        return []
    ray = init_ray(address)
    try:
        resources, task_device = task_resources(ray, device)
        remote = ray.remote(max_retries=MAX_RETRIES, **resources)(run_on_node)
        refs = {}
        for k, setting, seed, path in todo:
            existing = {str(p.relative_to(out)): p.read_bytes() for p in sorted(path.rglob("*"))
                        if p.is_file() and not p.name.startswith(".")} if path.is_dir() else {}
            refs[remote.remote(setting, tier, seed, data_path, method, task_device, existing)] = (k, setting, seed)
        where = "GPU" if resources["num_gpus"] else "CPU"
        echo(f"submitted {len(refs)} runs to Ray, one {where} each (cluster: "
             f"{int(ray.cluster_resources().get('CPU', 0))} CPU, {int(ray.cluster_resources().get('GPU', 0))} GPU)")
        written, failed = [], []
        waiting = list(refs)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            k, setting, seed = refs[ready[0]]
            try:
                files, host, seconds = ray.get(ready[0])
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if exc.cause is not None else exc
                failed.append((setting.id, seed, cause))
                echo(f"[{k}/{len(jobs)}] {setting.id} seed {seed}: FAILED: {_first_line(cause)}")
                continue
            except ray.exceptions.RayError as exc:
                failed.append((setting.id, seed, exc))
                echo(f"[{k}/{len(jobs)}] {setting.id} seed {seed}: lost its Ray worker {MAX_RETRIES + 1} times: "
                     f"{_first_line(exc)}")
                continue
            write_run(out, files)
            written.append(run_dir(out, tier.name, name, setting.id, seed))
            echo(f"[{k}/{len(jobs)}] {setting.id} seed {seed}: finished on {host} in {seconds:.1f} s")
    finally:
        ray.shutdown()
    if failed:
        sid, seed, cause = failed[0]
        if len(failed) == 1 and isinstance(cause, Causal3DIdentError):
            raise cause
        raise SweepError(f"{len(failed)} of {len(todo)} runs failed (first: {sid} seed {seed}: {_first_line(cause)}); "
                         f"the other runs' results are written; rerun the sweep to retry the failed ones")
    return written


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else type(exc).__name__
