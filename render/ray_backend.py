"""``c3di render --backend ray``: render a job's chunks on a Ray cluster (``pip install 'causal3dident[ray]'``).

What a chunk is, the resumable work folder ``OUT.parts/`` and the assembled file are those of
``job.run_job``; this backend only decides where chunks are rendered. It starts a pool of Ray actors,
one per GPU of the cluster (``num_gpus=1``) or one per CPU slot (``num_cpus=1``, or ``--workers``
actors sharing the CPUs), each importing bpy and building its scene once, and feeds them chunks. A
chunk's images come back through Ray's object store (no shared filesystem needed) and the driver
writes its chunk file, so a killed driver resumes like a local job. An actor that dies (its process
killed, its node lost) is replaced and its chunk goes back to the queue, at most ``MAX_ATTEMPTS``
times per chunk. Progress from every actor goes to the driver's one progress bar.

The driver (the ``c3di`` process) never imports bpy; only the actors do. Every node needs the same
``causal3dident[render]`` install; meshes come from ``--assets`` / ``$C3DI_ASSETS`` at the same path
on every node, else each node's user cache (downloaded and verified there).
"""

from __future__ import annotations

import atexit
import os
import socket
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import ConfigError
from .config import RenderConfig
from .devices import CPU, DEVICE_CHOICES, GPU_KINDS, DeviceSpec
from .worker import RenderError, Task

MAX_ATTEMPTS = 4
"""Times a chunk may be handed to an actor before losing actors becomes an error."""
MAX_FAILED_STARTS = 3
"""Actors in a row that may die before their scene is built."""
POLL_S = 0.5
INSTALL_HINT = "pip install 'causal3dident[ray]'"


def import_ray() -> Any:
    """``ray``, or a one-line error naming the install command."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--backend ray needs Ray, which is not installed; {INSTALL_HINT}") from None
    return ray


def init_ray(address: str | None, num_cpus: int | None = None) -> Any:
    """Connect to the cluster at ``address``, or start a local Ray instance (``num_cpus`` CPUs) without one.

    Returns ``ray``. Errors are one line and name the fix.
    """
    ray = import_ray()
    import logging

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return ray
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING,
                               "configure_logging": True}
    if address:
        _check_reachable(address)
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                     **options)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if address:
            raise ConfigError(f"cannot connect to the Ray cluster at --address {address} ({first}); start it "
                              f"there with 'ray start --head --port PORT', check the address, or drop "
                              f"--address to run on a local Ray instance") from None
        raise ConfigError(f"could not start a local Ray instance ({first}); pass --address of a running "
                          f"cluster, or use --backend local") from None
    return ray


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast (one line) when nothing listens at ``address``: ``ray.init`` would retry for minutes."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address!r} is not HOST:PORT (e.g. 10.0.0.1:6379, the address "
                          f"'ray start --head' printed)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot connect to the Ray cluster at --address {address} ({exc.strerror or exc}); "
                          f"start it there with 'ray start --head --port {port}', check the address and "
                          f"firewall, or drop --address to run on a local Ray instance") from None


def resource_options(device: DeviceSpec, cpus_per_worker: int = 1) -> dict[str, Any]:
    """Ray resources of one render actor: a GPU (and a CPU to drive it), or ``cpus_per_worker`` CPUs."""
    if device.kind == "CPU":
        return {"num_cpus": cpus_per_worker, "num_gpus": 0}
    return {"num_cpus": 1, "num_gpus": 1}


def _probe_remote() -> list[DeviceSpec]:
    from .devices import probe_gpus

    return probe_gpus()


def cluster_devices(choice: str) -> list[DeviceSpec]:
    """``--device`` on the cluster: ``[CPU]``, or one GPU backend (probed on a GPU node) for one actor per GPU.

    The device ids are left empty: each actor picks the GPU Ray assigned to it.
    """
    ray = import_ray()
    choice = choice.lower()
    if choice not in DEVICE_CHOICES:
        raise ConfigError(f"unknown --device {choice!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if choice == "cpu":
        return [CPU]
    gpus_in_cluster = int(ray.cluster_resources().get("GPU", 0))
    if gpus_in_cluster == 0:
        if choice == "auto":
            return [CPU]
        raise ConfigError(f"--device {choice}: the Ray cluster has no GPUs (resources: "
                          f"{_describe_resources(ray)}); use --device auto or --device cpu")
    found = ray.get(ray.remote(num_gpus=1, num_cpus=0, max_retries=2)(_probe_remote).remote())
    kinds = GPU_KINDS if choice == "auto" else (choice.upper(),)
    for kind in kinds:
        if any(g.kind == kind for g in found):
            return [DeviceSpec(kind, "", next(g.name for g in found if g.kind == kind))]
    if choice == "auto":
        return [CPU]
    seen = ", ".join(sorted({g.kind.lower() for g in found})) or "none"
    raise ConfigError(f"--device {choice}: Blender on the cluster's GPU nodes sees no {choice.upper()} GPU "
                      f"(found: {seen}); use --device auto or --device cpu")


def _describe_resources(ray: Any) -> str:
    res = ray.cluster_resources()
    return ", ".join(f"{int(res.get(k, 0))} {k}" for k in ("CPU", "GPU"))


# -- actor side -------------------------------------------------------------------------------------------
class Progress:
    """A tiny actor the render actors report images to; the driver reads it for the progress bar."""

    def __init__(self) -> None:
        self.done: dict[int, int] = {}

    def report(self, key: int, images: int) -> None:
        self.done[key] = max(self.done.get(key, 0), images)

    def snapshot(self) -> dict[int, int]:
        return dict(self.done)


class RenderActor:
    """One long-lived scene on a Ray worker: imports bpy, builds the scene once, renders chunk after chunk."""

    def __init__(self, config: RenderConfig, device: DeviceSpec, assets: str | None, threads: int,
                 progress: Any) -> None:
        self._progress = progress
        self._renderer: Any = None
        self._error: str | None = None
        self._config = config
        try:
            from .assets import resolve

            meshes = resolve(assets, progress=False)
            from .scene import SceneRenderer  # bpy: only ever imported here, in the actor process

            self._renderer = SceneRenderer(config, meshes, _local_gpu(device), threads=threads)
            atexit.register(self._renderer.close)
        except BaseException:
            self._error = traceback.format_exc()

    def ready(self) -> tuple[str | None, str, int]:
        """``(error traceback or None, host, pid)`` once the scene is built."""
        return self._error, socket.gethostname(), os.getpid()

    def render(self, task: Task) -> dict[str, np.ndarray]:
        side = self._config.resolution
        images = {name: np.empty((len(task.classes), side, side, 3), dtype=np.uint8) for name in task.streams}
        done = 0
        for row in range(len(task.classes)):
            for name, latents in task.streams.items():
                images[name][row] = self._renderer.render(latents[row], task.class_of(name, row), task.scene)
                done += 1
                self._progress.report.remote(task.key, done)
        return images


def _local_gpu(device: DeviceSpec) -> DeviceSpec:
    """The GPU of ``device.kind`` this actor may use (Ray sets CUDA_VISIBLE_DEVICES to its GPU)."""
    if device.kind == "CPU" or device.id:
        return device
    from .devices import probe_gpus

    mine = [g for g in probe_gpus() if g.kind == device.kind]
    if not mine:
        raise RuntimeError(f"Blender sees no {device.kind} GPU on {socket.gethostname()} "
                           f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')})")
    return mine[0]


# -- driver side ------------------------------------------------------------------------------------------
@dataclass
class _Actor:
    handle: Any
    ready_ref: Any
    ready: bool = False
    where: str = "?"
    task: Task | None = None
    ref: Any = None


class RayBackend:
    """``run_job``'s backend for a Ray cluster (``address``) or a local Ray instance (``address`` None).

    Use as a context manager: it connects on enter and disconnects (stopping a local instance) on exit.
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None,
                 echo: Callable[[str], None] | None = None) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.echo = echo or (lambda line: None)
        self.retried = 0
        self._ray: Any = None

    def __enter__(self) -> RayBackend:
        self._ray = init_ray(self.address, self.num_cpus)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._ray is not None:
            self._ray.shutdown()
            self._ray = None

    def devices(self, choice: str) -> list[DeviceSpec]:
        return cluster_devices(choice)

    # the RenderBackend protocol
    def render(self, tasks: Sequence[Task], context: Any, on_image: Callable[[int], Any],
               on_done: Callable[[Task, dict[str, np.ndarray] | None], None]) -> int:
        ray = self._ray or init_ray(self.address, self.num_cpus)
        device = context.devices[0]
        count, cpus = self._pool_size(ray, device, context.workers)
        count = max(1, min(count, len(tasks)))
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        progress = ray.remote(num_cpus=0, scheduling_strategy=here)(Progress).remote()  # beside the driver
        actor_cls = ray.remote(max_restarts=0, max_task_retries=0, **resource_options(device, cpus))(RenderActor)
        threads = cpus if device.kind == "CPU" else 0

        def start() -> _Actor:
            handle = actor_cls.remote(context.config, device, context.assets, threads, progress)
            return _Actor(handle, handle.ready.remote())

        pending = deque(tasks)
        attempts: dict[int, int] = {}
        finished: set[int] = set()
        sizes = {t.key: t.num_images for t in tasks}
        shown = 0
        failed_starts = 0
        actors = [start() for _ in range(count)]
        last_poll = 0.0
        try:
            while pending or any(a.task is not None for a in actors):
                owners = {a.ready_ref: a for a in actors if not a.ready}
                owners.update({a.ref: a for a in actors if a.task is not None})
                ready, _ = ray.wait(list(owners), num_returns=1, timeout=POLL_S) if owners else ([], [])
                for ref in ready:
                    actor = owners[ref]
                    if not actor.ready:
                        try:
                            error, host, pid = ray.get(ref)
                        except ray.exceptions.RayError as exc:
                            failed_starts += 1
                            if failed_starts >= MAX_FAILED_STARTS:
                                raise RenderError(f"{MAX_FAILED_STARTS} Ray render actors in a row died before "
                                                  f"building their scene (last: {_first_line(exc)}); see the "
                                                  f"Ray logs (ray logs worker-*)") from None
                            actors[actors.index(actor)] = start()
                            continue
                        if error is not None:
                            raise RenderError(f"a Ray render actor on {host} could not build its scene: "
                                              f"{error.strip().splitlines()[-1]}\n{error}")
                        actor.ready, actor.where, failed_starts = True, f"{host} pid {pid}", 0
                    else:
                        task, actor.task, actor.ref = actor.task, None, None
                        try:
                            images = ray.get(ref)
                        except ray.exceptions.RayTaskError as exc:
                            raise RenderError(f"rendering chunk {task.key} failed on {actor.where}: "
                                              f"{_first_line(exc.cause if exc.cause is not None else exc)}\n"
                                              f"{exc}") from None
                        except ray.exceptions.RayError as exc:
                            attempts[task.key] = attempts.get(task.key, 0) + 1
                            if attempts[task.key] >= MAX_ATTEMPTS:
                                raise RenderError(f"chunk {task.key} lost its Ray worker {MAX_ATTEMPTS} times "
                                                  f"(last on {actor.where}: {_first_line(exc)}); see the Ray "
                                                  f"logs") from None
                            self.retried += 1
                            self.echo(f"lost the Ray render worker on {actor.where} ({_first_line(exc)}); "
                                      f"chunk {task.key} goes back to the queue")
                            pending.appendleft(task)
                            ray.kill(actor.handle, no_restart=True)
                            actors[actors.index(actor)] = start()
                            continue
                        on_done(task, images)
                        finished.add(task.key)
                # hand out work; once the queue is empty, idle actors are let go (their resources freed;
                # a chunk lost later starts a new actor)
                for actor in actors:
                    if actor.ready and actor.task is None and pending:
                        actor.task = pending.popleft()
                        actor.ref = actor.handle.render.remote(replace(actor.task, path=None))
                if not pending:
                    for actor in [a for a in actors if a.task is None]:
                        actor.handle.__ray_terminate__.remote()  # exits cleanly (removes its frame folder)
                        actors.remove(actor)
                now = time.monotonic()
                if now - last_poll >= POLL_S or not (pending or any(a.task is not None for a in actors)):
                    last_poll = now
                    try:
                        reported = ray.get(progress.snapshot.remote(), timeout=10)
                    except ray.exceptions.RayError:  # lost with its node: count finished chunks only
                        reported = {}
                    total = sum(sizes[k] for k in finished) + sum(
                        min(v, sizes[k]) for k, v in reported.items() if k in sizes and k not in finished)
                    if total > shown:
                        on_image(total - shown)
                        shown = total
        finally:
            for actor in actors:
                ray.kill(actor.handle, no_restart=True)
            ray.kill(progress, no_restart=True)
        return count

    def _pool_size(self, ray: Any, device: DeviceSpec, workers: int | None) -> tuple[int, int]:
        """(actors, CPUs per actor): one per GPU, one per CPU slot, or ``workers`` sharing the CPUs."""
        if workers is not None and workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {workers}")
        resources = ray.cluster_resources()
        if device.kind != "CPU":
            gpus = int(resources.get("GPU", 0))
            return (gpus if workers is None else max(1, min(workers, gpus))), 1
        cpus = max(1, int(resources.get("CPU", 1)))
        if workers is None:
            return cpus, 1
        return workers, max(1, cpus // workers)


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else type(exc).__name__
