"""Render worker processes: each imports bpy, builds the scene once, then renders task after task.

The parent (``WorkerPool``) never imports bpy. Workers are started with multiprocessing's 'spawn'
context, one per GPU or a few on the CPU; a worker retires after ``max_images`` images or when its
memory grows by ``max_rss_growth_mb``, and the pool starts a fresh one. A worker that dies has its
task handed to a new worker (at most ``MAX_ATTEMPTS`` times). Workers exit when their parent dies.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import queue
import signal
import sys
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import diskspace
from ..errors import Causal3DIdentError
from .assets import MeshAsset
from .config import RenderConfig
from .devices import DeviceSpec

MAX_ATTEMPTS = 3
"""Times a task may be started before a crashing worker becomes an error."""
POLL_S = 2.0
STAMP_KEY = "__job__"
"""Key of the job fingerprint in a chunk file."""


class RenderError(Causal3DIdentError, RuntimeError):
    """A render worker failed (its log's last lines are in the message)."""


@dataclass(frozen=True)
class WorkerSpec:
    """What one worker needs to build its scene."""

    config: RenderConfig
    meshes: tuple[MeshAsset, ...]
    device: DeviceSpec
    threads: int = 0
    max_images: int = 5000
    max_rss_growth_mb: float = 2048.0
    log_path: str | None = None


@dataclass
class Task:
    """Render ``streams[name][i]`` (raw latents) with class ``classes[i]``, for every stream and row.

    With ``path`` set, the worker writes the images there (an .npz, atomically) and returns nothing;
    without, it sends them back.
    """

    key: int
    classes: np.ndarray
    streams: dict[str, np.ndarray]
    path: str | None = None
    stamp: str | None = None
    """The job's fingerprint for this chunk, stored in its chunk file (see ``job.chunk_stamp``)."""
    scene: str = "causal3dident"
    """How the scene reads the latents (``latents.SCENE_MAPPINGS``)."""
    stream_classes: dict[str, np.ndarray] = field(default_factory=dict)
    """Classes of the streams whose rows are not of class ``classes`` (a triplet's source frames)."""

    def class_of(self, name: str, row: int) -> int:
        """The class of row ``row`` of stream ``name``."""
        return int(self.stream_classes.get(name, self.classes)[row])

    @property
    def num_images(self) -> int:
        return len(self.classes) * len(self.streams)


# -- worker side -------------------------------------------------------------------------------------
def worker_main(slot: int, spec: WorkerSpec, tasks: Any, events: Any) -> None:
    """Entry point of a worker process: build the scene, then serve tasks until told to stop."""
    _redirect_output(spec.log_path)
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops us
    parent = os.getppid()
    try:
        _drop_bpy_script_paths()
        from .scene import SceneRenderer  # the only import of bpy, here in the worker

        renderer = SceneRenderer(spec.config, spec.meshes, spec.device, threads=spec.threads)
        try:
            _serve(slot, spec, renderer, tasks, events, parent)
        finally:
            renderer.close()
    except Causal3DIdentError as exc:  # e.g. a full disk: one line for the user
        events.put(("fatal", slot, str(exc)))
        raise SystemExit(1) from None
    except BaseException:
        events.put(("error", slot, traceback.format_exc()))
        raise SystemExit(1) from None


def _drop_bpy_script_paths() -> None:
    """Forget bpy's script folders if a parent that imported bpy passed them on (spawn copies its sys.path).

    bpy puts ``bpy/<version>/scripts/modules`` first on sys.path when imported; inherited, that folder's
    pure-Python ``bpy`` package would shadow the real module here ("No module named '_bpy'"). bpy adds the
    folders again when this process imports it."""
    marker = f"{os.sep}bpy{os.sep}"
    sys.path[:] = [p for p in sys.path if not (marker in p and f"{os.sep}scripts" in p)]


def _serve(slot: int, spec: WorkerSpec, renderer: Any, tasks: Any, events: Any, parent: int) -> None:
    """Render tasks until told to stop, retiring early when ``spec``'s limits are reached."""
    events.put(("ready", slot, None))
    rendered, baseline = 0, None
    while True:
        try:
            task = tasks.get(timeout=POLL_S)
        except queue.Empty:
            if os.getppid() != parent:
                return
            continue
        if task is None:
            return
        side = spec.config.resolution
        images = {name: np.empty((len(task.classes), side, side, 3), dtype=np.uint8) for name in task.streams}
        for row in range(len(task.classes)):
            for name, latents in task.streams.items():
                images[name][row] = renderer.render(latents[row], task.class_of(name, row), task.scene)
                events.put(("image", slot, None))
        if task.path is not None:
            write_chunk(Path(task.path), images, task.stamp)
        rendered += task.num_images
        rss = _rss_mb()
        baseline = rss if baseline is None else baseline
        retire = rendered >= spec.max_images or rss - baseline > spec.max_rss_growth_mb
        events.put(("done", slot, (task.key, None if task.path else images, retire)))
        if retire:
            return


def write_chunk(path: Path, images: dict[str, np.ndarray], stamp: str | None = None) -> None:
    """Write a chunk's images (deflated .npz, with the job's ``stamp``) under a temporary name, then rename
    it into place (atomic). A full disk is one ``DiskFullError`` line and leaves no temporary."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    arrays = {_npz_key(name): array for name, array in images.items()}
    if stamp is not None:
        arrays[STAMP_KEY] = np.array(stamp)
    try:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        written = tmp.stat().st_size if tmp.exists() else 0
        tmp.unlink(missing_ok=True)
        if diskspace.is_no_space(exc):
            raise diskspace.disk_full(path, written, sum(a.nbytes for a in arrays.values())) from None
        raise


class ChunkError(Exception):
    """A chunk file that cannot be used (damaged, another job's, or of other shapes): render it again."""


def chunk_problem(path: Path, names: Iterable[str], stamp: str | None) -> str | None:
    """Why the chunk file at ``path`` cannot be used, checked cheaply (its index and stamp), or None."""
    try:
        with np.load(path) as data:
            return _stamp_problem(data, names, stamp)
    except Exception as exc:  # zipfile, zlib, numpy and OS errors alike: the file is damaged
        return f"unreadable ({type(exc).__name__}: {exc})"


def read_chunk(path: Path, names: Iterable[str], stamp: str | None = None) -> dict[str, np.ndarray]:
    """The images of a chunk file, by stream name; ``ChunkError`` if it is damaged or not ``stamp``'s."""
    names = list(names)
    try:
        with np.load(path) as data:
            problem = _stamp_problem(data, names, stamp)
            if problem is None:
                return {name: data[_npz_key(name)] for name in names}
    except Exception as exc:  # zipfile (bad CRC, truncated), zlib, numpy and OS errors alike
        problem = f"unreadable ({type(exc).__name__}: {exc})"
    raise ChunkError(problem)


def _stamp_problem(data: Any, names: Iterable[str], stamp: str | None) -> str | None:
    if stamp is not None:
        if STAMP_KEY not in data.files:
            return "it carries no job fingerprint (written by an older causal3dident)"
        if str(data[STAMP_KEY]) != stamp:
            return "it was written by another job (its fingerprint differs)"
    missing = [name for name in names if _npz_key(name) not in data.files]
    return f"it lacks {', '.join(missing)}" if missing else None


def _npz_key(name: str) -> str:
    return name.replace("/", ".")


def _redirect_output(log_path: str | None) -> None:
    """Send Blender's chatter (fd 1 and 2) to a log file instead of the user's terminal."""
    fd = os.open(log_path or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _die_with_parent() -> None:
    """Ask Linux to kill this worker when its parent dies (e.g. kill -9 of the CLI)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _rss_mb() -> float:
    """Resident memory of this process in MiB (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


# -- parent side -------------------------------------------------------------------------------------
@dataclass
class _Slot:
    spec: WorkerSpec
    process: Any = None
    tasks: Any = None
    task: Task | None = None
    ready: bool = False
    failed_starts: int = 0


@dataclass
class WorkerPool:
    """Runs tasks on one worker per spec; restarts retired or crashed workers."""

    specs: list[WorkerSpec]
    slots: list[_Slot] = field(init=False)

    def __post_init__(self) -> None:
        self._ctx = mp.get_context("spawn")
        self._events = self._ctx.Queue()
        self.slots = [_Slot(spec) for spec in self.specs]

    def run(self, tasks: Iterable[Task], on_image: Callable[[], None],
            on_done: Callable[[Task, dict[str, np.ndarray] | None], None]) -> None:
        """Render every task; ``on_image`` after each image, ``on_done`` after each task."""
        pending = deque(tasks)
        attempts: dict[int, int] = {}
        try:
            for i in range(len(self.slots)):
                if pending:
                    self._start(i)
            while any(s.process is not None for s in self.slots):
                try:
                    kind, i, payload = self._events.get(timeout=POLL_S)
                except queue.Empty:
                    self._reap(pending, attempts)
                    continue
                slot = self.slots[i]
                if kind == "image":
                    on_image()
                elif kind == "ready":
                    slot.ready, slot.failed_starts = True, 0
                    self._assign(i, pending, attempts)
                elif kind == "done":
                    key, images, retire = payload
                    task, slot.task = slot.task, None
                    assert task is not None and task.key == key
                    on_done(task, images)
                    if retire:
                        self._stop(i, restart=bool(pending))
                    else:
                        self._assign(i, pending, attempts)
                elif kind == "fatal":
                    raise RenderError(f"render worker {i} stopped: {payload}")
                elif kind == "error":
                    raise RenderError(f"render worker {i} failed: {payload.strip().splitlines()[-1]}"
                                      f"{self._log_hint(slot)}\n{payload}")
        finally:
            self.kill()

    def kill(self) -> None:
        """Stop every worker still running at once (after an error or an interrupt)."""
        for slot in self.slots:
            if slot.process is not None and slot.process.pid is not None:
                slot.process.kill()
                slot.process.join()
            slot.process = None

    def _start(self, i: int) -> None:
        slot = self.slots[i]
        slot.tasks = self._ctx.Queue()
        slot.process = self._ctx.Process(target=worker_main, args=(i, slot.spec, slot.tasks, self._events),
                                         name=f"c3di-render-{i}", daemon=True)
        slot.ready = False
        slot.process.start()

    def _assign(self, i: int, pending: deque[Task], attempts: dict[int, int]) -> None:
        slot = self.slots[i]
        if not pending:
            self._stop(i, restart=False)
            return
        task = pending.popleft()
        attempts[task.key] = attempts.get(task.key, 0) + 1
        slot.task = task
        slot.tasks.put(task)

    def _stop(self, i: int, restart: bool) -> None:
        slot = self.slots[i]
        slot.tasks.put(None)
        slot.process.join(timeout=60)
        if slot.process.is_alive():
            slot.process.kill()
            slot.process.join()
        slot.process = None
        if restart:
            self._start(i)

    def _reap(self, pending: deque[Task], attempts: dict[int, int]) -> None:
        """Restart workers that died without a word; their task goes back to the queue."""
        for i, slot in enumerate(self.slots):
            if slot.process is None or slot.process.is_alive():
                continue
            code = slot.process.exitcode
            task, slot.task, slot.process = slot.task, None, None
            if not slot.ready:
                slot.failed_starts += 1
                if slot.failed_starts >= MAX_ATTEMPTS:
                    raise RenderError(f"render worker {i} exited with code {code} before its scene was built, "
                                      f"{MAX_ATTEMPTS} times{self._log_hint(slot)}")
            if task is not None:
                if attempts.get(task.key, 0) >= MAX_ATTEMPTS:
                    raise RenderError(f"render worker {i} died (exit code {code}) {MAX_ATTEMPTS} times on task "
                                      f"{task.key}{self._log_hint(slot)}")
                pending.appendleft(task)
            if pending:
                self._start(i)

    @staticmethod
    def _log_hint(slot: _Slot) -> str:
        return f"; see its log {slot.spec.log_path}" if slot.spec.log_path else ""
